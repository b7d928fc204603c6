"""What the checks on a received checkpoint cost (issue 32, findings 4-6): reading and restoring
the quickstart's checkpoint with every check, against the least a reader must do without them.

    python benchmarks/received_checks.py [--scenario scenarios/quickstart.toml] [--repeat 20]

The run is the scenario cut to 2 rounds (checkpointed each round); its checkpoint is then read
``--repeat`` times each way, and the median and minimum wall times are printed and written to
benchmarks/received_checks.json:

- without checks: both zips opened with ``zipfile``, ``state.json`` parsed and every ``.npy``
  loaded with ``np.load(allow_pickle=False)``: no offsets, sizes, kinds, bounds or run checks;
- with checks: ``read_checkpoint`` (bounds, offsets, CRCs, rounds against rounds.parquet), then
  the driver's ``restore`` against a fresh driver of the scenario (kinds, shapes, annotations,
  finite numbers, ids and times against the run: ``sim/restored.py``).

Run it on an idle machine: the two differ by little, and a busy one hides that in its noise.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from raysim.api import _driver, run  # noqa: E402
from raysim.results.checkpoints import CHECKPOINT, read_checkpoint  # noqa: E402
from raysim.scenario.sections import load_scenario  # noqa: E402


def without_checks(path: Path) -> None:
    outer = zipfile.ZipFile(path)
    inner = zipfile.ZipFile(io.BytesIO(outer.read("driver.zip")))
    json.loads(inner.read("state.json"))
    for name in inner.namelist():
        if name.endswith(".npy"):
            np.load(io.BytesIO(inner.read(name)), allow_pickle=False)


def with_checks(run_dir: Path, scenario_toml: str, driver) -> None:
    driver.restore(read_checkpoint(run_dir, scenario_toml=scenario_toml).driver)


def timed(call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "quickstart.toml"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "received_checks.json"))
    args = parser.parse_args()
    scenario = load_scenario(args.scenario, ("run.rounds=2", "run.checkpoint_every=1", "run.executor=local"))
    with tempfile.TemporaryDirectory() as root:
        run_dir = run(scenario, results_root=root).run_dir
        path, scenario_toml = run_dir / CHECKPOINT, scenario.to_toml()
        with _driver(scenario, address=None) as driver:
            driver.use_state_dir(run_dir / "client_state")
            rows = {"without checks": timed(lambda: without_checks(path), args.repeat),
                    "with checks": timed(lambda: with_checks(run_dir, scenario_toml, driver), args.repeat)}
        size = path.stat().st_size
    print(f"{Path(args.scenario).name}: checkpoint of {size} bytes, {args.repeat} reads each")
    print(f"{'':16} {'median ms':>10} {'min ms':>10}")
    for name, times in rows.items():
        print(f"{name:16} {statistics.median(times) * 1e3:10.2f} {min(times) * 1e3:10.2f}")
    Path(args.json).write_text(json.dumps({
        "scenario": args.scenario, "checkpoint_bytes": size, "repeat": args.repeat, "machine": platform.node(),
        "python": platform.python_version(),
        "seconds": {name: {"median": statistics.median(t), "min": min(t)} for name, t in rows.items()}}, indent=2))


if __name__ == "__main__":
    main()
