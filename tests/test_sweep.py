"""Several runs in one process (a loop or a sweep) leave no Ray processes or memory behind."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SWEEP = textwrap.dedent("""
    import json, sys, psutil, ray
    from raysim.api import run
    from raysim.scenario.sections import parse_scenario
    from tests.conftest import tiny_table

    me = psutil.Process()
    report = []
    for lr in (0.01, 0.05, 0.1):
        scenario = parse_scenario(tiny_table(run={"executor": "ray", "rounds": 2}, client={"lr": lr}))
        run(scenario, results_root=sys.argv[1])
        report.append({"ray_up": ray.is_initialized(), "children": len(me.children(recursive=True)),
                       "rss_mb": me.memory_info().rss / 2**20})
    print(json.dumps(report))
""")


def test_a_sweep_of_runs_leaves_nothing_behind(tmp_path):
    done = subprocess.run([sys.executable, "-c", SWEEP, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["ray_up"] for r in report] == [False, False, False]
    assert [r["children"] for r in report] == [0, 0, 0]
    assert report[2]["rss_mb"] - report[0]["rss_mb"] < 100  # no growth from run to run
