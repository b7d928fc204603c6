"""Hashes of every shipped scenario's result tables, for refactors that must not change results.

Each scenario under ``scenarios/`` is run by the ``raysim`` command in its own process, cut to a
few rounds (``--rounds``), and every Parquet table of its run folder is hashed row by row with
the wall-clock columns left out (any column whose name holds ``wall``, and the ``--ignore``d
ones: wall-clock figures differ between two runs of the same commit; the simulated clock must
not). A difference between two commits' files is a change of results, unless an issue asked for it.

    python tools/table_hashes.py --out /tmp/before.json            # on the old commit
    python tools/table_hashes.py --out /tmp/after.json --compare /tmp/before.json

A sweep file (``[sweep]``) is skipped: its trials are ordinary scenarios. Flower scenarios need
the ``flower`` extra; without it they are reported as skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# Wall-clock columns whose names hold no "wall": the time each contribution step took to compute
# (contributions.parquet). privacy/he.toml's losses also differ by about 1e-9 between two runs of
# one commit (CKKS encryption noise is not seeded): compare it by its sim_time and counts.
WALL_CLOCK = {"seconds"}


def rounds_override(table: dict, rounds: int) -> list[str]:
    """The ``--set`` that cuts a scenario to ``rounds``, in the key its kind reads."""
    if "flower" in table:  # its rounds are the ServerApp's own setting
        return [f"flower.run_config={{{', '.join(f'{k!r} = {v!r}' for k, v in _cut(table, rounds).items())}}}"]
    return [f"run.rounds={min(rounds, table.get('run', {}).get('rounds', rounds))}"]


def _cut(table: dict, rounds: int) -> dict:
    config = dict(table["flower"].get("run_config", {}))
    config["num-server-rounds"] = min(rounds, config.get("num-server-rounds", rounds))
    return config


def table_digest(path: Path, ignore: set[str]) -> str:
    frame = pd.read_parquet(path)
    kept = [c for c in frame.columns if "wall" not in c and c not in WALL_CLOCK | ignore]
    rows = pd.util.hash_pandas_object(frame[kept].astype(str), index=False).to_numpy()
    return hashlib.sha256(",".join(kept).encode() + rows.tobytes()).hexdigest()[:16]


def hash_scenario(path: Path, rounds: int, ignore: set[str]) -> dict[str, str]:
    table = tomllib.loads(path.read_text())
    if "sweep" in table:
        return {"skipped": "a sweep file"}
    if "flower" in table and importlib.util.find_spec("flwr") is None:
        return {"skipped": "flwr is not installed"}
    with tempfile.TemporaryDirectory(prefix="raysim-hash-") as results:
        command = [sys.executable, "-m", "raysim", "run", str(path), "--results", results, "--quiet"]
        for assignment in rounds_override(table, rounds):
            command += ["--set", assignment]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        if done.returncode:
            return {"failed": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
        (run_dir,) = Path(results).glob("*/*")
        return {p.name: table_digest(p, ignore) for p in sorted(run_dir.glob("*.parquet"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="an earlier --out to compare with")
    parser.add_argument("--only", nargs="*", default=[], help="scenario paths (default: all under scenarios/)")
    parser.add_argument("--ignore", nargs="*", default=[], help="more columns to leave out")
    args = parser.parse_args()
    paths = [Path(p) for p in args.only] or sorted((ROOT / "scenarios").rglob("*.toml"))
    hashes = {}
    for path in paths:
        name = str(path.resolve().relative_to(ROOT))
        hashes[name] = hash_scenario(path, args.rounds, set(args.ignore))
        print(name, hashes[name], flush=True)
    args.out.write_text(json.dumps(hashes, indent=1, sort_keys=True))
    if args.compare is None:
        return 0
    before = json.loads(args.compare.read_text())
    changed = {name: (before.get(name), now) for name, now in hashes.items() if before.get(name) != now}
    for name, (old, new) in changed.items():
        print(f"CHANGED {name}: {old} -> {new}")
    print(f"{len(hashes) - len(changed)} of {len(hashes)} scenarios hash equal")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
