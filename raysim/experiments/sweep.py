"""``raysim sweep``: a scenario run over a grid of values and seeds, as Ray Tune trials.

The grid lives in the scenario's ``[sweep]`` table (or ``--grid KEY=[...]`` on the command
line): dotted scenario keys with lists of values, ``seeds`` (the training seeds, ``run.seed``;
``data.seed`` may be swept too, or fixed so repeats share one partition) and
``actors_per_trial``. A grid of more than :data:`MAX_TRIALS` trials is refused from the lengths
of its lists, before any trial is built. Every trial's scenario is then built, validated and
prepared as ``raysim validate`` prepares a run (data, partition, model, user code) before Ray
starts, so a bad key, an empty list or a wrong value in any trial ends the command at once,
naming the trial and the key.

Ray starts once for the sweep; each trial is a Tune trial holding its own placement group
(``runtime/tune.py``) and is an ordinary run (``api.run``) whose folder is
``<sweep>/trials/<trial>/<run id>``. A trial whose folder holds a completed run is not run
again, and one with a checkpoint continues from it, so re-running the same command resumes an
interrupted sweep.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from raysim.api import run
from raysim.files import check_received_folder
from raysim.inputs import ConfigError
from raysim.results.results import read_sweep_index, write_sweep_index
from raysim.scenario.config import apply_override, parse_value, set_value
from raysim.scenario.preparation import initial_model, prepare
from raysim.scenario.sections import Scenario, parse_scenario, read_table

SETTINGS = ("seeds", "actors_per_trial")  # the [sweep] keys that are not scenario keys
FIXED_SECTIONS = ("resources", "ray", "run.name")  # one cluster and one trial shape per sweep
# The most trials one sweep holds: each is prepared before Ray starts and is a Tune trial with
# its own run folder. Checked from the lists' lengths, before any trial's scenario is built.
MAX_TRIALS = 1000


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """``[sweep]``: ``grid`` (dotted scenario key -> its values, in file order), the training
    ``seeds`` every grid point runs with, and the client ``actors_per_trial`` (checked by
    ``_spec``, which reads the table and names the key at fault)."""

    grid: tuple[tuple[str, tuple], ...]
    seeds: tuple[int, ...]
    actors_per_trial: int = 1

    def points(self) -> list[dict[str, Any]]:
        """Every trial's values: the grid's cross product, each with every seed (``run.seed``)."""
        keys = [k for k, _ in self.grid] + ["run.seed"]
        return [dict(zip(keys, combo)) for combo in itertools.product(*[v for _, v in self.grid], self.seeds)]


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the base table, the spec and each trial's name, values and scenario."""

    name: str
    table: dict
    spec: SweepSpec
    trials: dict[str, dict[str, Any]]
    scenarios: dict[str, Scenario]


def load_sweep(path: str | Path, *, overrides: tuple[str, ...] = (), grid: tuple[str, ...] = ()) -> Sweep:
    """Reads a scenario file with a ``[sweep]`` table (and ``--grid KEY=[...]`` entries, which
    replace the table's), and validates and prepares every trial; ConfigError names the trial,
    the key and the fix."""
    table = read_table(path)
    for assignment in overrides:
        apply_override(table, assignment)
    entries = dict(table.pop("sweep", {}))
    for assignment in grid:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--grid expects KEY=[V1, V2], got {assignment!r}")
        entries[key.strip()] = parse_value(raw)
    base = parse_scenario(table)
    spec = _spec(entries, base)
    for key, values in spec.grid:  # each key alone first, so an error names it
        for value in values:
            _scenario(table, {key: value}, base.run.name, key=key)
    trials, scenarios = {}, {}
    width = len(str(len(spec.points()) - 1))
    for index, values in enumerate(spec.points()):
        name = f"{base.run.name}-t{index:0{width}d}"
        trials[name], scenarios[name] = values, _scenario(table, values, name, key=None)
    _prepare_every_trial(trials, scenarios)
    return Sweep(name=base.run.name, table=table, spec=spec, trials=trials, scenarios=scenarios)


