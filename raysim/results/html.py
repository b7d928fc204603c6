"""``raysim report PATH``: one self-contained HTML page for a run, a scenario folder or a sweep.

The charts are matplotlib PNGs embedded as base64 and the tables plain HTML, with no script
and nothing fetched from elsewhere: the file can be mailed, archived or opened offline and
shows the same thing. Sections: the runs' primary test metric (accuracy, MSE, ...) against rounds and simulated time,
each run's timeline on the simulated clock and where its time went (clock.py), each
client's participation, the distribution of client evaluations ([evaluation] or
``personal.holdout``), bytes on the network, and, for a sweep, each arm's final metric with
its 95% t-interval and the paired differences between arms. Every chart has a text alternative
that says what it shows, and every table scrolls inside its own box rather than past the page.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from raysim.files import atomic_write
from raysim.results.clock import clock
from raysim.results.figures import Picture, pyplot
from raysim.results.results import Results, ResultsError, load, read_sweep_index
from raysim.results.summary import arms_figure, summarize

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}h1,p,figcaption{overflow-wrap:anywhere}
img{max-width:100%}table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 8px}
h2{border-bottom:1px solid #ddd}.table{max-width:100%;overflow-x:auto}figure{margin:1em 0}
figcaption{font-size:85%;color:#555}"""


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
        sections.append((f"Sweep: final test {name} over seeds (mean, std, 95% t-interval)", _table(summary.arms, 4)))
        if not summary.differences.empty:
            sections.append(("Sweep: paired differences between arms over the same seeds",
                             _table(summary.differences, 4)))
        sections.append((f"Sweep: {name} by round, mean over seeds with 95% t-interval", _figure(_arms, results, by)))
    sections.extend(_clock_sections(results))
    sections.append(("Participation: applied updates per client", _figure(_participation, results)))
    if not results.evaluation.empty:
        sections.append((f"Client evaluation: per-client {name} at the last evaluated round",
                         _figure(_evaluation, results)))
    sections.append(("Bytes on the (simulated) network", _figure(_bytes, results)))
    runs = results.summary.drop(columns=[c for c in results.summary.columns if results.summary[c].map(
        lambda v: isinstance(v, (list, dict))).any()])
    sections.append(("Runs", _table(runs, None)))
    title = f"raysim report: {path.name}"
    body = "\n".join(f"<h2>{html.escape(name)}</h2>\n{content}" for name, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def _clock_sections(results: Results) -> list[tuple[str, str]]:
    """The timelines and where the time went, or the sentence that says why a run has none."""
    seen = clock(results)
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in seen.notes)
    if seen.split is None:
        return [("Timeline on the simulated clock", notes)] if notes else []
    return [("Timeline on the simulated clock: who was busy when", notes + "".join(map(_embed, seen.timelines))),
            ("Where the time went: transfer, compute, waiting; staleness", _embed(seen.split))]


def _table(frame: pd.DataFrame, digits: int | None) -> str:
    """A table in a box of the page's width that scrolls sideways when the table is wider."""
    number = f".{digits}f" if digits else ".4g"
    return f'<div class="table">{frame.to_html(index=False, float_format=lambda v: format(v, number))}</div>'


def _figure(draw, results: Results, *args) -> str:
    """The figure that ``draw(results, *args)`` makes, embedded."""
    return _embed(draw(results, *args))


