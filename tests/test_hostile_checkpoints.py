"""Hostile checkpoints and state files, part two (issue 32, findings 4-6 and 8): what a file
claims (sizes, offsets, rounds) is checked against what was read and against the run, and
every crafted field ends in a one-line refusal (exit 2) naming it, with the folder untouched."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from raysim.cli import main
from raysim.sim.state import checkpoint
from raysim.sim.state.checkpoint import CheckpointError
from tests.test_fuzz_received import JSON, SETTINGS, clear, cli
from tests.test_checkpoint_format import _edit, _files, _npy, _open, _refused, _write, copy, interrupted  # noqa: F401


def _overlapping(copies: int, size: int) -> bytes:
    """A stored zip whose ``copies`` members all point at the same ``size`` bytes (the issue's
    40 references to one array): each central-directory entry names the one local header."""
    payload = _npy("<f4", (size // 4,), bytes(size))
    crc = zlib.crc32(payload)
    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, crc, len(payload), len(payload), 12, 0)
    body = local + b"arrays/0.npy" + payload
    entries = b""
    for i in range(copies):
        name = f"arrays/{i}.npy".encode()
        entries += struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 0, 20, 0, 0, 0, 0, 0, crc, len(payload),
                               len(payload), len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, copies, copies, len(entries), len(body), 0)
    return body + entries + end


def test_overlapping_members_are_refused_whatever_pythons_zipfile_notices():
    """Python's zipfile detects overlaps only from 3.11.8; the reader checks offsets itself."""
    data = _overlapping(40, 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"'arrays/0.npy' \(1048704 bytes at offset 42\) runs into the next"):
            checkpoint.stored_members(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # nothing inflated: the 40 MB the members claim were never allocated


def test_a_checkpoint_whose_driver_zip_overlaps_is_refused(copy, capsys):
    run_json, _, _ = _open(copy)
    with zipfile.ZipFile(copy / "checkpoint.zip", "w") as archive:
        archive.writestr("run.json", json.dumps(run_json))
        archive.writestr("driver.zip", _overlapping(40, 2**16))
    _refused(copy, capsys, "checkpoint.zip was refused", "runs into the next member")


def test_sizes_that_disagree_with_the_bytes_are_refused_not_an_eof_traceback(copy, capsys):
    """A member whose directory entry claims more bytes than follow its header: zipfile raised a
    bare EOFError on reading it."""
    data = bytearray((copy / "checkpoint.zip").read_bytes())
    entry = data.rfind(b"PK\x01\x02")  # the last directory entry: driver.zip's
    struct.pack_into("<2L", data, entry + 20, 10**6, 10**6)  # its compressed and uncompressed sizes
    (copy / "checkpoint.zip").write_bytes(bytes(data))
    _refused(copy, capsys, "checkpoint.zip was refused", "'driver.zip'")


def test_a_file_beyond_the_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "MAX_ARCHIVE_BYTES", 100)
    path = tmp_path / "big.npz"
    path.write_bytes(bytes(101))
    with pytest.raises(CheckpointError, match="101 bytes, beyond the limit of 100 bytes"):
        checkpoint.read_bounded(path)


# --- finding 6: every field, checked against the run ---------------------------------------------

def _state(document):
    return document["state"]


def _float16_infinity(document, arrays):
    index = _state(document)["state"]["fields"]["params"]["array"]
    arrays[f"arrays/{index}.npy"] = _npy("<f4", (610,), np.full(610, np.inf, "<f4").tobytes())


def _negative_counter(document, arrays):
    _state(document)["_task_counter"] = -7


def _nan_clock(document, arrays):
    _state(document)["clock"]["fields"]["_now"] = {"float": "nan"}


def _float_counter(document, arrays):
    _state(document)["_dispatches"] = 2.5


def _busy_stranger(document, arrays):
    _state(document)["busy"] = {"set": [10**9]}