def _spec(entries: dict[str, Any], base: Scenario) -> SweepSpec:
    if not entries:
        raise ConfigError("the scenario has no [sweep] table and no --grid was given: add e.g. "
                          "[sweep] \"client.lr\" = [0.01, 0.05] and seeds = [0, 1, 2]")
    grid = []
    for key, values in entries.items():
        if key == "actors_per_trial":
            continue
        if key not in SETTINGS and "." not in key:
            raise ConfigError(f"[sweep] key '{key}' is unknown: use a dotted scenario key (e.g. 'client.lr'), "
                              f"or one of {list(SETTINGS)}")
        if key.startswith(FIXED_SECTIONS) or key == "run.seed":
            raise ConfigError(f"[sweep] '{key}' cannot vary within a sweep (one cluster, one trial shape; "
                              "seeds go in 'seeds'): set it in the scenario instead")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"[sweep] '{key}' = {values!r} must be a non-empty list of values, e.g. [0.01, 0.05]")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"[sweep] '{key}' = {values!r} repeats a value: list each value once")
        if key != "seeds":
            grid.append((key, tuple(values)))
    seeds = entries.get("seeds", [base.run.seed])
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"[sweep] 'seeds' = {seeds!r} must be non-negative integers, e.g. [0, 1, 2]")
    actors = entries.get("actors_per_trial", 1)
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ConfigError(f"[sweep] 'actors_per_trial' = {actors!r} must be an integer >= 1")
    _check_size(grid, seeds)
    return SweepSpec(grid=tuple(grid), seeds=tuple(seeds), actors_per_trial=actors)


def _check_size(grid: list[tuple[str, tuple]], seeds: list[int]) -> None:
    """Refuses a grid of more than MAX_TRIALS trials, counted as the product of the lists'
    lengths (nothing enumerated, nothing built)."""
    count = math.prod(len(values) for _, values in grid) * len(seeds)
    if count > MAX_TRIALS:
        sizes = " x ".join(f"{len(values)} ({key})" for key, values in [*grid, ("seeds", seeds)])
        raise ConfigError(f"[sweep] gives {sizes} = {count} trials, more than the limit of {MAX_TRIALS}: "
                          "shorten the lists in [sweep] (or --grid), or split the sweep")


def _prepare_every_trial(trials: dict[str, dict[str, Any]], scenarios: dict[str, Scenario]) -> None:
    """Prepares each trial's data, partition, model and user code as ``raysim validate`` does, so
    a trial that could not start fails here, before Ray and Tune, naming the trial and its values
    (a bad ``model.name`` in the second trial would otherwise fail inside Tune).

    The preparing runs in a spawned child process: building models imports torch and starts its
    thread pools, and the sweep's own process must run no such thread when Ray forks its
    processes (runtime/session.py); the child's data sets and models go with it.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as child:
        refusal = child.submit(_first_refusal, trials, scenarios).result()
    if refusal is not None:
        raise ConfigError(refusal)


def _first_refusal(trials: dict[str, dict[str, Any]], scenarios: dict[str, Scenario]) -> str | None:
    """The refusal of the first trial that cannot be prepared, or None (runs in the child)."""
    for name, scenario in scenarios.items():
        try:
            initial_model(scenario, (prepared := prepare(scenario)).model, plan=prepared.plan)
        except ConfigError as exc:
            values = ", ".join(f"{k}={v!r}" for k, v in trials[name].items())
            return f"[sweep] trial {name} ({values}): {exc}; fix the key or value in [sweep] (or --grid)"
    return None


def _scenario(table: dict, values: dict[str, Any], name: str, *, key: str | None) -> Scenario:
    """The scenario of one trial (``key``: the one swept key being checked, for the message)."""
    copy = deepcopy(table)
    for dotted, value in {**values, "run.name": name}.items():
        set_value(copy, dotted, value)
    try:
        return parse_scenario(copy)
    except ConfigError as exc:
        where = f"'{key}' = {values[key]!r}" if key else ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ConfigError(f"[sweep] {where}: {exc}; fix the key or value in [sweep] (or --grid)") from None


def trial_shape(scenario: Scenario, actors_per_trial: int) -> tuple[int, float, float]:
    """(client actors, CPU and GPU per actor) one trial reserves."""
    resources = scenario.resources
    if resources.clients_per_actor == "auto":
        actors = min(actors_per_trial, scenario.data.num_clients)
    else:
        actors = math.ceil(scenario.data.num_clients / resources.clients_per_actor)
    return actors, resources.num_cpus, resources.num_gpus


def completed(trial_dir: Path) -> Path | None:
    """The trial's completed run folder, if it has one."""
    for summary in sorted(trial_dir.glob("*/summary.json")):
        try:
            if json.loads(summary.read_text()).get("status") == "completed":
                return summary.parent
        except ValueError:  # a damaged summary: the trial is run again
            continue
    return None


