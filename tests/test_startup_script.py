"""benchmarks/startup.py's arithmetic on hand-made runs: phase medians by name, CPU and process
counts by kind (a kind missing from a repeat counts 0), and the kind of a Ray process whose
command line names the raylet only in its arguments."""

from __future__ import annotations

import pytest

from tests.bench_scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("startup")


def _repeat(at: float, cpu: dict[str, float]) -> dict:
    return {"wall_s": 10 * at, "startup_s": at, "phases": [{"phase": "entered", "at_s": 0.0, "process_cpu_s": 1.0},
                                                          {"phase": "run_folder", "at_s": at, "process_cpu_s": at}],
            "cpu_s": cpu, "processes": {kind: 1 for kind in cpu}}


def test_medians_take_each_phase_and_kind_by_name(bench):
    repeats = [_repeat(3.0, {"raylet": 0.2, "client actors": 4.0}), _repeat(1.0, {"raylet": 0.4}),
               _repeat(2.0, {"raylet": 0.3, "client actors": 5.0})]
    m = bench.medians(repeats)
    assert m["startup_s"] == 2.0 and m["wall_s"] == 20.0
    assert [(p["phase"], p["at_s"], p["process_cpu_s"]) for p in m["phases"]] == [("entered", 0.0, 1.0),
                                                                               ("run_folder", 2.0, 2.0)]
    assert m["cpu_s"] == {"client actors": 4.0, "raylet": 0.3}  # 0 in the repeat without one
    assert m["processes"] == {"client actors": 1, "raylet": 1}


class _Process:
    def __init__(self, name: str, line: str):
        self.pid, self._name, self._line = 7, name, line.split()

    def name(self) -> str:
        return self._name

    def cmdline(self) -> list[str]:
        return self._line


@pytest.mark.parametrize("name, line, kind", [
    ("raylet", "/ray/core/src/ray/raylet/raylet --raylet_socket_name=x", "raylet"),
    ("python", "python /ray/dashboard/agent.py --raylet-name=x", "dashboard agent"),
    ("python", "python /ray/_private/workers/default_worker.py --raylet-name=x", "Ray worker (starting)"),
    ("ray::ClientActo", "ray::ClientActor", "client actors"),
    ("ray::DriverActo", "ray::DriverActor.call", "driver actor"),
])
def test_a_process_is_named_by_its_kind(bench, name, line, kind):
    assert bench._kind(_Process(name, line), root=1) == kind
