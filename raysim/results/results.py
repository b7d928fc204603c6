"""Tidy results on disk: one folder per run, Parquet tables that load straight into pandas.

    results/<scenario>/<run id>/
        scenario.toml     the resolved scenario (every default filled in)
        rounds.parquet    one row per aggregation
        clients.parquet   one row per client task (applied, dropped, late, ...)
        evaluation.parquet  with [personal] holdout: each client's held-out accuracy, global
                          and personalised, per evaluated round
        contributions.parquet, contribution_summary.parquet, contributions.png  with
                          [contribution]: each step's client values (results/contributions.py)
        incentives.parquet  with [incentive]: rewards, reputation and participation per round
        partition.parquet the label histogram: client_id, label, count
        network.parquet   with a [network] other than star: messages and bytes each node sent and
                          received over the run (role: client, server, broker, edge)
        messages.parquet  with network.log_messages: every message (round, source, destination,
                          bytes, send, arrival, kind)
        ledger.json       with network.topology = "ledger": the chain (``raysim verify`` checks it)
        summary.json      status, final and best accuracy, timings
        checkpoint.zip    the driver's state after the last checkpointed round, data only
                          (``--resume``; results/checkpoints.py)
        accuracy.png      accuracy by round and by simulated time

Tables are rewritten atomically (temporary file, then rename) after every round, so a run that
is interrupted keeps every round it finished and never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from raysim.files import atomic_file, atomic_write, check_received_folder
from raysim.results.contributions import contribution_summary, contributions_figure
from raysim.results.figures import pyplot
from raysim.results.metric import Metric, TaskMetrics, read_task, write_task


class ResultsError(ValueError):
    """A results file is missing, damaged or not raysim's; the message names the file."""


# Columns that ``raysim compare`` and ``--resume`` read from each table.
_COLUMNS = {"rounds": ("round", "sim_time", "test_loss", "bytes_up"), "clients": ("round", "status", "staleness"),
            "partition": ("client_id", "label", "count"), "evaluation": ("round",),
            "contributions": ("round", "client_id", "method", "value"), "incentives": ("round", "client_id"),
            "messages": ("round",)}
_TEXT_COLUMNS = ("status", "method")  # the others of _COLUMNS hold numbers (checked on read)
# Columns that ``compare`` and ``report`` read where a run has them; numbers too
_READ_IF_PRESENT = {"rounds": ("bytes_down", "messages_saved"), "evaluation": ("global_accuracy", "personal_accuracy")}
_EXTRA_TABLES = ("contributions", "incentives", "messages")  # written when a round's report carries their rows


