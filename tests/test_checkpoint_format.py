"""Checkpoints hold data only (issue 24): crafted, damaged, foreign or misplaced checkpoints are
refused by ``raysim run --resume`` with one line and exit 2, nothing in them is run, and the
run folder is left exactly as it was."""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysim.api import run
from raysim.cli import main
from raysim.results.checkpoints import read_checkpoint
from raysim.scenario.sections import parse_scenario
from raysim.sim.state import checkpoint
from tests.conftest import tiny_table

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {"run": {"rounds": 4}, "system": {"dropout": 0.2}, "privacy": {"dp": "central", "noise_multiplier": 0.8},
            "server": {"weighting": "uniform"}}


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A tiny run (central DP: the privacy stage holds a bound method; dropouts) interrupted
    after round 3 of 4, with its checkpoint of round 3."""
    root = tmp_path_factory.mktemp("results")

    def stop(row: dict) -> None:
        if row["round"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(parse_scenario(tiny_table(**SECTIONS)), results_root=root, on_round=stop)
    (run_dir,) = (root / "tiny").iterdir()
    return run_dir


@pytest.fixture
def copy(interrupted, tmp_path):
    target = tmp_path / "tiny" / interrupted.name
    shutil.copytree(interrupted, target)
    return target


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def _refused(run_dir: Path, capsys, *words: str) -> None:
    """``raysim run --resume`` exits 2 with one line holding ``words`` and changes nothing."""
    before = _files(run_dir)
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert _files(run_dir) == before


def _open(run_dir: Path) -> tuple[dict, dict, dict[str, bytes]]:
    """(run.json, the driver's state.json, the driver's arrays) of a run folder's checkpoint."""
    outer = zipfile.ZipFile(run_dir / "checkpoint.zip")
    inner = zipfile.ZipFile(io.BytesIO(outer.read("driver.zip")))
    arrays = {n: inner.read(n) for n in inner.namelist() if n != "state.json"}
    return json.loads(outer.read("run.json")), json.loads(inner.read("state.json")), arrays


def _write(run_dir: Path, run_json: dict, document: dict | str, arrays: dict[str, bytes]) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("state.json", document if isinstance(document, str) else json.dumps(document))
        for name, data in arrays.items():
            archive.writestr(name, data)
    with zipfile.ZipFile(run_dir / "checkpoint.zip", "w") as archive:
        archive.writestr("run.json", json.dumps(run_json))
        archive.writestr("driver.zip", inner.getvalue())


def _edit(run_dir: Path, change) -> None:
    run_json, document, arrays = _open(run_dir)
    change(document, arrays)
    _write(run_dir, run_json, document, arrays)


