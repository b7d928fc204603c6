"""Shared fixtures: a small synthetic scenario factory and one Ray runtime for the Ray tests."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from raysim.scenario.sections import Scenario, parse_scenario

TINY = {
    "run": {"name": "tiny", "seed": 3, "rounds": 4, "eval_every": 1, "executor": "local"},
    "data": {"dataset": "synthetic", "num_clients": 8, "partition": "natural",
             "synthetic": {"alpha": 0.5, "beta": 0.5}},
    "model": {"name": "logreg"},
    "client": {"epochs": 1, "batch_size": 10, "lr": 0.05},
    "selection": {"clients_per_round": 4},
}


def tiny_table(**sections: dict) -> dict:
    """The tiny scenario as a TOML-like table, with sections merged key by key."""
    table = copy.deepcopy(TINY)
    for name, values in sections.items():
        table.setdefault(name, {}).update(values)
    return table


@pytest.fixture
def tiny():
    """Builds a tiny synthetic scenario (8 devices, 4 per round, logreg) with overrides."""

    def make(**sections: dict) -> Scenario:
        return parse_scenario(tiny_table(**sections))

    return make


@pytest.fixture(scope="session")
def ray_runtime():
    """One local Ray runtime with 2 CPUs for all Ray tests, shut down at the end."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def whole_and_resumed(scenario: Scenario, root, *, after: int):
    """Runs ``scenario`` whole, then again interrupted after round ``after`` and resumed from its
    checkpoint; returns both run folders, for tests that resumed runs end as uninterrupted ones."""
    import pytest

    from raysim.api import run

    whole = run(scenario, results_root=root / "whole")

    def stop(row: dict) -> None:
        if row["round"] == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(scenario, results_root=root / "cut", on_round=stop)
    (cut,) = (root / "cut" / scenario.run.name).iterdir()
    run(scenario, resume=cut)
    return whole.run_dir, cut


def server_start(strategy, params):
    """The driver's server state before the first step (``sim/kernel/driver.py``)."""
    from raysim.algorithms.strategy import ServerState

    return ServerState(params=params, strategy_state=strategy.init(params))


def server_step_of(strategy, state, updates):
    """One server step without privacy, as the driver takes it (``sim/kernel/server_step.py``)."""
    from raysim.sim.kernel.server_step import server_step

    return server_step(strategy, state, updates, privacy=None, round_number=state.version + 1, dropped=())


EVERYONE = {"selection": {"clients_per_round": 8}}  # the tiny scenario's 8 devices (ledger, hierarchical)


@pytest.fixture(scope="module")
def ledger_run(tmp_path_factory) -> Path:
    """A finished 2-round ledger run: scenario.toml, rounds.parquet with block_hash, ledger.json."""
    root = tmp_path_factory.mktemp("received")
    from raysim.api import run

    scenario = parse_scenario(tiny_table(run={"rounds": 2}, network={"topology": "ledger"}, **EVERYONE))
    return run(scenario, results_root=root).run_dir


@pytest.fixture
def received(ledger_run, tmp_path) -> Path:
    """A copy of the run, as someone else's folder: results/<scenario>/<run id>."""
    return Path(shutil.copytree(ledger_run, tmp_path / "from_them" / "tiny" / ledger_run.name))