class RunWriter:
    def __init__(self, run_dir: Path, *, scenario_toml: str, histogram: np.ndarray,
                 task: TaskMetrics = TaskMetrics()):
        self.run_dir = run_dir
        self.task = task
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
        except OSError as exc:  # a results root that is a file, or not writable
            raise ResultsError(f"cannot create the run folder {run_dir} ({exc.strerror}): "
                               "choose another --results folder") from exc
        atomic_write(run_dir / "scenario.toml", scenario_toml)
        write_task(run_dir, task)
        clients, labels = np.indices(histogram.shape).reshape(2, -1)
        partition = pd.DataFrame({"client_id": clients, "label": labels, "count": histogram[clients, labels]})
        _atomic_parquet(partition, run_dir / "partition.parquet")
        self.rounds: list[dict] = []
        self.clients: list[dict] = []
        self.evaluations: list[dict] = []
        self.tables: dict[str, list[dict]] = {}

    @classmethod
    def resume(cls, run_dir: Path, *, after_round: int) -> "RunWriter":
        """Reopens a run's tables, dropping rows past the checkpoint's round (they will be redone)."""
        writer = cls.__new__(cls)
        writer.run_dir = run_dir
        try:
            writer.task = read_task(run_dir)
        except ValueError as exc:
            raise ResultsError(str(exc)) from exc
        writer.rounds = [r for r in _records(run_dir / "rounds.parquet") if r["round"] <= after_round]
        writer.clients = [r for r in _records(run_dir / "clients.parquet") if r["round"] <= after_round]
        writer.evaluations = [r for r in _records(run_dir / "evaluation.parquet") if r["round"] <= after_round]
        writer.tables = {name: [r for r in _records(run_dir / f"{name}.parquet") if r["round"] <= after_round]
                         for name in _EXTRA_TABLES if (run_dir / f"{name}.parquet").exists()}
        return writer

    def append(self, round_row: dict, client_rows: list[dict], eval_rows: list[dict] = (), *,
               tables: dict[str, list[dict]] | None = None, network: dict | None = None) -> None:
        self.rounds.append(round_row)
        self.clients.extend(client_rows)
        _atomic_parquet(pd.DataFrame(self.rounds), self.run_dir / "rounds.parquet")
        _atomic_parquet(pd.DataFrame(self.clients), self.run_dir / "clients.parquet")
        if eval_rows:
            self.evaluations.extend(eval_rows)
            _atomic_parquet(pd.DataFrame(self.evaluations), self.run_dir / "evaluation.parquet")
        for name, rows in (tables or {}).items():
            self.tables.setdefault(name, []).extend(rows)
            _atomic_parquet(pd.DataFrame(self.tables[name]), self.run_dir / f"{name}.parquet")
        if network:
            self._network(network)

    def _network(self, tables: dict) -> None:
        """The network's state as of this round (see the module's docstring)."""
        if "nodes" in tables:
            _atomic_parquet(pd.DataFrame(tables["nodes"]), self.run_dir / "network.parquet")
        if "ledger" in tables:
            atomic_write(self.run_dir / "ledger.json", tables["ledger"])

    @contextlib.contextmanager
    def settled(self, *, scenario_name: str, extra: Callable[[], dict]) -> Iterator[dict]:
        """Ends the run folder however the ``with`` body ends: removed when no round was recorded
        (a run stopped before its first leaves nothing), else finished as completed, interrupted
        or failed with ``extra()``'s summary fields, which fill the dict it yields."""
        summary: dict = {}
        status = "failed"
        try:
            yield summary
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if not self.rounds:
                shutil.rmtree(self.run_dir, ignore_errors=True)
            else:
                summary.update(self.finish(status=status, scenario_name=scenario_name, extra=extra()))

    def finish(self, *, status: str, scenario_name: str, extra: dict) -> dict:
        metric = self.task.primary
        scored = [r[metric.column] for r in self.rounds if not np.isnan(r.get(metric.column, np.nan))]
        summary = {
            "scenario": scenario_name,
            "run_id": self.run_dir.name,
            "status": status,
            "rounds": len(self.rounds),
            "metric": metric.name,
            f"final_{metric.name}": scored[-1] if scored else None,
            f"best_{metric.name}": metric.best(scored) if scored else None,
            "sim_time": self.rounds[-1]["sim_time"] if self.rounds else 0.0,
            "wall_time": self.rounds[-1]["wall_time"] if self.rounds else 0.0,
            "python": platform.python_version(),
            **extra,
        }
        atomic_write(self.run_dir / "summary.json", json.dumps(summary, indent=2, default=float))
        if self.rounds:
            plot_metric(pd.DataFrame(self.rounds), self.run_dir / "accuracy.png", title=scenario_name, metric=metric)
        if self.tables.get("contributions"):
            contributions = pd.DataFrame(self.tables["contributions"])
            _atomic_parquet(contribution_summary(contributions), self.run_dir / "contribution_summary.parquet")
            save_figure(contributions_figure(contributions, title=scenario_name), self.run_dir / "contributions.png")
        return summary


