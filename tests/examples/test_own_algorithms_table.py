"""The README's table of FedDyn, MOON and Ditto against the built-ins is what
``benchmarks/own_algorithms.py`` measured over seeds: the table is the sweep's JSON rendered
verbatim, the rows it compares have at least 3 seeds, and the script's statistics (the 95%
t-interval, MOON's first participations, the weighting a run used) hold on hand-made inputs."""

from __future__ import annotations


import pandas as pd

from tests.bench_scripts import readme_section, script_fixtures

SECTION = "### Measured: FedDyn, MOON and Ditto against FedAvg, FedProx and SCAFFOLD"


bench, sweep = script_fixtures("own_algorithms")


def test_readme_table_is_the_sweep(bench, sweep):
    assert bench.markdown(sweep) in readme_section(SECTION)


def test_every_row_has_three_seeds(bench, sweep):
    """The README's claims rest on intervals over at least 3 seeds of every row: all seven
    algorithms at beta 0.1, and no row of fewer seeds (beta 0.5's one-seed figures were withdrawn)."""
    rows = bench.summarise(sweep["runs"])
    assert {r["algorithm"] for r in rows if r["beta"] == 0.1} == set(bench.RUNS)
    for row in rows:
        assert len(row["seeds"]) >= 3 and row["last_evals_mean"]["ci95"] is not None, row["algorithm"]


def test_interval_is_the_t_interval(bench):
    # mean 0.72, sample sd 0.02, t(0.975, 2) = 4.3027: half-width 4.3027 * 0.02 / sqrt(3)
    assert bench.interval([0.70, 0.72, 0.74]) == {"mean": 0.72, "ci95": 0.0497, "n": 3}
    assert bench.interval([0.7]) == {"mean": 0.7, "ci95": None, "n": 1}


def test_first_participations_count_each_client_once(bench):
    clients = pd.DataFrame({"round": [1, 1, 2, 2, 3], "client_id": [4, 7, 4, 9, 4],
                            "status": ["applied", "applied", "applied", "dropout", "applied"]})
    assert bench.first_participations(clients) == {"client_rounds": 4, "first_client_rounds": 2}


def test_weighting_names_the_user_strategy_that_ignores_the_key(bench):
    assert bench.weighting_of({"server": {"strategy": "scaffold", "weighting": "uniform"}}) == "uniform"
    assert bench.weighting_of({"server": {"strategy": "feddyn:FedDynServer", "weighting": "samples"}}) == \
        "feddyn:FedDynServer's own"
    assert bench.weighting_of({"server": {"strategy": "fedavg", "weighting": "samples"},
                               "algorithm": {"kind": "feddyn:FedDyn"}}) == "feddyn:FedDyn's own"


def test_the_built_in_rows_reset_feddyns_algorithm(bench):
    """The built-ins run FedDyn's file with its [algorithm] removed: plain SGD clients and the
    strategy their row names, nothing of FedDyn's left."""
    from raysim.scenario.sections import load_scenario

    for name in ("FedAvg", "FedProx (mu 0.01)", "SCAFFOLD"):
        path, sets = bench.RUNS[name]
        scenario = load_scenario(path, tuple(sets))
        assert scenario.algorithm.kind == "" and scenario.client.algorithm == ""
        assert ":" not in scenario.server.strategy
    assert load_scenario(*bench.RUNS["FedDyn (alpha 0.01)"][:1]).algorithm.kind == "feddyn:FedDyn"


def test_paired_differences_use_the_same_seeds(bench):
    def run(name, seed, acc):
        return {"algorithm": name, "beta": 0.1, "seed": seed, "weighting": "samples", "final_accuracy": acc,
                "last_evals_mean": acc, "best_accuracy": acc}

    runs = [run("FedAvg", 0, 0.70), run("FedAvg", 1, 0.60), run("SCAFFOLD", 0, 0.72), run("SCAFFOLD", 1, 0.62),
            run("SCAFFOLD", 2, 0.99)]
    (fedavg, scaffold) = bench.summarise(runs)
    assert "final_accuracy_minus_fedavg" not in fedavg
    assert scaffold["final_accuracy_minus_fedavg"] == {"mean": 0.02, "ci95": 0.0, "n": 2}  # seed 2 has no FedAvg