def _in_flight(document):
    """The tiny run's checkpoint holds no task in flight: one is made from a dispatch's fields."""
    info = {"object": "raysim.sim.policies.base:TaskInfo",
            "fields": {"task_id": 0, "client_id": 1, "base_version": 3, "start": 1.0, "end": 2.0, "epochs": 1}}
    task = {"object": "raysim.sim.kernel.dispatch:Task",
            "fields": {"info": info, "samples": 10, "download_s": 0.1, "compute_s": 0.5, "upload_s": 0.1,
                       "trained": False, "status": "unfinished", "result": {"dict": []}, "trigger": None,
                       "start_params": None, "continued": False, "seed_key": 1, "round": 3, "fetched": None,
                       "new_model": None}}
    _state(document)["tasks"] = {"dict": [[0, task]]}
    return task


def _task_of_a_stranger(document, arrays):
    _in_flight(document)["fields"]["info"]["fields"]["client_id"] = 99


def _task_with_a_text_id(document, arrays):
    _in_flight(document)["fields"]["info"]["fields"]["client_id"] = "1"


def _task_at_nan(document, arrays):
    _in_flight(document)["fields"]["compute_s"] = {"float": "nan"}


def _task_of_the_wrong_shape(document, arrays):
    index = len(arrays)
    arrays[f"arrays/{index}.npy"] = _npy("<f4", (3,), bytes(12))
    _in_flight(document)["fields"]["start_params"] = {"array": index}


def _task_of_an_unknown_status(document, arrays):
    _in_flight(document)["fields"]["status"] = "pwned"


def _task_filed_twice(document, arrays):
    _in_flight(document)["fields"]["info"]["fields"]["task_id"] = 5


@pytest.mark.parametrize("change, words", [
    (_float16_infinity, ["state.params", "NaN or infinite"]),
    (_negative_counter, ["_task_counter", "negative count"]),
    (_nan_clock, ["clock._now", "finite number"]),
    (_float_counter, ["_dispatches", "whole numbers"]),
    (_busy_stranger, ["busy", "not a client of this run"]),
    (_task_of_a_stranger, ["tasks[0].info.client_id: 99 is not a client of this run"]),
    (_task_with_a_text_id, ["tasks[0].info.client_id", "TaskInfo holds int"]),
    (_task_at_nan, ["tasks[0].compute_s", "not a finite number"]),
    (_task_of_the_wrong_shape, ["tasks[0].start_params: a float32 array of shape (3,)"]),
    (_task_of_an_unknown_status, ["tasks[0].status: 'pwned'"]),
    (_task_filed_twice, ["tasks[0].info.task_id: 5 where the task is filed as 0"]),
])
def test_a_crafted_field_is_refused_naming_it(copy, capsys, change, words):
    _edit(copy, change)
    _refused(copy, capsys, "checkpoint.zip was refused", *words)


# --- the per-client store's files ---------------------------------------------------------------

SCAFFOLD = {"run": {"rounds": 4}, "server": {"strategy": "scaffold", "weighting": "uniform"}}


