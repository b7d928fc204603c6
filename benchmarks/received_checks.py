"""What the checks on a received checkpoint cost (issue 32): reading and restoring the
quickstart's checkpoint, as ``--resume`` does before its first round, by the code before the
checks (``--before``, default b2cd61f) and by this tree, alternating.

    python benchmarks/received_checks.py [--before b2cd61f] [--repeat 20] [--alternations 5]

The run is the quickstart cut to 2 rounds (checkpointed each round, local executor), made once
by this tree. Each alternation starts one process per code version (``PYTHONPATH`` on that
version's tree, the older one a temporary ``git worktree``) that builds the scenario's driver
and times ``--repeat`` times: ``read_checkpoint`` (bounds, offsets, CRCs, rounds against
rounds.parquet, in this tree) followed by the driver's ``restore`` (kinds, shapes, annotations,
finite numbers, ids and times against the run, in this tree). Prints the median and minimum of
each version's reads and writes benchmarks/received_checks.json. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from environment import environment  # what the figures ran with (benchmarks/environment.py)

ROOT = Path(__file__).resolve().parents[1]

TIMER = """
import json, statistics, sys, time
from pathlib import Path
from raysim.api import _driver
from raysim.results.checkpoints import read_checkpoint
from raysim.scenario.sections import load_scenario

run_dir, repeat = Path(sys.argv[1]), int(sys.argv[2])
scenario = load_scenario(str(run_dir / "scenario.toml"))
toml = scenario.to_toml()
with _driver(scenario, address=None) as driver:
    driver.use_state_dir(run_dir / "client_state")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        driver.restore(read_checkpoint(run_dir, scenario_toml=toml).driver)
        times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


def timed(tree: Path, run_dir: Path, repeat: int) -> list[float]:
    done = subprocess.run([sys.executable, "-c", TIMER, str(run_dir), str(repeat)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "quickstart.toml"))
    parser.add_argument("--before", default="b2cd61f", help="the commit before the checks")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--alternations", type=int, default=5)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "received_checks.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from raysim.api import run
    from raysim.scenario.sections import load_scenario

    scenario = load_scenario(args.scenario, ("run.rounds=2", "run.checkpoint_every=1", "run.executor=local"))
    with tempfile.TemporaryDirectory() as root:
        before_tree = Path(root) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(before_tree), args.before],
                       check=True)
        try:
            run_dir = run(scenario, results_root=Path(root) / "results").run_dir
            size = (run_dir / "checkpoint.zip").stat().st_size
            rows: dict[str, list[float]] = {f"before ({args.before})": [], "with the checks": []}
            for _ in range(args.alternations):
                rows[f"before ({args.before})"] += timed(before_tree, run_dir, args.repeat)
                rows["with the checks"] += timed(ROOT, run_dir, args.repeat)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before_tree)], check=True)
    print(f"{Path(args.scenario).name}: checkpoint of {size} bytes, read and restored "
          f"{args.repeat} x {args.alternations} times by each version, alternating")
    print(f"{'':22} {'median ms':>10} {'min ms':>10}")
    for name, times in rows.items():
        print(f"{name:22} {statistics.median(times) * 1e3:10.2f} {min(times) * 1e3:10.2f}")
    Path(args.json).write_text(json.dumps({
        "scenario": args.scenario, "checkpoint_bytes": size, "repeat": args.repeat,
        "alternations": args.alternations, "machine": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "command": " ".join(["python", *sys.argv]), "environment": environment(),
        "seconds": {name: {"median": statistics.median(t), "min": min(t)} for name, t in rows.items()}}, indent=2))


if __name__ == "__main__":
    main()
