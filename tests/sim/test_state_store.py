"""The per-client store: a memory budget with spilling, files that a checkpoint names, and
those names and files read as hostile input."""

import zipfile

import numpy as np
import pytest

from raysim.sim.state.checkpoint import CheckpointError
from raysim.sim.state.state_store import ClientStore

MB = 2**20


def _state(client: int, size: int = MB // 8) -> dict:
    return {"control": np.full(size, float(client)), "steps": np.array([client])}


def test_entries_beyond_the_budget_spill_to_disk_and_come_back_equal(tmp_path):
    store = ClientStore(budget_bytes=3 * MB)
    store.use_directory(tmp_path)
    for client in range(10):
        store.put(client, "algorithm", _state(client))
    assert store.cached_bytes <= 3 * MB
    assert len(list(tmp_path.glob("*.npz"))) == 10 - len(store.cache)  # the rest was written
    for client in range(10):
        got = store.get(client, "algorithm")
        np.testing.assert_array_equal(got["control"], _state(client)["control"])
        assert got["steps"].tolist() == [client]
    assert store.get(10, "algorithm") == {} and store.get(0, "feedback") == {}


def test_a_snapshot_names_files_and_superseded_files_go_two_flushes_later(tmp_path):
    store = ClientStore(budget_bytes=100 * MB)
    store.use_directory(tmp_path)
    store.put(1, "algorithm", _state(1))
    store.flush()  # checkpoint 1 names generation 1
    first = store.files[1]["algorithm"]
    store.put(1, "algorithm", _state(2))
    store.flush()  # checkpoint 2 names generation 2; checkpoint 1's file may still be the last written
    assert (tmp_path / first).exists() and store.files[1]["algorithm"] != first
    store.flush()  # checkpoint 3 written after checkpoint 2: nothing needs generation 1 any more
    assert not (tmp_path / first).exists()
    np.testing.assert_array_equal(store.get(1, "algorithm")["control"], _state(2)["control"])


def test_a_restored_store_reads_its_files_and_deletes_what_no_checkpoint_names(tmp_path):
    store = ClientStore(budget_bytes=0)  # everything on disk
    store.use_directory(tmp_path)
    store.put(3, "algorithm", _state(3))
    store.flush()
    files = {c: dict(s) for c, s in store.files.items()}
    store.put(4, "algorithm", _state(4))  # written after the checkpoint: an orphan after a hard kill
    fresh = ClientStore(budget_bytes=0)
    fresh.use_directory(tmp_path)
    fresh.files, fresh.generation = files, store.generation  # as a restore sets them
    fresh.forget_unreferenced(population=8)
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == [files[3]["algorithm"]]
    np.testing.assert_array_equal(fresh.get(3, "algorithm")["control"], _state(3)["control"])


@pytest.mark.parametrize("name", ["../secret.npz", "/etc/passwd", "1.algorithm.1.npy", "x.algorithm.1.npz"])
def test_a_file_name_the_store_never_writes_is_refused(tmp_path, name):
    store = ClientStore(budget_bytes=0)
    store.use_directory(tmp_path)
    store.files = {1: {"algorithm": name}}
    with pytest.raises(CheckpointError, match="is not a file this store wrote"):
        store.forget_unreferenced(population=8)
    with pytest.raises(CheckpointError):
        store.get(1, "algorithm")


def _crafted(path, member: str, payload: bytes, compress=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compress) as archive:
        archive.writestr(member, payload)


def test_a_crafted_state_file_is_refused_without_running_code(tmp_path):
    import io
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('RAN').write_text('x')",))

    buffer = io.BytesIO()
    np.save(buffer, np.array([Boom()], dtype=object), allow_pickle=True)
    cases = {"1.algorithm.1.npz": ("control.npy", buffer.getvalue(), zipfile.ZIP_STORED),
             "2.algorithm.1.npz": ("control.npy", b"\x93NUMPY garbage", zipfile.ZIP_STORED),
             "3.algorithm.1.npz": ("control.npy", np.zeros(3).tobytes(), zipfile.ZIP_DEFLATED),
             "4.algorithm.1.npz": ("../../x.npy", b"", zipfile.ZIP_STORED),
             "5.algorithm.1.npz": ("pickle.pkl", pickle.dumps(1), zipfile.ZIP_STORED)}
    store = ClientStore(budget_bytes=0)
    store.use_directory(tmp_path)
    for name, (member, payload, compress) in cases.items():
        _crafted(tmp_path / name, member, payload, compress)
        store.files[int(name[0])] = {"algorithm": name}
    (tmp_path / "6.algorithm.1.npz").write_bytes(b"not a zip")
    store.files[6] = {"algorithm": "6.algorithm.1.npz"}
    for client in range(1, 7):
        with pytest.raises(CheckpointError):
            store.get(client, "algorithm")
    assert not (tmp_path / "RAN").exists() and not list(tmp_path.parent.glob("RAN"))