def _npy(descr: str | list, shape: tuple, data: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def test_the_checkpoint_is_json_and_numeric_npy(interrupted):
    run_json, document, arrays = _open(interrupted)
    assert set(run_json) == {"format", "version", "scenario_sha256"}
    assert (document["round"], document["state"]["round"]) == (3, 3)
    rounds = pd.read_parquet(interrupted / "rounds.parquet")
    assert document["sim_time"] == rounds.loc[rounds["round"] == 3, "sim_time"].item()
    for data in arrays.values():
        assert np.load(io.BytesIO(data), allow_pickle=False).dtype.kind in "biuf"
    assert "link" not in document["state"]["privacy"]["fields"]  # the bound method is rebound, not written


def test_no_pickle_in_the_checkpoint_path():
    for module in ("raysim/sim/state/checkpoint.py", "raysim/results/checkpoints.py", "raysim/api.py"):
        tree = ast.parse((ROOT / module).read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                    for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {"pickle", "cloudpickle", "dill"} & imported, module


def _object_field(document, arrays):
    """The issue's lying dtype: a structured dtype with an object field, filled with raw bytes."""
    arrays["arrays/0.npy"] = _npy([('a', '|O')], (1,), b"\x41" * 8)


def _object_array(document, arrays):
    arrays["arrays/0.npy"] = _npy("|O", (1,), b"\x41" * 8)


def _void_array(document, arrays):
    arrays["arrays/0.npy"] = _npy("|V8", (1,), b"\x41" * 8)


def _data_past_the_end(document, arrays):
    """A header promising more items than the data holds (the issue's out-of-bounds read)."""
    arrays["arrays/0.npy"] = _npy("<f4", (1_000_000,), b"\x00" * 8)


def _extra_attribute(document, arrays):
    document["state"]["executor"] = None


def _missing_attribute(document, arrays):
    del document["state"]["clock"]


def _class_outside_raysim(document, arrays):
    document["state"]["clock"]["object"] = "os:system"


def _a_plain_class_where_the_driver_has_none(document, arrays):
    document["state"]["bases"]["dict"].append([99, {"object": "builtins:object", "fields": {}}])


def _raysim_function(document, arrays):
    document["state"]["clock"]["object"] = "raysim.cli:main"


def _extra_field(document, arrays):
    document["state"]["clock"]["fields"]["advance"] = 1  # would shadow a method


def _wrong_type(document, arrays):
    document["state"]["busy"] = {"list": []}  # a list where the driver keeps a set


def _wrong_class(document, arrays):
    document["state"]["clock"] = document["state"]["policy"]


def _too_deep(document, arrays):
    document["state"]["broadcasts"] = json.loads('{"list": [' * 200 + "1" + "]}" * 200)


@pytest.mark.parametrize("change, words", [
    (_object_field, ["numeric arrays only"]), (_object_array, ["numeric arrays only"]),
    (_void_array, ["numeric arrays only"]), (_data_past_the_end, ["not a readable array"]),
    (_extra_attribute, ["unknown ['executor']"]), (_missing_attribute, ["missing ['clock']"]),
    (_class_outside_raysim, ["'os:system' is not a class of raysim's state"]),
    (_raysim_function, ["'raysim.cli:main' is not a class"]),
    (_a_plain_class_where_the_driver_has_none, ["'builtins:object' is not a class of raysim's state"]), (_extra_field, ["are not a SimClock's"]),
    (_wrong_type, ["busy: the checkpoint has a list where this scenario's driver has a set"]),
    (_wrong_class, ["clock: the checkpoint has a SyncRounds"]), (_too_deep, ["nested deeper"]),
])
def test_a_crafted_driver_state_is_refused(copy, capsys, change, words):
    _edit(copy, change)
    _refused(copy, capsys, "checkpoint.zip was refused", *words)


@pytest.mark.parametrize("round_number, words", [(0, "but"), (-5, "outside the scenario's rounds 0 to 4"),
                                                 (5, "outside"), (10**12, "outside"), (-10**12, "outside")])
def test_a_round_the_folder_does_not_record_is_refused(copy, capsys, round_number, words):
    def change(document, arrays):
        document["round"] = document["state"]["round"] = round_number

    _edit(copy, change)
    _refused(copy, capsys, f"is at round {round_number}, {words}")


def test_a_snapshot_that_disagrees_with_rounds_parquet_is_refused(copy, capsys):
    def later(document, arrays):
        document["sim_time"] = document["state"]["_round_ended"] = document["sim_time"] + 1.0

    _edit(copy, later)
    _refused(copy, capsys, "is at round 3 ending at simulated time", "does not belong to these results")


def test_a_header_that_disagrees_with_the_state_is_refused(copy, capsys):
    rounds = pd.read_parquet(copy / "rounds.parquet")

    def claim_round_2(document, arrays):  # the header matches round 2's row; the state is round 3's
        document["round"], document["sim_time"] = 2, float(rounds.loc[rounds["round"] == 2, "sim_time"].item())

    _edit(copy, claim_round_2)
    _refused(copy, capsys, "its state is at round/time (3,")


@pytest.mark.parametrize("document", ["", "[1, 2]", '{"format": "raysim-driver-state", "version": 1, "round": 3}'])
def test_an_empty_or_foreign_state_is_refused(copy, capsys, document):
    run_json, _, arrays = _open(copy)
    _write(copy, run_json, document, {})
    _refused(copy, capsys, "checkpoint.zip was refused")


def test_an_empty_snapshot_is_refused(copy, capsys):
    def empty(document, arrays):
        document["state"] = {}

    _edit(copy, empty)
    _refused(copy, capsys, "holds no driver state")


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"", lambda b: b"garbage!"])
def test_a_damaged_checkpoint_is_refused(copy, capsys, damage):
    path = copy / "checkpoint.zip"
    path.write_bytes(damage(path.read_bytes()))
    _refused(copy, capsys, "checkpoint.zip was refused")


