"""The README's table of selectors is what ``benchmarks/selection.py`` measured: the JSON
rendered verbatim, three seeds a row, and the script's figures hold on a hand-made run."""

from __future__ import annotations


import pandas as pd

from tests.bench_scripts import readme_section, script_fixtures

SECTION = "### Measured: uniform, Power-of-Choice and Oort on a heterogeneous population"


bench, sweep = script_fixtures("selection")


def test_readme_table_is_the_sweep(bench, sweep):
    assert bench.markdown(sweep) in readme_section(SECTION)
    assert sweep["summary"] == bench.summarise(sweep["runs"])


def test_every_selector_has_three_seeds(sweep):
    assert {row["selector"]: row["seeds"] for row in sweep["summary"]} == {
        name: [0, 1, 2] for name in ("uniform", "power_of_choice (d 40)", "oort")}


def test_a_runs_figures(bench):
    rounds = pd.DataFrame({"round": [1, 2, 3, 4], "sim_time": [100.0, 250.0, 500.0, 700.0],
                           "test_accuracy": [0.5, 0.72, 0.69, 0.8]})
    assert bench.measure(rounds, target=0.7, at=600.0) == {
        "time_to_target_s": 250.0, "rounds_to_target": 2, "accuracy_at": 0.69, "final_accuracy": 0.8, "server_steps": 4}
