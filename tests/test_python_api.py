"""The Python API: a scenario from a file or a dict (``raysim.scenario.load`` / ``from_dict``),
objects handed to ``raysim.api.run`` recorded with their options, a run of objects from a module
resumed from its folder by the command line as the same run, one of a script's objects
refused at once, and the start-up's phases in the summary."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

import raysim.scenario
from raysim.api import run
from raysim.cli import main
from raysim.inputs import ConfigError
from tests.conftest import TINY, tiny_table

ROOT = Path(__file__).resolve().parents[1]
YOURS = ROOT / "examples" / "write_your_own"


def _wall_free(frame: pd.DataFrame) -> pd.DataFrame:
    """A results table without its wall-clock columns, the only ones a resumed run may change."""
    return frame.drop(columns=[c for c in frame.columns if "wall" in c]).reset_index(drop=True)


def test_a_dict_is_checked_as_the_same_file_is(tmp_path):
    table = tiny_table(client={"lr": 0.05, "epochz": 1})
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(table))
    with pytest.raises(ConfigError) as from_file:
        raysim.scenario.load(path)
    with pytest.raises(ConfigError) as from_dict:
        raysim.scenario.from_dict(table)
    assert str(from_file.value) == str(from_dict.value) and "unknown key 'client.epochz'" in str(from_dict.value)


def test_overrides_as_a_dict_or_as_the_command_line_writes_them(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(TINY))
    as_dict = raysim.scenario.load(path, {"run.rounds": 7, "policy.over_selection": 1.5})
    as_list = raysim.scenario.load(path, ["run.rounds=7", "policy.over_selection=1.5"])
    assert as_dict == as_list == raysim.scenario.from_dict(TINY, {"run.rounds": 7, "policy.over_selection": 1.5})
    assert as_dict.run.rounds == 7 and as_dict.policy.over_selection == 1.5
    assert TINY["run"]["rounds"] == 4 and "policy" not in TINY  # the caller's table is not changed


@pytest.mark.parametrize(("table", "overrides", "words"), [
    (tiny_table(data={"options": {"scale": object()}}), None, "data.options.scale = <object"),
    (TINY, {"client.lr": np.float32(0.05)}, "client.lr = np.float32(0.05) (float32) is not a value"),
    (TINY, "run.rounds=3", "overrides must be a dict"),
    (["run"], None, "a scenario must be a table"),
    (TINY, {"run.rounds": "3"}, "run.rounds must be an integer, got '3'"),
])
def test_what_no_scenario_file_could_hold_is_refused_by_key(table, overrides, words):
    with pytest.raises(ConfigError) as refused:
        raysim.scenario.from_dict(table, overrides)
    assert words in str(refused.value)


class KeepsNothing:
    def __init__(self, mu: float):
        self.strength = mu

    def train(self, task):
        raise AssertionError("never called: refused before the run")


class KeepsAnArray(KeepsNothing):
    def __init__(self, weights):
        self.weights = weights


@pytest.mark.parametrize(("algorithm", "words"), [
    (KeepsNothing(mu=0.1), "its options cannot be recorded, since its constructor's parameter 'mu' is not kept as "
                           "self.mu: keep each parameter as an attribute of the same name"),
    (KeepsAnArray(np.ones(2)), "tests.test_python_api:KeepsAnArray: its option.weights = array([1., 1.]) "
                               "(ndarray) is not a value a scenario file can hold"),
])
def test_an_object_whose_options_cannot_be_recorded_is_refused_before_the_run(tiny, tmp_path, algorithm, words):
    with pytest.raises(ConfigError) as refused:
        run(tiny(), results_root=tmp_path, client_algorithm=algorithm)
    assert words in str(refused.value)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_run_of_objects_from_a_module_resumes_from_its_folder_as_the_same_run(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(YOURS))
    from yours.client import ProxSGD
    from yours.policy import Sequential
    from yours.strategy import CoordinateMedian

    scenario = raysim.scenario.load(YOURS / "yours.toml", {"run.executor": "local", "run.rounds": 5})

    def objects():  # built afresh for each run, as a script run twice builds them
        return {"client_algorithm": ProxSGD(mu=0.02), "strategy": CoordinateMedian(lr=0.9),
                "policy": Sequential(first=2)}

    whole = run(scenario, results_root=tmp_path / "whole", **objects())

    def stop(row: dict) -> None:
        if row["round"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(scenario, results_root=tmp_path / "cut", on_round=stop, **objects())
    (cut,) = (tmp_path / "cut" / "yours").iterdir()
    record = (cut / "scenario.toml").read_text()
    for line in ('algorithm = "yours.client:ProxSGD"', "mu = 0.02", 'strategy = "yours.strategy:CoordinateMedian"',
                 "lr = 0.9", 'kind = "yours.policy:Sequential"', "first = 2"):
        assert line in record
    assert main(["run", "--resume", str(cut), "--trust-code", "--quiet"]) == 0
    for table in ("rounds", "clients"):
        whole_table = _wall_free(pd.read_parquet(whole.run_dir / f"{table}.parquet"))
        pd.testing.assert_frame_equal(whole_table, _wall_free(pd.read_parquet(cut / f"{table}.parquet")))
    assert len(whole_table) > 0 and pd.read_parquet(cut / "rounds.parquet")["round"].tolist() == [1, 2, 3, 4, 5]


SCRIPT = """
import sys
import raysim.scenario
from raysim import api
from raysim.models.algorithm import LocalResult
from tests.conftest import TINY

