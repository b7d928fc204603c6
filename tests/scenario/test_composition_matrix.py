"""The composition matrix: strategies x aggregators x server optimizers x policies x privacy
modes x personal layers x attacks.

Every cell is either refused by the loader (ConfigError) or runs the rule its keys name. All
cells are parsed (cheap); a greedy pairwise cover of the accepted ones, every pair of values
of any two dimensions that some accepted cell has, is run for two server steps on the tiny
synthetic scenario (local executor), and each step is checked against the rule computed here
on the updates the step received: the weighted mean, FedNova's normalised mean, the robust
rule of the scaled rows, DP-FedAvg's clip-noise-average, the secure or encrypted mean, then
the server optimizer.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from raysim.algorithms.fednova import fednova_aggregate, local_step_norm
from raysim.algorithms.robust import coordinate_median, krum, minimum_rows, multi_krum, trimmed_mean
from raysim.algorithms.strategy import Strategy
from raysim.api import run
from raysim.inputs import ConfigError
from raysim.privacy.dp import clip_to_norm, dp_average, local_noise
from raysim.scenario.sections import parse_scenario
from raysim.seeding import Stream, rng
import raysim.sim.kernel.driver
from raysim.algorithms.scaffold import ScaffoldServer
from raysim.sim.kernel.server_step import server_step
from tests.conftest import tiny_table

DIMENSIONS = {
    "strategy": ("fedavg", "fedsgd", "fednova", "scaffold"),
    "aggregator": ("mean", "median", "trimmed_mean", "krum", "multi_krum"),
    "optimizer": ("sgd", "momentum", "adam"),
    "policy": ("sync", "sync_over", "periodic", "hybrid", "fedbuff", "fedasync", "event"),
    "privacy": ("none", "dp_central", "dp_local", "secagg", "ckks"),
    "personal": ("none", "head"),
    "attack": ("none", "sign_flip"),
}
POLICIES = {
    "sync": {"kind": "sync"},
    "sync_over": {"kind": "sync", "over_selection": 1.5},
    "periodic": {"kind": "periodic", "period_s": 0.3},
    "hybrid": {"kind": "hybrid", "min_updates": 3, "deadline_s": 0.5},
    "fedbuff": {"kind": "async", "mode": "fedbuff", "buffer_size": 4},
    "fedasync": {"kind": "async", "mode": "fedasync"},
    "event": {"kind": "event", "threshold": 0.0},
}
PRIVACY = {
    "none": {}, "dp_central": {"dp": "central", "clip_norm": 0.5, "noise_multiplier": 0.5},
    "dp_local": {"dp": "local", "clip_norm": 0.5, "noise_multiplier": 0.5},
    "secagg": {"secure_aggregation": "secagg"}, "ckks": {"homomorphic": "ckks"},
}
OPTIMIZERS = {"sgd": {"optimizer": "sgd", "lr": 1.0}, "momentum": {"optimizer": "momentum", "lr": 1.0},
              "adam": {"optimizer": "adam", "lr": 0.01}}
SEED = 3  # tiny_table's run.seed


def table_for(cell: dict) -> dict:
    """The tiny scenario for one cell; FedSGD gets its full-batch client, DP and SecAgg uniform weights."""
    client = {"epochs": 1, "batch_size": 0, "lr": 0.1} if cell["strategy"] == "fedsgd" else {}
    weighting = "uniform" if cell["privacy"] in ("dp_central", "dp_local", "secagg") else "samples"
    return tiny_table(
        run={"rounds": 2},
        client=client,
        server={"strategy": cell["strategy"], "aggregator": cell["aggregator"], "weighting": weighting,
                "num_selected": 2, **OPTIMIZERS[cell["optimizer"]]},
        policy=POLICIES[cell["policy"]],
        privacy=PRIVACY[cell["privacy"]],
        personal={"local_layers": ["1.bias"], "holdout": 0.25} if cell["personal"] == "head" else {},
        attack={"kind": "sign_flip", "fraction": 0.25} if cell["attack"] == "sign_flip" else {},
    )


def _classify() -> tuple[list[dict], int]:
    accepted, refused = [], 0
    for values in itertools.product(*DIMENSIONS.values()):
        cell = dict(zip(DIMENSIONS, values))
        try:
            parse_scenario(table_for(cell))
        except ConfigError:
            refused += 1
            continue
        accepted.append(cell)
    return accepted, refused


def _pairwise_cover(cells: list[dict]) -> list[dict]:
    """Greedily picks cells until every value pair some accepted cell has is in a picked one."""
    def pairs(cell):
        return {(a, cell[a], b, cell[b]) for a, b in itertools.combinations(DIMENSIONS, 2)}

    missing = set().union(*(pairs(c) for c in cells))
    chosen = []
    while missing:
        best = max(cells, key=lambda c: len(pairs(c) & missing))
        chosen.append(best)
        missing -= pairs(best)
    return chosen


ACCEPTED, REFUSED = _classify()
COVER = _pairwise_cover(ACCEPTED)


def test_every_cell_is_refused_or_accepted_and_the_refusals_have_reasons():
    assert len(ACCEPTED) + REFUSED == np.prod([len(v) for v in DIMENSIONS.values()])
    assert ACCEPTED and REFUSED
    # spot checks of the rules: DP is DP-FedAvg only; FedAsync mixes with the mean and a plain step
    assert not [c for c in ACCEPTED if c["privacy"].startswith("dp") and
                (c["aggregator"] != "mean" or c["strategy"] not in ("fedavg", "fedsgd"))]
    assert not [c for c in ACCEPTED if c["policy"] in ("fedasync", "event") and
                (c["aggregator"] != "mean" or c["optimizer"] != "sgd")]


def _expected_delta(strategy, updates, privacy, round_number):
    """The rule the cell names, computed on the step's updates (None: the model stays)."""
    ordered = sorted(updates, key=lambda u: u.client_id)
    if not ordered:
        return None
    weights = strategy.weights(ordered)
    rows = np.stack([np.asarray(u.delta, dtype=np.float64) * u.scale for u in ordered])
    if privacy is not None and privacy.config.dp != "none":
        clip = privacy.config.clip_norm
        clipped = [clip_to_norm(r, clip)[0] for r in rows]
        if privacy.config.dp == "local":
            noisy = [local_noise(d, clip_norm=clip, noise_multiplier=privacy.config.noise_multiplier,
                                 rng=rng(SEED, Stream.PRIVACY, round_number, u.client_id))
                     for d, u in zip(clipped, ordered)]
            return np.mean(noisy, axis=0)
        return dp_average(np.sum(clipped, axis=0), clip_norm=clip, noise_multiplier=privacy.config.noise_multiplier,
                          denominator=privacy.cohort, rng=rng(SEED, Stream.PRIVACY, round_number))
    if privacy is not None and privacy.config.secure_aggregation != "none":  # quantised within [-r, r]
        limit = privacy.config.quantization_range
        return np.clip(rows, -limit, limit).mean(axis=0)
    reducer, params = strategy.reducer, dict(strategy.reducer_params)
    if reducer == "mean":
        return (weights[:, None] * rows).sum(axis=0) / weights.sum()
    if reducer == "fednova":
        sgd = strategy.client_sgd
        norms = [local_step_norm(steps=u.steps, momentum=sgd.momentum, proximal_mu=sgd.proximal_mu,
                                 lr=sgd.lr if sgd.proximal_mu else None) for u in ordered]
        return fednova_aggregate(rows, weights, np.array(norms))
    if len(ordered) < minimum_rows(reducer, **params):
        return None
    rules = {"median": lambda: coordinate_median(rows), "trimmed_mean": lambda: trimmed_mean(rows, params["trim"]),
             "krum": lambda: krum(rows, params["num_byzantine"]),
             "multi_krum": lambda: multi_krum(rows, params["num_byzantine"], params["num_selected"])}
    return rules[reducer]()


