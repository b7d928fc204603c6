"""``run(flower scenario)``: an unmodified Flower ServerApp and ClientApp on raysim's clock.

The ServerApp runs in this process against ``sim/bridges/flower_grid.py``'s Grid; the ClientApps answer
on client actors (Ray) or here (``run.executor = "local"``). As for any run, bad input (flwr
missing, an object that is not an app) fails before Ray starts or a folder exists, and a run
stopped before its first server round leaves none. The folder: ``rounds.parquet`` has one row
per server round (numbered by the grid, which keys the round's draws by it; ``group_id`` is the
strategy's label, the round number for the legacy strategies, empty for the Message API's) with
its simulated end, messages sent and lost, bytes of the actual records, and the replies' metrics
averaged Flower's way (weighted by the examples each reply reports) as ``train_<name>`` and
``evaluate_<name>``, the
evaluate replies' ``flower.metric`` as ``test_<metric>`` and their ``flower.loss`` as
``test_loss``; ``clients.parquet`` one row per message (node, type, fate, times, bytes, the
reply's metrics); ``summary.json`` as usual; ``model.safetensors`` the arrays a Message API
strategy's ``start`` ended with (``ended_arrays``; none from a legacy strategy). Python's ``random`` (Flower's node sampling),
numpy's and torch's global generators (a ServerApp's initial model) are seeded from ``run.seed``
before the ServerApp starts.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np

from raysim.results.metric import TaskMetrics
from raysim.results.model_file import MODEL_FILE, write_model
from raysim.results.results import RunWriter, new_run_dir
from raysim.runtime.run_ray import ray_for_run
from raysim.scenario.flower import FlowerConfig, FlowerScenario, load_apps
from raysim.seeding import Stream, derive_seed
from raysim.sim.kernel import table_rows
from raysim.sim.cost.devices import Population

RUN_ID = 1  # one run per grid


def run_flower(scenario: FlowerScenario, *, results_root: str | Path = "results", address: str | None = None,
               on_round: Callable[[dict], None] | None = None,
               on_start: Callable[[Path], None] | None = None) -> tuple[Path, dict]:
    """Runs a Flower scenario to the end (it keeps no checkpoint: ``raysim.api.run`` refuses to
    resume one); returns the run folder and the summary."""
    started = time.perf_counter()
    apps = load_apps(scenario.flower)
    use_ray = scenario.run.executor == "ray" or bool(address)
    with ray_for_run(scenario.ray, address=address, needed=use_ray):
        if use_ray:
            from raysim.runtime.flower_nodes import RayFlowerNodes

            nodes = RayFlowerNodes(scenario.flower.client_app, scenario.resources, num_nodes=scenario.flower.num_nodes)
        else:
            nodes = _local_nodes(apps.client, scenario.flower.client_app)
        try:
            return _serve(scenario, apps, nodes, started, Path(results_root), on_round, on_start,
                          executor="ray" if use_ray else "local")
        finally:
            if hasattr(nodes, "close"):
                nodes.close()


def _local_nodes(app, name: str):
    """The ClientApp answering in this process; the generators it seeds per delivery are put back
    after it, so the ServerApp's own draws are those of a run on Ray."""
    from raysim.sim.bridges.flower_grid import answer

    def answer_all(deliveries):
        with kept_generators():
            return [answer(app, delivery, name=name) for delivery in deliveries]

    return answer_all


@contextlib.contextmanager
def kept_generators():
    """Python's, numpy's and torch's global generator states, restored on exit."""
    import torch

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def seed_generators(seed: int) -> None:
    """Seeds Python's ``random`` (Flower's node sampling), numpy's and torch's global generators
    (a ServerApp's initial model) from the run's seed."""
    import torch

    random.seed(derive_seed(seed, Stream.FLOWER))
    np.random.seed(derive_seed(seed, Stream.FLOWER, 1) % 2**32)
    torch.manual_seed(derive_seed(seed, Stream.FLOWER, 2))