class Plain:
    def __init__(self, scale=1.0):
        self.scale = scale

    def train(self, task):
        for x, y in task.batches():
            task.model.zero_grad()
            task.loss(task.model(x), y).backward()
            for p in task.model.parameters():
                p.data -= self.scale * task.settings.sgd.lr * p.grad
        return LocalResult(steps=1, loss=0.0)

api.run(raysim.scenario.from_dict(TINY, {"run.rounds": 2}), results_root=sys.argv[1], client_algorithm=Plain(0.5))
"""


@pytest.fixture
def no_ray(monkeypatch):
    """Any start of Ray fails the test: what is refused must be refused before it."""
    from raysim.runtime import session

    def start(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(session, "start", start)


def test_a_run_of_a_scripts_object_is_recorded_as_such_and_its_resume_refused_at_once(tmp_path, capsys, no_ray):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    # a script run from the repository imports `tests` as a user's script imports its project:
    # through the path (a script's own folder, not the working directory, is on sys.path)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "res")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": path})
    assert done.returncode == 0, done.stderr[-2000:]
    (folder,) = (tmp_path / "res" / "tiny").iterdir()
    record = (folder / "scenario.toml").read_text()
    assert 'algorithm = "__main__:Plain"' in record and "scale = 0.5" in record
    for trust in ([], ["--trust-code"]):
        started = time.perf_counter()
        assert main(["run", "--resume", str(folder), "--quiet", *trust]) == 2
        assert time.perf_counter() - started < 5
        err = " ".join(capsys.readouterr().err.split())
        assert f"cannot resume {folder}: client.algorithm = '__main__:Plain'" in err
        assert "put the class in a module on the path" in err and "'mypackage.mine:Plain'" in err
    scenario = raysim.scenario.load(folder / "scenario.toml", {"run.executor": "ray"})
    with pytest.raises(ConfigError, match="'__main__:Plain' is a class defined in a script"):
        run(scenario, resume=folder)  # in Python too, unless the object is handed again


def test_the_summary_times_the_start_up_phase_by_phase(tiny, tmp_path):
    """``startup_phases`` (read by benchmarks/startup.py): each phase once, in order, at growing
    times and growing CPU; the run folder's mark is the summary's ``startup_s``. A Ray run's
    phases are checked in tests/runtime/test_lifecycle.py."""
    summary = run(tiny(), results_root=tmp_path).summary
    phases = summary["startup_phases"]
    assert [p["phase"] for p in phases] == ["entered", "data_prepared", "model_built", "run_folder", "first_round"]
    assert phases[0]["at_s"] < 0.01 and phases[0]["process_cpu_s"] > 0  # the imports before run()
    for earlier, later in zip(phases, phases[1:]):
        assert earlier["at_s"] <= later["at_s"] and earlier["process_cpu_s"] <= later["process_cpu_s"]
    assert phases[3]["at_s"] == summary["startup_s"] and phases[-1]["at_s"] <= summary["total_s"]
