"""Compressed runs end to end: every codec on Ray, bytes and upload time from the payload
(the one convention: unframed, as the dense model is counted), the same metrics whatever the
actor packing, and the policies seeing the shorter uploads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raysim.api import run
from raysim.compression.config import CODECS
from raysim.inputs import ConfigError
from raysim.results import load
from raysim.scenario.sections import parse_scenario
from raysim.sim.cost.devices import Population
from tests.conftest import tiny_table

OPTIONS = {"int": {"bits": 6}, "qsgd": {"levels": 15}, "topk": {"ratio": 0.1, "error_feedback": True},
           "randk": {"ratio": 0.3}, "mask": {"ratio": 0.3}, "sign": {"error_feedback": True}}
DENSE_BYTES = 4 * (60 * 10 + 10)  # the tiny scenario's logistic regression, float32


@pytest.mark.ray
@pytest.mark.parametrize("name", sorted(CODECS))
def test_each_codec_runs_on_ray_and_uploads_take_its_payload_bytes(ray_runtime, tmp_path, name):
    table = tiny_table(run={"executor": "ray", "rounds": 3}, compression={"uplink": name, **OPTIONS.get(name, {})},
                       system={"uplink_mbps": 0.1})
    outcome = run(parse_scenario(table), results_root=tmp_path)
    res = load(outcome.run_dir)
    sent = CODECS[name]((600, 10), **{k: v for k, v in OPTIONS.get(name, {}).items() if k != "error_feedback"})
    applied = res.clients[res.clients["status"] == "applied"]
    assert len(applied) == 3 * 4 and np.isfinite(res.rounds["test_accuracy"]).all()
    assert set(applied["bytes_up"]) == {sent.payload_bytes} and "payload_bytes_up" not in res.clients
    assert set(applied["bytes_down"]) == {DENSE_BYTES}
    np.testing.assert_allclose(res.rounds["compression_ratio"], DENSE_BYTES / sent.payload_bytes)
    assert (res.rounds["bytes_up"] == 4 * sent.payload_bytes).all()
    population = Population(parse_scenario(table).system, 8, seed=3)
    for row in applied.itertuples():
        expected = population.timing(row.client_id, start=0.0, samples=row.samples, epochs=1,
                                     model_bytes=DENSE_BYTES, update_bytes=sent.payload_bytes)
        assert row.upload_s == pytest.approx(expected.upload_s)


@pytest.mark.ray
@pytest.mark.parametrize("compression", [{"uplink": "topk", "ratio": 0.2, "error_feedback": True},
                                         {"uplink": "randk", "ratio": 0.5, "downlink": "bf16"}])
def test_compressed_metrics_do_not_depend_on_the_actor_packing(ray_runtime, tmp_path, compression):
    base = dict(run={"executor": "ray"}, data={"num_clients": 6}, compression=compression)
    packed = run(parse_scenario(tiny_table(resources={"num_cpus": 1.0, "clients_per_actor": "auto"}, **base)),
                 results_root=tmp_path)
    spread = run(parse_scenario(tiny_table(resources={"num_cpus": 0.3, "clients_per_actor": 1}, **base)),
                 results_root=tmp_path)
    assert packed.summary["num_actors"] == 2 and spread.summary["num_actors"] == 6
    columns = ["round", "sim_time", "test_accuracy", "test_loss", "train_loss", "bytes_up", "bytes_down"]
    pd.testing.assert_frame_equal(load(packed.run_dir).rounds[columns], load(spread.run_dir).rounds[columns])


def test_shorter_uploads_change_what_a_deadline_policy_keeps(tmp_path):
    """On a 10 kbit/s uplink the dense update (2.0 s) misses a 1 s deadline; top-10% makes it."""
    outcomes = {}
    for label, compression in (("dense", {}), ("topk", {"uplink": "topk", "ratio": 0.1, "error_feedback": True})):
        table = tiny_table(run={"rounds": 3}, system={"uplink_mbps": 0.01, "seconds_per_sample": 1e-4},
                           policy={"kind": "sync", "deadline_s": 1.0}, compression=compression)
        outcomes[label] = load(run(parse_scenario(table), results_root=tmp_path).run_dir)
    assert set(outcomes["dense"].clients["status"]) == {"late"}
    assert set(outcomes["topk"].clients["status"]) == {"applied"}
    assert (outcomes["topk"].rounds["test_accuracy"].iloc[-1] > outcomes["dense"].rounds["test_accuracy"].iloc[-1])


def test_downlink_cast_halves_the_bytes_down_and_the_clients_train_from_it(tmp_path):
    plain = load(run(parse_scenario(tiny_table()), results_root=tmp_path).run_dir)
    cast = load(run(parse_scenario(tiny_table(compression={"downlink": "fp16"})), results_root=tmp_path).run_dir)
    assert set(cast.clients["bytes_down"]) == {2 * 610}  # the payload, as the dense 4 x 610
    assert "compression_ratio" not in cast.rounds  # nothing compressed on the way up
    assert not np.array_equal(plain.rounds["train_loss"], cast.rounds["train_loss"])
    np.testing.assert_allclose(plain.rounds["test_accuracy"], cast.rounds["test_accuracy"], atol=0.05)


def test_without_compression_the_tables_are_unchanged(tmp_path):
    res = load(run(parse_scenario(tiny_table()), results_root=tmp_path).run_dir)
    assert "compression_ratio" not in res.rounds and "payload_bytes_up" not in res.clients
    assert set(res.clients["bytes_up"]) == {DENSE_BYTES}


@pytest.mark.parametrize(("compression", "others", "names"), [
    ({"uplink": "topk", "ratio": 0.0}, {}, "ratio must be in (0, 1]"),
    ({"uplink": "topk", "ratio": 1.5}, {}, "ratio must be in (0, 1]"),
    ({"uplink": "int", "bits": 0}, {}, "bits must be in 1..16"),
    ({"uplink": "int", "bits": 17}, {}, "bits must be in 1..16"),
    ({"uplink": "zip"}, {}, "uplink = 'zip' is unknown"),
    ({"uplink": "topk"}, {}, "needs ratio"),
    ({"uplink": "fp16", "ratio": 0.1}, {}, "ratio is a parameter of"),
    ({"downlink": "topk"}, {}, "only the casts"),
    ({"uplink": "fp16"}, {"privacy": {"secure_aggregation": "secagg", "dp": "central"},
                          "server": {"weighting": "uniform"}}, "privacy.secure_aggregation"),
    ({"uplink": "fp16"}, {"privacy": {"dp": "local"}, "server": {"weighting": "uniform"}}, "privacy.dp = 'local'"),
    ({"uplink": "fp16"}, {"server": {"strategy": "scaffold"}}, "server.strategy = 'scaffold'"),
    ({"downlink": "fp16"}, {"personal": {"local_layers": ["linear"], "holdout": 0.2}}, "personal.local_layers"),
])
def test_bad_compression_is_refused_at_load_naming_the_key(compression, others, names):
    with pytest.raises(ConfigError) as refused:
        parse_scenario(tiny_table(compression=compression, **others))
    assert names in str(refused.value) and "compression" in str(refused.value)


@pytest.mark.parametrize("others", [
    {"privacy": {"dp": "central", "noise_multiplier": 0.5}, "server": {"weighting": "uniform"}},
    {"server": {"aggregator": "trimmed_mean", "trim": 1}},
    {"policy": {"kind": "async", "mode": "fedbuff", "buffer_size": 2}, "system": {"speed_distribution": "lognormal"}},
    {"policy": {"kind": "event", "threshold": 0.01}, "server": {"lr": 1.0}},
    {"server": {"strategy": "fednova"}, "client": {"momentum": 0.5}},
])
def test_compression_composes_with_dp_robust_rules_and_the_other_policies(tmp_path, others):
    table = tiny_table(run={"rounds": 3}, compression={"uplink": "int", "bits": 4}, **others)
    res = load(run(parse_scenario(table), results_root=tmp_path).run_dir)
    delivered = res.clients[res.clients["bytes_up"] > 0]
    assert len(res.rounds) == 3 and len(delivered) > 0
    assert set(delivered["bytes_up"]) == {CODECS["int"]((600, 10), bits=4).payload_bytes}
    assert np.isfinite(res.rounds["test_loss"]).all()


def test_one_byte_convention_fp32_uploads_exactly_the_dense_bytes(tmp_path):
    """Dense and compressed runs count bytes alike (payload, unframed): the lossless fp32 codec
    uploads what an uncompressed run does, at a compression_ratio of exactly 1.0 (it was 0.994
    here: the dense payload over the framed fp32 message, 2,440 / 2,454 bytes)."""
    plain = load(run(parse_scenario(tiny_table(run={"rounds": 2})), results_root=tmp_path).run_dir)
    fp32 = load(run(parse_scenario(tiny_table(run={"rounds": 2}, compression={"uplink": "fp32"})),
                    results_root=tmp_path).run_dir)
    assert (fp32.rounds["compression_ratio"] == 1.0).all()
    for column in ("bytes_up", "bytes_down", "sim_time", "test_accuracy"):
        assert fp32.rounds[column].tolist() == plain.rounds[column].tolist(), column


def test_error_feedback_with_a_growing_unbiased_codec_stops_before_anything_is_written(tmp_path):
    """Known once the model's layout is: refused with the reason and the keys to change."""
    table = tiny_table(compression={"uplink": "randk", "ratio": 0.1, "error_feedback": True})
    with pytest.raises(ConfigError, match="compression.ratio above 0.5"):
        run(parse_scenario(table), results_root=tmp_path)
    assert not any(tmp_path.iterdir())
    allowed = tiny_table(run={"rounds": 2}, compression={"uplink": "randk", "ratio": 0.75, "error_feedback": True})
    assert len(load(run(parse_scenario(allowed), results_root=tmp_path).run_dir).rounds) == 2