class _Recording(Strategy):
    """The scenario's strategy, also noting each delta handed to the server optimizer."""

    def step(self, params, state, delta):
        self.applied.append(delta)
        return super().step(params, state, delta)


@pytest.mark.parametrize("cell", COVER, ids=lambda c: "-".join(c.values()))
def test_an_accepted_cell_runs_the_rule_its_keys_name(cell, tmp_path, monkeypatch):
    steps = []

    def recording_step(strategy, state, updates, *, privacy, round_number, dropped):
        wrapped = isinstance(strategy, ScaffoldServer)  # SCAFFOLD's server around the composed strategy
        inner = strategy.inner if wrapped else strategy
        spy = _Recording(**{f.name: getattr(inner, f.name) for f in dataclasses.fields(inner)})
        object.__setattr__(spy, "applied", [])
        stepped = dataclasses.replace(strategy, inner=spy) if wrapped else spy
        after, metrics = server_step(stepped, state, updates, privacy=privacy, round_number=round_number,
                                     dropped=dropped)
        unwrap = (lambda s: dataclasses.replace(s, strategy_state=s.strategy_state.inner)) if wrapped else (lambda s: s)
        steps.append((inner, unwrap(state), list(updates), privacy, round_number, unwrap(after), metrics,
                      spy.applied[0]))
        return after, metrics

    monkeypatch.setattr(raysim.sim.kernel.driver, "server_step", recording_step)
    run(parse_scenario(table_for(cell)), results_root=tmp_path)
    assert steps
    for strategy, before, updates, privacy, round_number, after, metrics, applied in steps:
        expected = None if metrics.get("secagg_failed") else _expected_delta(strategy, updates, privacy, round_number)
        if expected is None:
            assert applied is None
            np.testing.assert_array_equal(after.params, before.params)
            continue
        # the protected mean is exact up to quantisation (SecAgg) or CKKS precision
        atol = {"secagg": 1e-3, "ckks": 1e-5}.get(cell["privacy"], 1e-9)
        np.testing.assert_allclose(applied, expected, rtol=0, atol=atol)
        params, _ = strategy.server_optimizer.apply(before.params, applied, before.strategy_state)
        np.testing.assert_array_equal(after.params, params)