def run_trial(config: dict, *, table: dict, sweep_dir: str) -> dict:
    """One Tune trial: the trial's run, continued from its checkpoint when an interrupted attempt
    left one (folders of attempts that left none are removed: they restart from round 0)."""
    trial = config["trial"]
    scenario = _scenario(table, trial["values"], trial["name"], key=None)
    trial_dir = Path(sweep_dir) / "trials" / trial["name"]
    attempts = sorted(d for d in trial_dir.glob("*") if (d / "scenario.toml").exists())
    resumable = [d for d in attempts if (d / "checkpoint.zip").exists()][-1:]
    for stale in set(attempts) - set(resumable):
        shutil.rmtree(stale)
    outcome = run(scenario, results_root=Path(sweep_dir) / "trials", resume=resumable[0] if resumable else None)
    metric = outcome.summary["metric"]
    return {"metric": metric, "final": outcome.summary[f"final_{metric}"], "run_dir": str(outcome.run_dir),
            "resumed": bool(resumable)}


def run_sweep(sweep: Sweep, sweep_dir: Path, *, address: str | None = None,
              say: Callable[[str], None] = print) -> list[str]:
    """Runs the sweep's unfinished trials on one Ray cluster; returns the names of failed trials.

    Refuses (ResourceError, before any trial starts) when one trial's reservation exceeds the
    cluster, and a folder that holds a different sweep (ConfigError)."""
    from raysim.runtime import session, tune

    sweep_dir = sweep_dir.absolute()
    check_received_folder(sweep_dir, what="the sweep folder")
    index = read_sweep_index(sweep_dir)
    if index is not None and index["trials"] != json.loads(json.dumps(sweep.trials)):
        raise ConfigError(f"{sweep_dir} holds another sweep (other keys or values): choose another --out, "
                          "or run the sweep it holds")
    todo = {n: v for n, v in sweep.trials.items() if completed(sweep_dir / "trials" / n) is None}
    # resources cannot be swept, but the population can: reserve for the trial needing most actors
    actors, cpus, gpus = max(trial_shape(s, sweep.spec.actors_per_trial) for s in sweep.scenarios.values())
    shape = tune.TrialShape(actors=actors, num_cpus=cpus, num_gpus=gpus)
    tune.trial_environment()
    started = session.start(next(iter(sweep.scenarios.values())).ray, address=address)
    try:
        fits, words = tune.at_once(shape)
        if fits < 1:
            raise session.ResourceError(f"one trial reserves {words}: it can never start; lower "
                                        "[sweep] actors_per_trial or resources.num_cpus / num_gpus, or give Ray "
                                        "more (ray.num_cpus, or --address of a larger cluster)")
        write_sweep_index(sweep_dir, name=sweep.name, keys=[k for k, _ in sweep.spec.grid] + ["run.seed"],
                          trials=sweep.trials)
        say(f"sweep {sweep.name}: {len(sweep.trials)} trials, {len(sweep.trials) - len(todo)} finished earlier "
            f"(skipped), {len(todo)} to run; each trial reserves {words}: {fits} run at once; "
            f"Ray started once for the sweep; results in {sweep_dir}")
        if not todo:
            return []

        def done(name: str, metrics: dict | None, error: str | None) -> None:
            values = ", ".join(f"{k}={v}" for k, v in sweep.trials[name].items())
            if error is not None:
                say(f"  {name} ({values}) failed: {error}")
            else:
                final = metrics.get("final")
                say(f"  {name} ({values}) done{' (resumed)' if metrics.get('resumed') else ''}: final "
                    f"{metrics.get('metric')} {final:.4f}" if final is not None else f"  {name} ({values}) done")

        configs = [{"name": n, "values": v} for n, v in todo.items()]
        return tune.run_trials(run_trial, configs, params={"table": sweep.table, "sweep_dir": str(sweep_dir)},
                               shape=shape, storage=sweep_dir / "tune", on_done=done)
    finally:
        session.stop(started)
