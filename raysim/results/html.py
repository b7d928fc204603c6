"""``raysim report PATH``: one self-contained HTML page for a run, a scenario folder or a sweep.

The charts are matplotlib PNGs embedded as base64 and the tables plain HTML, with no script
and nothing fetched from elsewhere: the file can be mailed, archived or opened offline and
shows the same thing. Sections: the runs' primary test metric (accuracy, MSE, ...) against rounds and simulated time, each
client's participation, the distribution of client evaluations ([evaluation] or
``personal.holdout``), bytes on the network, and, for a sweep, each arm's final metric with
its 95% t-interval and the paired differences between arms.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from raysim.results.figures import pyplot
from raysim.files import atomic_write
from raysim.results.results import Results, ResultsError, load, read_sweep_index
from raysim.results.summary import arms_figure, summarize

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
img{max-width:100%}table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 8px}
h2{border-bottom:1px solid #ddd}"""


def write_page(page: str, out: Path) -> None:
    """Writes the page whole or not at all: into a temporary file beside ``out``, then renamed
    over it, so a full disk leaves no half page. Something that is not a plain file (a device
    such as /dev/stdout) is written to as it is, never replaced."""
    if out.exists() and not out.is_file():
        out.write_text(page, encoding="utf-8")
        return
    atomic_write(out, page)


def report_page(path: Path) -> str:
    """The HTML page of the runs under ``path``."""
    results = load(path)
    index = read_sweep_index(path)
    name = results.metric.name
    sections = [(f"Test {name}", _figure(_metric, results))]
    if index is not None:
        by = [k for k in index["keys"] if k != "run.seed"] or ["trial"]
        try:
            summary = summarize(results.summary, by=by, metric=f"final_{name}")
        except (KeyError, ValueError, TypeError) as exc:  # a damaged or foreign index or summary.json
            raise ResultsError(f"{path / 'sweep.json'} does not fit the runs' summaries under {path} "
                               f"({exc.args[0] if exc.args else exc}); the index or a summary.json is damaged") from exc
        sections.append((f"Sweep: final test {name} over seeds (mean, std, 95% t-interval)",
                         summary.arms.to_html(index=False, float_format=lambda v: f"{v:.4f}")))
        if not summary.differences.empty:
            sections.append(("Sweep: paired differences between arms over the same seeds",
                             summary.differences.to_html(index=False, float_format=lambda v: f"{v:.4f}")))
        sections.append((f"Sweep: {name} by round, mean over seeds with 95% t-interval", _figure(_arms, results, by)))
    sections.append(("Participation: applied updates per client", _figure(_participation, results)))
    if not results.evaluation.empty:
        sections.append((f"Client evaluation: per-client {name} at the last evaluated round",
                         _figure(_evaluation, results)))
    sections.append(("Bytes on the (simulated) network", _figure(_bytes, results)))
    runs = results.summary.drop(columns=[c for c in results.summary.columns if results.summary[c].map(
        lambda v: isinstance(v, (list, dict))).any()])
    sections.append(("Runs", runs.to_html(index=False, float_format=lambda v: f"{v:.4g}")))
    title = f"raysim report: {path.name}"
    body = "\n".join(f"<h2>{html.escape(name)}</h2>\n{content}" for name, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def _figure(draw, results: Results, *args) -> str:
    """An <img> holding the PNG that ``draw(results, *args)`` makes."""
    plt = pyplot()

    buffer = io.BytesIO()
    fig = draw(results, *args)
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{draw.__name__.strip("_")}" src="data:image/png;base64,{data}">'


def _runs(frame: pd.DataFrame):
    return frame.groupby(["scenario", "run_id"], sort=True)


def _metric(results: Results):
    import matplotlib.pyplot as plt

    metric = results.metric
    fig, (by_round, by_time) = plt.subplots(1, 2, figsize=(12, 4))
    for (scenario, _), rounds in _runs(results.rounds.dropna(subset=[metric.column])):
        by_round.plot(rounds["round"], rounds[metric.column], marker=".", label=scenario)
        by_time.plot(rounds["sim_time"], rounds[metric.column], marker=".", label=scenario)
    by_round.set(xlabel="round", ylabel=metric.label, title=f"{metric.name} vs rounds")
    by_time.set(xlabel="simulated time (s)", ylabel=metric.label, title=f"{metric.name} vs simulated time")
    _finish(by_round, by_time, legend=results.rounds["scenario"].nunique() <= 12)
    return fig


def _arms(results: Results, by: list[str]):
    return arms_figure(results.rounds, by, metric=results.metric.column)


def _participation(results: Results):
    import matplotlib.pyplot as plt

    applied = results.clients[results.clients["status"] == "applied"]
    counts = applied.groupby("client_id").size() / max(results.clients["run_id"].nunique(), 1)
    fig, ax = plt.subplots(figsize=(12, 3))
    ax.bar(counts.index, counts.to_numpy(), color="tab:blue")
    ax.set(xlabel="client", ylabel="applied updates per run", title="how often each client's update was applied")
    _finish(ax)
    return fig


def _evaluation(results: Results):
    import matplotlib.pyplot as plt

    frame = results.evaluation
    last = frame[frame["round"] == frame.groupby("run_id")["round"].transform("max")]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    name = results.metric.name
    kinds = [k for k in ("global", "personal") if f"{k}_{name}" in last]
    ax.hist([last[f"{k}_{name}"] for k in kinds], bins=20, label=[f"{k} model" for k in kinds])
    ax.set(xlabel=f"{name} on the client's own test examples", ylabel="clients",
           title=f"per-client {name} (all runs, last evaluated round)")
    _finish(ax)
    return fig


def _bytes(results: Results):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for (scenario, _), rounds in _runs(results.rounds):
        down = rounds["bytes_down"] if "bytes_down" in rounds else 0  # a vertical run's bytes_up is all traffic
        ax.plot(rounds["round"], (rounds["bytes_up"] + down).cumsum() / 1e6, label=scenario)
    ax.set(xlabel="round", ylabel="MB (up + down, cumulative)", title="traffic")
    _finish(ax, legend=results.rounds["scenario"].nunique() <= 12)
    return fig


def _finish(*axes, legend: bool = True) -> None:
    for ax in axes:
        ax.grid(alpha=0.3)
        if legend and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