@pytest.fixture(scope="module")
def scaffold_cut(tmp_path_factory):
    """A SCAFFOLD run (each client's control in client_state/) interrupted after round 2."""
    from raysim.api import run
    from raysim.scenario.sections import parse_scenario
    from tests.conftest import tiny_table

    root = tmp_path_factory.mktemp("scaffold")

    def stop(row: dict) -> None:
        if row["round"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(parse_scenario(tiny_table(**SCAFFOLD)), results_root=root, on_round=stop)
    (run_dir,) = (root / "tiny").iterdir()
    return run_dir


@pytest.fixture
def scaffold(scaffold_cut, tmp_path):
    import shutil

    return Path(shutil.copytree(scaffold_cut, tmp_path / "tiny" / scaffold_cut.name))


def _refused_with_state(run_dir: Path, capsys, *words: str) -> None:
    """As ``_refused``, with the client_state folder's files left as they were too."""
    before = {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()} == before


def _store_files(document) -> list:
    return _state(document)["clients"]["fields"]["store"]["fields"]["files"]["dict"]


def _renamed(key):
    def change(document, arrays):
        _store_files(document)[0][0] = key
    return change


@pytest.mark.parametrize("key", ["x", -1, 99, 1.5])
def test_a_state_file_filed_under_no_client_is_refused(scaffold, capsys, key):
    _edit(scaffold, _renamed(key))
    _refused_with_state(scaffold, capsys, "checkpoint.zip was refused", "clients.store.files", "not a client of this run")


def test_a_state_file_of_another_client_is_refused(scaffold, capsys):
    def swap(document, arrays):
        files = _store_files(document)
        files[0][1], files[1][1] = files[1][1], files[0][1]

    _edit(scaffold, swap)
    _refused_with_state(scaffold, capsys, "is not a file this store wrote for client")


def test_a_state_file_holding_infinity_is_refused_at_load_not_mid_run(scaffold, capsys):
    """It was read only when its client was next chosen: a failure mid-run (exit 1) or worse."""
    name = _store_files(_open(scaffold)[1])[0][1]["dict"][0][1]
    path = scaffold / "client_state" / name
    arrays = dict(np.load(path))
    arrays = {k: np.full_like(v, np.inf) for k, v in arrays.items()}
    checkpoint.write_arrays(path, arrays)
    _refused_with_state(scaffold, capsys, "checkpoint.zip was refused", name, "NaN or infinite")


# --- finding 5: rounds ----------------------------------------------------------------------------

def _both(run_dir: Path, round_value, rounds_column) -> None:
    """The checkpoint's round and rounds.parquet edited to agree (the issue's setting)."""
    rounds = pd.read_parquet(run_dir / "rounds.parquet")
    last = rounds.iloc[[-1]].assign(round=round_value)
    rounds = pd.concat([rounds, last]).astype({"round": rounds_column})
    rounds.to_parquet(run_dir / "rounds.parquet")

    def change(document, arrays):
        document["round"] = document["state"]["round"] = round_value

    _edit(run_dir, change)


@pytest.mark.parametrize("value, column, words", [
    (-5, "int64", "outside the scenario's rounds 0 to 4"),
    (-10**12, "int64", "outside the scenario's rounds"),
    (3, "float64", "no column 'round' of whole numbers"),
])
def test_a_round_edited_into_both_files_is_refused(copy, capsys, value, column, words):
    _both(copy, value, column)
    _refused(copy, capsys, words)


def test_rounds_recorded_with_a_gap_are_refused(copy, capsys):
    rounds = pd.read_parquet(copy / "rounds.parquet")
    rounds[rounds["round"] != 2].to_parquet(copy / "rounds.parquet")
    _refused(copy, capsys, "records rounds 1 to 3 with gaps")


# --- finding 8: a finished run ----------------------------------------------------------------------

def test_resuming_a_finished_run_with_more_rounds_says_it_is_finished(tmp_path, capsys):
    """Both scenario.toml and the checkpoint's fingerprint edited to 4 rounds: a traceback
    (RuntimeError: no work scheduled) before."""
    import hashlib
    import tomllib

    from raysim.api import run
    from raysim.scenario.sections import parse_scenario
    from tests.conftest import tiny_table

    done = run(parse_scenario(tiny_table(run={"rounds": 2})), results_root=tmp_path).run_dir
    table = tomllib.loads((done / "scenario.toml").read_text())
    table["run"]["rounds"] = 4
    (done / "scenario.toml").write_text(tomli_w.dumps(table))
    run_json, document, arrays = _open(done)
    run_json["scenario_sha256"] = hashlib.sha256(parse_scenario(table).to_toml().encode()).hexdigest()
    _write(done, run_json, document, arrays)
    _refused(done, capsys, "a run that finished at round 2", "start a new run")


# --- fuzzed fields: any value anywhere in the state answers 0, 1 or 2, never a traceback ------------

def _places(node, path=()):
    """Every place in a state.json document a value can be swapped in at."""
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _places(child, (*path, key))


@SETTINGS.__class__(SETTINGS, max_examples=40)
@given(st.data())
def test_fuzzed_state_fields_answer_0_1_or_2(interrupted, tmp_path_factory, data):
    import shutil

    folder = Path(shutil.copytree(interrupted, tmp_path_factory.mktemp("fuzzed") / "tiny" / interrupted.name))
    run_json, document, arrays = _open(folder)
    places = sorted(_places(document["state"]), key=repr)
    path = data.draw(st.sampled_from(places[1:]))
    node = document["state"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(JSON)
    _write(folder, run_json, document, arrays)
    clear(*cli("run", "--resume", folder, "--quiet"))