class _RunsCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_an_old_pickled_checkpoint_is_refused_unread(copy, tmp_path, capsys):
    marker = tmp_path / "pwned"
    (copy / "checkpoint.zip").unlink()
    (copy / "checkpoint.pkl").write_bytes(pickle.dumps({"round": 1, "driver": _RunsCommand(f"touch {marker}")}))
    _refused(copy, capsys, "checkpoint.pkl is a checkpoint of an older raysim", "it was not opened")
    assert not marker.exists()


def test_an_edited_scenario_is_refused(copy, capsys):
    """Finding 10: resuming after scenario.toml was edited is a one-line refusal, not a traceback."""
    path = copy / "scenario.toml"
    path.write_text(path.read_text().replace('name = "logreg"', 'name = "mlp2nn"'))
    _refused(copy, capsys, "was written under another scenario", "scenario.toml")


def test_a_state_that_does_not_fit_the_driver_is_refused(copy, capsys):
    """A model of another size inside the checkpoint (the scenario unchanged): refused by its shape."""
    run_json, document, arrays = _open(copy)
    index = document["state"]["state"]["fields"]["params"]["array"]
    arrays[f"arrays/{index}.npy"] = _npy("<f4", (3,), b"\x00" * 12)
    _write(copy, run_json, document, arrays)
    _refused(copy, capsys, "state.params: the checkpoint has a float32 array of shape (3,) where this scenario's "
                           "driver has float32 (610,)")


def test_a_huge_negative_round_does_not_hang(copy):
    def change(document, arrays):
        document["round"] = document["state"]["round"] = -10**12

    _edit(copy, change)
    done = subprocess.run([sys.executable, "-m", "raysim", "run", "--resume", str(copy), "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is at round -1000000000000" in done.stderr


def test_the_real_checkpoint_resumes(copy):
    scenario = parse_scenario(tiny_table(**SECTIONS))
    assert read_checkpoint(copy, scenario_toml=scenario.to_toml()).round == 3
    outcome = run(scenario, resume=copy)
    assert outcome.summary["resumed_after_round"] == 3
    assert list(pd.read_parquet(copy / "rounds.parquet")["round"]) == [1, 2, 3, 4]


def test_encoding_refuses_what_it_cannot_hold():
    # len, not print: once a worker's log reaches this process, Ray's tqdm support replaces
    # builtins.print with a Python function (ray/experimental/tqdm_ray.py, RAY_TQDM_PATCH_PRINT)
    with pytest.raises(TypeError, match=r"x\[\]: a builtins\.builtin_function_or_method cannot be checkpointed"):
        checkpoint.encode({"x": [len]}, (0, 0.0))


@pytest.mark.ray
def test_the_driver_actor_refuses_a_state_that_does_not_fit_and_resumes_a_real_one(ray_runtime, tmp_path):
    """With Ray the snapshot crosses to the driver actor as bytes and is decoded there."""
    from raysim.results.results import ResultsError

    scenario = parse_scenario(tiny_table(run={"rounds": 2, "executor": "ray"}))

    def stop(row: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(scenario, results_root=tmp_path, on_round=stop)
    (cut,) = (tmp_path / "tiny").iterdir()
    saved, rounds = (cut / "checkpoint.zip").read_bytes(), (cut / "rounds.parquet").read_bytes()
    _edit(cut, _wrong_type)
    with pytest.raises(ResultsError, match="busy: the checkpoint has a list where this scenario's driver has a set"):
        run(scenario, resume=cut)
    assert (cut / "rounds.parquet").read_bytes() == rounds
    (cut / "checkpoint.zip").write_bytes(saved)
    run(scenario, resume=cut)
    assert list(pd.read_parquet(cut / "rounds.parquet")["round"]) == [1, 2]


def test_a_driver_state_of_the_previous_version_is_refused_saying_so(copy, capsys):
    """Version 4 keeps each optional feature's state in its stage (a version-3 state has them as
    driver attributes); version 3 checkpoints the selection stage: an older state would resume
    as something else, so it is refused, naming both versions."""
    _edit(copy, lambda document, arrays: document.update(version=3))
    _refused(copy, capsys, "checkpoint.zip was refused", "driver state version 3", "reads version 4")