def _embed(picture: Picture) -> str:
    """A <figure> holding the picture's PNG, its text alternative and its caption."""
    plt = pyplot()

    buffer = io.BytesIO()
    picture.fig.tight_layout()
    picture.fig.savefig(buffer, format="png", dpi=90)
    plt.close(picture.fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    caption = f"<figcaption>{html.escape(picture.caption)}</figcaption>" if picture.caption else ""
    return f'<figure><img alt="{html.escape(picture.alt)}" src="data:image/png;base64,{data}">{caption}</figure>'


def _runs(frame: pd.DataFrame):
    return frame.groupby(["scenario", "run_id"], sort=True)


def _metric(results: Results) -> Picture:
    import matplotlib.pyplot as plt

    metric = results.metric
    fig, (by_round, by_time) = plt.subplots(1, 2, figsize=(12, 4))
    finals = []
    for (scenario, _), rounds in _runs(results.rounds.dropna(subset=[metric.column])):
        by_round.plot(rounds["round"], rounds[metric.column], marker=".", label=scenario)
        by_time.plot(rounds["sim_time"], rounds[metric.column], marker=".", label=scenario)
        finals.append(f"{scenario} ends at {rounds[metric.column].iloc[-1]:.4g} after round "
                      f"{rounds['round'].iloc[-1]:g}, {rounds['sim_time'].iloc[-1]:.1f} s")
    by_round.set(xlabel="round", ylabel=metric.label, title=f"{metric.name} vs rounds")
    by_time.set(xlabel="simulated time (s)", ylabel=metric.label, title=f"{metric.name} vs simulated time")
    _finish(by_round, by_time, legend=results.rounds["scenario"].nunique() <= 12)
    return Picture(fig, alt=f"Test {metric.name} against rounds (left) and simulated time (right), one line per run: "
                            + ("; ".join(finals[:12]) or "no evaluated round") + ".")


def _arms(results: Results, by: list[str]) -> Picture:
    arms = results.rounds.groupby(by, sort=True).ngroups
    return Picture(arms_figure(results.rounds, by, metric=results.metric.column),
                   alt=f"Test {results.metric.name} against rounds for each of the {arms} arms (by {', '.join(by)}): "
                       "the mean over seeds as a line, the 95% t-interval as a band.")


def _participation(results: Results) -> Picture:
    import matplotlib.pyplot as plt

    clients = results.clients
    trained = clients["message_type"] == "train" if "message_type" in clients else False
    applied = clients[(clients["status"] == "applied") | ((clients["status"] == "replied") & trained)]  # Flower's replies
    counts = applied.groupby("client_id").size() / max(results.clients["run_id"].nunique(), 1)
    fig, ax = plt.subplots(figsize=(12, 3))
    ax.bar(counts.index, counts.to_numpy(), color="tab:blue")
    ax.set(xlabel="client", ylabel="applied updates per run", title="how often each client's update was applied")
    _finish(ax)
    told = (f"{len(counts)} clients had an update applied, from {counts.min():.3g} to {counts.max():.3g} times per run"
            if len(counts) else "no client's update was applied")
    return Picture(fig, alt=f"Bar chart of applied updates per run for each client: {told}.")


def _evaluation(results: Results) -> Picture:
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
    told = "; ".join(f"{k} model: mean {last[f'{k}_{name}'].mean():.4g}" for k in kinds)
    return Picture(fig, alt=f"Histogram of each client's {name} on its own test examples at the last evaluated "
                            f"round, {len(last)} client evaluations: {told or 'none'}.")


def _bytes(results: Results) -> Picture:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    totals = []
    for (scenario, _), rounds in _runs(results.rounds):
        down = rounds["bytes_down"] if "bytes_down" in rounds else 0  # a vertical run's bytes_up is all traffic
        traffic = (rounds["bytes_up"] + down).cumsum() / 1e6
        ax.plot(rounds["round"], traffic, label=scenario)
        totals.append(f"{scenario} {traffic.iloc[-1]:.3g} MB" if len(traffic) else scenario)
    ax.set(xlabel="round", ylabel="MB (up + down, cumulative)", title="traffic")
    _finish(ax, legend=results.rounds["scenario"].nunique() <= 12)
    return Picture(fig, alt="Cumulative megabytes sent up and down against rounds, one line per run; in all: "
                            + ", ".join(totals[:12]) + ".")


def _finish(*axes, legend: bool = True) -> None:
    for ax in axes:
        ax.grid(alpha=0.3)
        if legend and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