def new_run_dir(results_root: Path, scenario_name: str) -> Path:
    """results/<scenario>/<UTC timestamp>[-n], unique even for runs started the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = results_root / scenario_name / stamp
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{stamp}-{n}")
    return candidate


@dataclass(frozen=True)
class Results:
    """Tidy frames of one or more runs; every frame has ``scenario`` and ``run_id`` columns."""

    rounds: pd.DataFrame
    clients: pd.DataFrame
    partition: pd.DataFrame
    evaluation: pd.DataFrame
    summary: pd.DataFrame
    contributions: pd.DataFrame = field(default_factory=pd.DataFrame)
    incentives: pd.DataFrame = field(default_factory=pd.DataFrame)
    messages: pd.DataFrame = field(default_factory=pd.DataFrame)  # network.log_messages
    metrics: tuple[Metric, ...] = (Metric(),)  # the runs' primary metrics (one, when all runs share a task)

    @property
    def metric(self) -> Metric:
        """The primary metric every run shares (comparisons, figures); ResultsError when the runs'
        tasks report different ones, which no single figure or target could mean."""
        if len(self.metrics) != 1:
            raise ResultsError(f"the runs report different metrics ({', '.join(m.name for m in self.metrics)}): "
                               "compare runs of one task at a time")
        return self.metrics[0]


def load(*paths: str | Path) -> Results:
    """Loads runs from run folders, scenario folders or a results root, concatenated.

    >>> res = load("results/quickstart")            # doctest: +SKIP
    >>> res.rounds.groupby("run_id").test_accuracy.max()  # doctest: +SKIP
    """
    run_dirs = sorted({d for p in paths for d in _find_runs(Path(p))})
    if not run_dirs:
        raise FileNotFoundError(f"no raysim runs (folders with summary.json or rounds.parquet) under {list(map(str, paths))}")
    frames: dict[str, list[pd.DataFrame]] = {"rounds": [], "clients": [], "partition": [], "evaluation": [], "summary": [],
                                             **{name: [] for name in _EXTRA_TABLES}}
    metrics = []
    for run_dir in run_dirs:
        check_received_folder(run_dir)
        scenario, run_id = run_dir.parent.name, run_dir.name
        if (run_dir / "rounds.parquet").exists() and not (run_dir / "clients.parquet").exists():
            raise ResultsError(f"{run_dir / 'clients.parquet'} is missing next to rounds.parquet: the run folder is "
                               "incomplete (copied in part?); remove it or copy it whole")
        try:
            metric = read_task(run_dir).primary
        except ValueError as exc:
            raise ResultsError(str(exc)) from exc
        metrics.append(metric)
        for name in ("rounds", "clients", "partition", "evaluation", *_EXTRA_TABLES):
            path = run_dir / f"{name}.parquet"
            if path.exists():
                required = (metric.column,) if name == "rounds" else ()
                frames[name].append(_read_table(path, required).assign(scenario=scenario, run_id=run_id))
        summary_path = run_dir / "summary.json"
        if summary_path.exists():
            frames["summary"].append(pd.DataFrame([_read_summary(summary_path)]).assign(scenario=scenario, run_id=run_id))
    swept = {d: values for p in paths for d, values in _swept_values(Path(p)).items()}
    if swept:  # a sweep's trials: each frame gains a column per swept key, by the trial's name
        for name, parts in frames.items():
            frames[name] = [part.assign(**swept.get(part["scenario"].iat[0], {})) if len(part) else part
                            for part in parts]
    return Results(**{k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in frames.items()},
                   metrics=tuple(dict.fromkeys(metrics)))


SWEEP_INDEX = "sweep.json"  # in a sweep's folder: the swept keys and each trial's values


def write_sweep_index(sweep_dir: Path, *, name: str, keys: list[str], trials: dict[str, dict]) -> None:
    """Records what a sweep varies, so ``load`` can give each trial's rows their swept values."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(sweep_dir / SWEEP_INDEX, json.dumps({"name": name, "keys": keys, "trials": trials}, indent=2))


def read_sweep_index(sweep_dir: Path) -> dict | None:
    """A sweep folder's index (see ``write_sweep_index``), or None when the folder is no sweep."""
    path = sweep_dir / SWEEP_INDEX
    if not path.is_file():
        return None
    index = read_json(path)
    keys, trials = (index.get("keys"), index.get("trials")) if isinstance(index, dict) else (None, None)
    if not (isinstance(keys, list) and all(isinstance(k, str) and "." in k for k in keys)
            and isinstance(trials, dict) and all(_is_trial(values, keys) for values in trials.values())):
        raise ResultsError(f"{path} is not a raysim sweep index (it needs 'keys', a list of dotted scenario keys, "
                           "and 'trials', each trial's value of every key); the file is damaged or foreign")
    return index


