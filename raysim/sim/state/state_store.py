"""What each client keeps between rounds, kept by client id outside the workers, in a memory
budget, spilling to disk beyond it.

A client algorithm's state (SCAFFOLD's c_i, Ditto's personal model, a user's arrays) and the
error-feedback memory of a compressed uplink are named numpy arrays in a *slot* of the client's
entry (``"algorithm"``, ``"feedback"``). Keeping them here, in the driver, rather than in the
actor that trained the client means they do not depend on how clients are packed onto actors,
survive a lost actor, and are checkpointed with the run.

Memory: the entries most recently used stay in memory up to ``budget_bytes``; older ones are
written to ``directory`` as ``<client>.<slot>.<generation>.npz`` (numeric ``.npy`` members,
stored) and read back when next needed. 1,000 clients of the FedAvg CNN under SCAFFOLD hold
6.7 GB of controls (float32); a run keeps the budget's worth in memory and the rest on disk.

Checkpoints: :meth:`flush` writes every changed entry before a snapshot, so the snapshot holds
only file names (``files``), never the arrays. A file is never rewritten: a new state gets a new
generation, and a superseded file is deleted only once a later snapshot no longer needs it (two
flushes later: the checkpoint written after the last flush may still be the one a hard kill
leaves). A snapshot's names are hostile input on resume: each must be a file of this pattern in
the directory, read with no pickle, numeric dtypes only (``checkpoint.read_arrays``).
"""

from __future__ import annotations

import re
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Mapping

import numpy as np

from raysim.sim.state.checkpoint import CheckpointError, read_arrays, write_arrays

_FILE = re.compile(r"(\d+)\.([a-z]+)\.(\d+)\.npz")
Arrays = dict[str, np.ndarray]


class ClientStore:
    """Per client and slot, a dict of named arrays; ``get`` returns {} for a client never stored."""

    REBUILT = ("directory", "budget_bytes", "cache", "dirty", "cached_bytes", "_temporary")

    def __init__(self, *, budget_bytes: int, directory: Path | None = None):
        self.budget_bytes = budget_bytes
        self._temporary = None
        self.directory = directory
        self.cache: OrderedDict[tuple[int, str], Arrays] = OrderedDict()  # least recently used first
        self.dirty: set[tuple[int, str]] = set()  # in memory, newer than its file
        self.cached_bytes = 0
        self.files: dict[int, dict[str, str]] = {}  # client -> slot -> its current file
        self.generation = 0
        self.retired: list[str] = []  # superseded since the last flush
        self.retiring: list[str] = []  # superseded before it: deleted at the next flush

    def use_directory(self, directory: Path) -> None:
        """Spills into ``directory`` (a run folder's ``client_state``, made on the first write)."""
        self.directory = directory

    def get(self, client: int, slot: str) -> Arrays:
        key = (client, slot)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        name = self.files.get(client, {}).get(slot)
        if name is None:
            return {}
        arrays = read_arrays(self._path(name), where=f"client {client}'s {slot} state")
        self._keep(key, arrays, dirty=False)
        return arrays

    def put(self, client: int, slot: str, arrays: Mapping[str, np.ndarray]) -> None:
        key = (client, slot)
        self._drop(key)
        self._keep(key, {name: np.asarray(value) for name, value in arrays.items()}, dirty=True)

    def flush(self) -> None:
        """Writes every changed entry and deletes the files no checkpoint can need any more."""
        for key in sorted(self.dirty):
            self._write(key, self.cache[key])
        self.dirty.clear()
        for name in self.retiring:
            self._path(name).unlink(missing_ok=True)
        self.retiring, self.retired = self.retired, []

    def forget_unreferenced(self, population: int) -> None:
        """After a restore: checks the snapshot's names against the run (each a client of the
        ``population``'s file of that client and slot, of a generation this store has written,
        present in its folder), then deletes the files a run wrote after its last checkpoint (no
        snapshot names them). CheckpointError names the entry, before anything is deleted."""
        for client, slots in self.files.items():
            if type(client) is not int or not 0 <= client < population or not isinstance(slots, dict):
                raise CheckpointError(f"clients.store.files: {client!r} is not a client of this run (0 to "
                                      f"{population - 1})")
            for slot, name in slots.items():
                match = _FILE.fullmatch(name) if isinstance(name, str) else None
                if not match or match.group(1, 2) != (str(client), slot) or int(match[3]) > self.generation:
                    raise CheckpointError(f"clients.store.files[{client}][{slot!r}]: {name!r} is not a file this "
                                          f"store wrote for client {client}'s {slot} state")
                read_arrays(self._path(name), where=f"client {client}'s {slot} state")  # read now, not mid-run
        named = {name for slots in self.files.values() for name in slots.values()} | set(self.retired) | set(self.retiring)
        for name in named:
            if not _FILE.fullmatch(name) or not self._path(name).is_file():
                raise CheckpointError(f"client state file {name!r} is not in {self._dir()}")
        folder = self._dir()
        for path in folder.iterdir() if folder.is_dir() else ():
            if _FILE.fullmatch(path.name) and path.name not in named:
                path.unlink()

    def close(self) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()

    def _keep(self, key: tuple[int, str], arrays: Arrays, *, dirty: bool) -> None:
        self.cache[key] = arrays
        self.cached_bytes += _size(arrays)
        if dirty:
            self.dirty.add(key)
        while self.cached_bytes > self.budget_bytes and self.cache:
            old, held = self.cache.popitem(last=False)
            if old in self.dirty:
                self._write(old, held)
                self.dirty.discard(old)
            self.cached_bytes -= _size(held)

    def _drop(self, key: tuple[int, str]) -> None:
        held = self.cache.pop(key, None)
        if held is not None:
            self.cached_bytes -= _size(held)
        self.dirty.discard(key)

    def _write(self, key: tuple[int, str], arrays: Arrays) -> None:
        client, slot = key
        self.generation += 1
        name = f"{client}.{slot}.{self.generation}.npz"
        self._dir().mkdir(parents=True, exist_ok=True)
        write_arrays(self._path(name), arrays)
        previous = self.files.setdefault(client, {}).get(slot)
        if previous is not None:
            self.retired.append(previous)
        self.files[client][slot] = name

    def _dir(self) -> Path:
        if self.directory is None:  # no run folder (a test, a driver used on its own)
            self._temporary = tempfile.TemporaryDirectory(prefix="raysim-client-state-")
            self.directory = Path(self._temporary.name)
        return self.directory

    def _path(self, name: str) -> Path:
        if not _FILE.fullmatch(name):
            raise CheckpointError(f"client state file {name!r} is not a name this store writes")
        return self._dir() / name


def _size(arrays: Arrays) -> int:
    return sum(int(a.nbytes) for a in arrays.values())