def _serve(scenario: FlowerScenario, apps, nodes, started: float, results_root: Path,
           on_round: Callable[[dict], None] | None, on_start: Callable[[Path], None] | None, *,
           executor: str) -> tuple[Path, dict]:
    from flwr.app import Context, RecordDict
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    from raysim.sim.bridges.flower_grid import SimulatedGrid
    from raysim.sim.kernel.tasks import FlowerAppError

    flower, seed = scenario.flower, scenario.run.seed
    metric = flower.metric
    task = TaskMetrics("flower", (metric,), frozenset({metric}) if flower.lower_is_better else frozenset())
    writer = RunWriter(new_run_dir(results_root, scenario.run.name), scenario_toml=scenario.to_toml(),
                       histogram=np.zeros((flower.num_nodes, 0), dtype=np.int64), task=task)
    startup_s = time.perf_counter() - started

    def record(log) -> None:
        round_row, client_rows = rows_of(log, flower, started)
        writer.append(round_row, client_rows)
        if on_round is not None:
            on_round(round_row)

    grid = SimulatedGrid(run_id=RUN_ID, num_nodes=flower.num_nodes, execute=nodes, seed=seed,
                         population=Population(scenario.system, flower.num_nodes, seed),
                         run_config=flower.run_config, local_epochs=flower.local_epochs,
                         examples_key=flower.examples_key, forward_fraction=flower.forward_fraction, on_round=record)

    def summary_fields() -> dict:
        """The summary's own fields, read when the run ends."""
        return {
            "kind": "flower", "server_app": flower.server_app, "client_app": flower.client_app,
            "num_nodes": flower.num_nodes, "startup_s": startup_s, "total_s": time.perf_counter() - started,
            "executor": executor, "num_actors": len(getattr(nodes, "actors", ())),
        }

    with writer.settled(scenario_name=scenario.run.name, extra=summary_fields) as summary:
        if on_start is not None:
            on_start(writer.run_dir)
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = RUN_ID, SUPERLINK_NODE_ID, 1
        seed_generators(seed)
        context = Context(run_id=RUN_ID, node_id=SUPERLINK_NODE_ID, node_config={}, state=RecordDict(),
                          run_config=dict(flower.run_config))
        try:
            with ended_arrays() as ended:
                apps.server(grid, context)
        except FlowerAppError:
            raise
        except Exception as exc:  # the user's ServerApp (or a strategy it runs): the run ends, named
            raise FlowerAppError(f"flower.server_app '{flower.server_app}' raised {type(exc).__name__}: {exc}") from exc
        grid.finish()
        if ended and writer.rounds:
            write_model(writer.run_dir / MODEL_FILE, ended, round_number=int(writer.rounds[-1]["round"]),
                        run="flower", content="the arrays the ServerApp's strategy ended with, in its order "
                        "(Flower's names; array-<i> where it gave none)")
    return writer.run_dir, summary


@contextlib.contextmanager
def ended_arrays():
    """A dict that fills with the arrays the last Message API strategy's ``start`` (Flower's
    ``Strategy.start``, which its strategies inherit) returned, by name: the run's model. The
    ServerApp is the user's code and keeps its result to itself; wrapping ``start`` while it runs
    is the one place every such strategy hands its final arrays back."""
    from flwr.serverapp.strategy import Strategy

    original, ended = Strategy.start, {}

    def start(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        ended.clear()
        ended.update({f"array-{k}" if k.isdigit() else k: np.asarray(v.numpy()) for k, v in result.arrays.items()})
        return result

    Strategy.start = start
    try:
        yield ended
    finally:
        Strategy.start = original


def rows_of(log, flower: FlowerConfig, started: float) -> tuple[dict, list[dict]]:
    """A server round's row and its messages' rows (see the module's docstring); the round is
    the grid's count, the one its draws are keyed by."""
    group = {"round": {"group_id": log.label}}
    rows = [table_rows.client_row(round=log.number, staleness=0, after=group, extra=row) for row in log.rows]
    replied = [r for r in rows if r["status"] == "replied"]
    means = {kind: weighted_means([r for r in replied if r["message_type"] == kind], flower.examples_key)
             for kind in ("train", "evaluate")}
    evaluated = means["evaluate"]
    round_row = table_rows.round_row(
        round=log.number, sim_time=log.ended, wall_time=time.perf_counter() - started,
        bytes_down=table_rows.total(rows, "bytes_down"), bytes_up=table_rows.total(rows, "bytes_up"),
        statuses=[r["status"] for r in rows], failures=("offline", "dropout", "late"),
        after={**group, "wall_time": {"messages": len(rows), "replies": len(replied)}},
        extra={**{f"{kind}_{k}": v for kind, values in means.items() for k, v in values.items()},
               f"test_{flower.metric}": evaluated.get(flower.metric, math.nan),
               "test_loss": evaluated.get(flower.loss, math.nan)})
    return round_row, rows


def weighted_means(rows: list[dict], count: str) -> dict[str, float]:
    """Each reply metric but the example ``count`` averaged weighted by the examples the replies
    report (either API's), as Flower's strategies aggregate them (an unweighted mean when every
    reply reports 0)."""
    names = sorted({k[7:] for r in rows for k in r if k.startswith("metric_")} - {count})
    weights = np.array([r["examples"] for r in rows], dtype=float)
    if not weights.sum():
        weights = np.ones(len(rows))
    means = {}
    for name in names:
        values = np.array([r.get(f"metric_{name}", math.nan) for r in rows], dtype=float)
        present = ~np.isnan(values)
        if present.any() and weights[present].sum():
            means[name] = float(np.dot(values[present], weights[present]) / weights[present].sum())
    return means