def _is_trial(values, keys: list[str]) -> bool:
    """A trial's swept values: a value for each of the sweep's keys, all keys dotted (so that none
    can overwrite a column of the run's tables)."""
    return isinstance(values, dict) and set(keys) <= set(values) and all("." in k for k in values)


def _cell(value):
    """A swept value as one cell of a column: a list or table (``data.partition``) as its JSON text."""
    return value if value is None or isinstance(value, str | int | float | bool) else json.dumps(value)


def _swept_values(path: Path) -> dict[str, dict]:
    """Trial name -> {swept key: value} for the sweep at ``path`` or above it (a trial's run folder)."""
    for folder in (path, *path.parents[:3]):
        index = read_sweep_index(folder) if folder.is_dir() else None
        if index is not None:
            return {trial: {"trial": trial, **{k: _cell(v) for k, v in values.items()}}
                    for trial, values in index["trials"].items()}
    return {}


def _find_runs(path: Path) -> list[Path]:
    if (path / "rounds.parquet").exists() or (path / "summary.json").exists():
        return [path]
    if not path.is_dir():
        return []
    return [p.parent for p in path.rglob("scenario.toml")]


def plot_metric(rounds: pd.DataFrame, path: Path, *, title: str, metric: Metric) -> None:
    """The run's primary test metric (accuracy, MSE, ...) against rounds and against simulated
    time, side by side (the file keeps its name, accuracy.png, for every task)."""
    plt = pyplot()

    evaluated = rounds.dropna(subset=[metric.column]) if metric.column in rounds else rounds.iloc[:0]
    fig, (by_round, by_time) = plt.subplots(1, 2, figsize=(10, 4))
    by_round.plot(evaluated["round"], evaluated.get(metric.column, []), marker=".")
    by_round.set(xlabel="round", ylabel=metric.label, title=title)
    by_time.plot(evaluated["sim_time"], evaluated.get(metric.column, []), marker=".")
    by_time.set(xlabel="simulated time (s)", ylabel=metric.label, title=f"{title}: by simulated time")
    for ax in (by_round, by_time):
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Writes a matplotlib figure atomically and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with atomic_file(path) as handle:
            fig.savefig(handle, format="png", dpi=100)
    finally:
        plt.close(fig)


def _read_table(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """A run's Parquet table, or ResultsError naming the file when it is damaged or foreign;
    ``required`` adds numeric columns it must have (the round table's column of the run's metric)."""
    try:
        # one read of the whole file: a run in progress replaces its tables after every round
        # (os.replace), and a reader that opens the path again part-way (pyarrow reads the footer,
        # then the pages) could mix two versions ("Page was smaller than expected")
        frame = pd.read_parquet(io.BytesIO(path.read_bytes()))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError, its IO errors OSErrors
        raise ResultsError(f"{path} is not a readable Parquet table ({' '.join(str(exc).split())}); "
                           "the file is damaged: re-run or remove that run") from exc
    missing = [c for c in (*_COLUMNS[path.stem], *required) if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks the columns {missing}: not a raysim {path.stem} table")
    numeric = [c for c in (*_COLUMNS[path.stem], *required, *_READ_IF_PRESENT.get(path.stem, ())) if c in frame.columns]
    for column in (c for c in numeric if c not in _TEXT_COLUMNS):
        numbers = pd.to_numeric(frame[column], errors="coerce")  # None stays missing, text does not pass
        if (numbers.isna() & frame[column].notna()).any():
            raise ResultsError(f"{path}: column {column} holds values that are not numbers; not a raysim "
                               f"{path.stem} table (damaged or foreign)")
        frame[column] = numbers
    return frame


def read_json(path: Path):
    """A results folder's JSON file; ResultsError naming it when it is damaged or nests too deeply."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        raise ResultsError(f"{path} is not readable JSON ({exc}); the file is damaged: re-run or remove "
                           "that run") from exc


def _read_summary(path: Path) -> dict:
    summary = read_json(path)
    if not isinstance(summary, dict):
        raise ResultsError(f"{path} holds a {type(summary).__name__}, not a raysim run summary")
    return summary


def _records(path: Path) -> list[dict]:
    return _read_table(path).to_dict("records") if path.exists() else []


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as handle:
        frame.to_parquet(handle, index=False)
