"""A run folder's checkpoint: ``checkpoint.zip``, data only, checked against the folder on resume.

    checkpoint.zip
        run.json     format, version and the SHA-256 of the resolved scenario it was written under
        driver.zip   the driver's state (raysim.sim.state.checkpoint: JSON and .npy arrays, no code)

It is written after each checkpointed round's rows are on disk, atomically (temporary file, then
rename), so an interrupted run keeps every round it recorded. ``--resume`` reads it only when it
fits the folder: the scenario is the one it was written under, and its round is a whole number
within the scenario's rounds that ``rounds.parquet`` records, ending at the same simulated time,
among rounds recorded 1, 2, ... without a gap; anything else is refused before anything is run
or changed. Its zips are read in place, never inflated (``checkpoint.stored_members``), so
reading one costs no more memory than its size. Checkpoints of older versions
(``checkpoint.pkl``, pickles) are refused unread.
"""

from __future__ import annotations

import hashlib
import io
import json
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from raysim.files import atomic_write
from raysim.results.results import ResultsError, _read_table
from raysim.sim.state import checkpoint

CHECKPOINT = "checkpoint.zip"
CLIENT_STATE = "client_state"  # the per-client store's files the checkpoint names (sim/state/state_store.py)
PICKLED = "checkpoint.pkl"  # what raysim wrote before: never read
_FORMAT, _VERSION = "raysim-checkpoint", 1
_MEMBERS = ("run.json", "driver.zip")


@dataclass(frozen=True)
class Checkpoint:
    round: int
    driver: bytes  # the driver's state; the driver decodes it against itself (raysim.sim.state.checkpoint)


def write_checkpoint(run_dir: Path, snapshot: bytes, *, scenario_toml: str) -> None:
    """Replaces the run's checkpoint with ``snapshot``, the driver's state after its last round."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(_MEMBERS[0], json.dumps({"format": _FORMAT, "version": _VERSION,
                                                  "scenario_sha256": _fingerprint(scenario_toml)}))
        archive.writestr(_MEMBERS[1], snapshot)
    atomic_write(run_dir / CHECKPOINT, buffer.getvalue())


def read_checkpoint(run_dir: Path, *, scenario_toml: str) -> Checkpoint:
    """The run folder's checkpoint, when it fits the folder and ``scenario_toml`` (the resolved
    scenario the run continues with); ResultsError naming the file and the fix otherwise, and
    FileNotFoundError when the folder has none."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        if (run_dir / PICKLED).exists():
            raise ResultsError(f"{run_dir / PICKLED} is a checkpoint of an older raysim, a pickle, which --resume no "
                               "longer reads (a pickle can run code); it was not opened: start the run again")
        raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT} to resume from (was run.checkpoint_every = 0?)")
    try:
        run, driver = _unpack(checkpoint.read_bounded(path))
        round_number, sim_time = checkpoint.read_progress(driver)
    except (checkpoint.CheckpointError, OSError) as exc:
        raise ResultsError(f"{path} was refused: {exc}; it is damaged or not raysim's, and nothing in it "
                           "was run: start the run again") from None
    if run.get("scenario_sha256") != _fingerprint(scenario_toml):
        raise ResultsError(f"{path} was written under another scenario than {run_dir / 'scenario.toml'} now holds "
                           "(edited since?): a resumed run continues its own scenario; restore that file, or start "
                           "a new run with the edited one")
    rounds = tomllib.loads(scenario_toml)["run"]["rounds"]  # resolved: every key is there
    if not 0 <= round_number <= rounds:
        raise ResultsError(f"{path} is at round {round_number}, outside the scenario's rounds 0 to {rounds}: it "
                           "does not belong to this run; start the run again")
    _check_recorded(run_dir, path, round_number, sim_time)
    return Checkpoint(round=round_number, driver=driver)


def _unpack(data: bytes) -> tuple[dict, bytes]:
    members = checkpoint.stored_members(data)
    if sorted(members) != sorted(_MEMBERS):
        raise checkpoint.CheckpointError(f"its entries are {sorted(members)[:5]}, not {list(_MEMBERS)}")
    try:
        run = json.loads(bytes(members[_MEMBERS[0]]).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSON and Unicode errors are ValueErrors
        raise checkpoint.CheckpointError(f"not a raysim checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(run, dict) or (run.get("format"), run.get("version")) != (_FORMAT, _VERSION):
        raise checkpoint.CheckpointError(f"its {_MEMBERS[0]} is not a raysim checkpoint's of version {_VERSION}")
    return run, bytes(members[_MEMBERS[1]])


def _check_recorded(run_dir: Path, path: Path, round_number: int, sim_time: float) -> None:
    """The checkpoint's round is one ``rounds.parquet`` records, ending at the same simulated
    time, among whole rounds recorded from 1 without a gap: the rows after it are the ones a
    resumed run redoes (and drops first), so a round the table was edited to hold (a negative
    one, a float) cannot make the resumed run drop or retype the rounds recorded."""
    table = run_dir / "rounds.parquet"
    rounds = _read_table(table) if table.is_file() else None
    if rounds is not None and ("round" not in rounds or rounds["round"].dtype.kind not in "iu"
                               or "sim_time" not in rounds):
        raise ResultsError(f"{table} has no column 'round' of whole numbers and 'sim_time': it is not a raysim "
                           "run's table; start the run again")
    recorded = sorted(set(rounds["round"].tolist())) if rounds is not None else []
    if recorded != list(range(1, len(recorded) + 1)):
        raise ResultsError(f"{table} records rounds {recorded[0]} to {recorded[-1]} with gaps or rounds below 1: "
                           "it is not a raysim run's table; start the run again")
    if round_number not in recorded:
        span = f"rounds {recorded[0]} to {recorded[-1]}" if recorded else "no round"
        raise ResultsError(f"{path} is at round {round_number}, but {table} records {span}: the checkpoint does "
                           "not belong to these results (copied from another run?); start the run again")
    ends = rounds.loc[rounds["round"] == round_number, "sim_time"]
    if not (ends == sim_time).all():
        raise ResultsError(f"{path} is at round {round_number} ending at simulated time {sim_time} s, but {table} "
                           f"records {ends.iloc[0]} s for it: the checkpoint does not belong to these results; "
                           "start the run again")


def _fingerprint(scenario_toml: str) -> str:
    return hashlib.sha256(scenario_toml.encode("utf-8")).hexdigest()
