"""The model out of every kind of run (issue 35, item 1): models kept every ``save_model_every``
rounds, clients' own parts, the nodes' average of gossip and hierarchy runs, vertical parties'
parts and a Flower strategy's final arrays; ``raysim model`` and ``raysim verify`` refuse a crafted
model file with exit 2 and a line naming it."""

from __future__ import annotations

import copy
import hashlib
import json
import struct

import numpy as np
import pandas as pd
import pytest

from raysim.api import run
from raysim.cli import main
from raysim.results import load, load_model
from raysim.results.model_file import MODEL_FILE, client_path, read_model, round_path
from raysim.results.results import ResultsError
from raysim.scenario.sections import parse_scenario
from tests.conftest import tiny_table
from tests.results.test_model_file import _accuracy

EVERY_NODE = {"selection": {"fraction": 1.0, "clients_per_round": 0}}


def _run(root, **sections):
    scenario = parse_scenario(tiny_table(**sections))
    return scenario, run(scenario, results_root=root).run_dir


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """4 rounds keeping the model every 2."""
    return _run(tmp_path_factory.mktemp("kept"), run={"rounds": 4, "save_model_every": 2})


def test_the_model_of_every_nth_round_is_kept_and_scores_what_the_run_recorded(kept):
    scenario, run_dir = kept
    assert sorted(p.name for p in (run_dir / "models").iterdir()) == ["round-000002.safetensors",
                                                                      "round-000004.safetensors"]
    recorded = load(run_dir).rounds.set_index("round").test_accuracy
    assert _accuracy(load_model(run_dir, round=2), scenario) == recorded[2]
    last, final = load_model(run_dir, round=4, build=False), load_model(run_dir, build=False)
    assert all(np.array_equal(last[k], final[k]) for k in final)
    assert read_model(round_path(run_dir, 2))[1]["round"] == 2


def test_a_round_not_kept_is_refused_naming_the_rounds_kept(kept):
    _, run_dir = kept
    with pytest.raises(ResultsError, match=r"round 3 was not kept; kept: 2, 4"):
        load_model(run_dir, round=3)


def test_save_model_every_at_its_default_leaves_scenario_toml_and_its_hash_as_before():
    default = parse_scenario(tiny_table()).to_toml()
    assert "save_model_every" not in default
    assert parse_scenario(tiny_table(run={"save_model_every": 0})).to_toml() == default
    assert "save_model_every = 3" in parse_scenario(tiny_table(run={"save_model_every": 3})).to_toml()


def test_a_checkpoint_resumes_with_the_key_written_at_its_default(tmp_path):
    """A run folder whose scenario.toml gains ``save_model_every = 0`` (as from a scenario that
    spells the default out) resumes: its checkpoint's scenario hash is unchanged."""
    scenario = parse_scenario(tiny_table(run={"rounds": 4}))

    def stop(row):
        if row["round"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(scenario, results_root=tmp_path, on_round=stop)
    (cut,) = (tmp_path / "tiny").iterdir()
    assert not (cut / MODEL_FILE).exists()  # an interrupted run writes no final model
    text = (cut / "scenario.toml").read_text()
    (cut / "scenario.toml").write_text(text.replace("[run]\n", "[run]\nsave_model_every = 0\n", 1))
    assert main(["run", "--resume", str(cut), "--quiet"]) == 0
    assert list(pd.read_parquet(cut / "rounds.parquet")["round"]) == [1, 2, 3, 4]
    assert read_model(cut / MODEL_FILE)[1]["round"] == 4
    import zipfile

    with zipfile.ZipFile(cut / "checkpoint.zip") as archive:
        fingerprint = json.loads(archive.read("run.json"))["scenario_sha256"]
    assert fingerprint == hashlib.sha256(scenario.to_toml().encode()).hexdigest()


def test_a_killed_run_keeps_the_models_written_and_its_resume_writes_the_rest(tmp_path):
    scenario = parse_scenario(tiny_table(run={"rounds": 4, "save_model_every": 1}))
    whole = run(scenario, results_root=tmp_path / "whole").run_dir

    def stop(row):
        if row["round"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(scenario, results_root=tmp_path / "cut", on_round=stop)
    (cut,) = (tmp_path / "cut" / "tiny").iterdir()
    assert [p.name[6:12] for p in sorted((cut / "models").iterdir())] == ["000001", "000002", "000003"]
    run(scenario, resume=cut)
    for there, here in [*((round_path(whole, n), round_path(cut, n)) for n in range(1, 5)),
                        (whole / MODEL_FILE, cut / MODEL_FILE)]:  # safetensors orders metadata at random
        (arrays, meta), (again, again_meta) = read_model(there), read_model(here)
        assert meta == again_meta and list(arrays) == list(again)
        assert all(np.array_equal(arrays[k], again[k]) for k in arrays)


def test_personal_layers_keep_each_clients_head_laid_over_the_global_body(tmp_path):
    _, run_dir = _run(tmp_path, run={"rounds": 2}, model={"name": "mlp2nn"}, selection={"clients_per_round": 3},
                      personal={"local_layers": ["5."], "holdout": 0.25})
    trained = sorted(set(load(run_dir).clients.query("status == 'applied'").client_id))
    assert [int(p.stem[7:]) for p in sorted((run_dir / "clients").iterdir())] == trained
    client = trained[0]
    head, meta = read_model(client_path(run_dir, client))
    assert set(head) == {"5.weight", "5.bias"} and meta["client"] == client and meta["run"] == "star"
    glob, own = load_model(run_dir, build=False), load_model(run_dir, client=client, build=False)
    assert np.array_equal(own["1.weight"], glob["1.weight"]) and np.array_equal(own["5.weight"], head["5.weight"])
    assert not np.array_equal(own["5.weight"], glob["5.weight"])
    untrained = next(c for c in range(8) if c not in trained)
    with pytest.raises(ResultsError, match=f"client {untrained}'s own part was not kept; kept: "):
        load_model(run_dir, client=untrained)
    with pytest.raises(ResultsError, match="final model only"):
        load_model(run_dir, client=client, round=2)


@pytest.mark.ray
def test_a_run_on_ray_keeps_its_rounds_and_clients_parts(ray_runtime, tmp_path):
    _, run_dir = _run(tmp_path, run={"rounds": 2, "save_model_every": 1, "executor": "ray"}, model={"name": "mlp2nn"},
                      personal={"local_layers": ["5."], "holdout": 0.25}, ray={"num_cpus": 2}, resources={"num_cpus": 1})
    assert [p.name[6:12] for p in sorted((run_dir / "models").iterdir())] == ["000001", "000002"]
    assert set(read_model(next((run_dir / "clients").iterdir()))[0]) == {"5.weight", "5.bias"}


def test_gossip_writes_the_mean_of_the_nodes_and_each_nodes_model(tmp_path):
    scenario, run_dir = _run(tmp_path, run={"rounds": 2, "save_model_every": 1}, **EVERY_NODE,
                             network={"topology": "gossip", "graph": "ring"})
    arrays, meta = read_model(run_dir / MODEL_FILE)
    assert meta["run"] == "gossip" and meta["content"] == "the mean of the nodes' models"
    nodes = [load_model(run_dir, client=c, build=False) for c in range(8)]
    for name, value in arrays.items():
        np.testing.assert_allclose(value, np.mean([n[name] for n in nodes], axis=0), rtol=0, atol=1e-6)
    assert not np.array_equal(nodes[0]["1.weight"], nodes[1]["1.weight"])  # a ring does not agree in 2 rounds
    recorded = load(run_dir).rounds.test_accuracy.iloc[-1]
    assert abs(_accuracy(load_model(run_dir), scenario) - recorded) <= 1 / 200  # float32 rounding at most
    assert read_model(round_path(run_dir, 1))[1]["run"] == "gossip"


def test_a_hierarchy_writes_the_edges_average(tmp_path):
    scenario, run_dir = _run(tmp_path, run={"rounds": 2}, **EVERY_NODE,
                             network={"topology": "hierarchical", "num_edges": 2, "edge_rounds": 2})
    meta = read_model(run_dir / MODEL_FILE)[1]
    assert meta["run"] == "hierarchical" and "edges' models averaged" in meta["content"]
    assert _accuracy(load_model(run_dir), scenario) == load(run_dir).rounds.test_accuracy.iloc[-1]  # a cloud round
    assert not (run_dir / "clients").exists()


def test_a_vertical_run_writes_each_partys_part_and_builds_nothing(tmp_path):
    from raysim.scenario.vertical import parse_vertical
    from tests.vertical.test_scenario import GOOD

    table = copy.deepcopy(GOOD)
    table["vertical"].update(max_train=40, max_test=30)
    run_dir = run(parse_vertical(table), results_root=tmp_path).run_dir
    arrays = load_model(run_dir, build=False)
    assert set(arrays) == {"guest/w", "host/w"}
    assert arrays["guest/w"].shape == (11,) and arrays["host/w"].shape == (20,)  # the label party's intercept
    with pytest.raises(ResultsError, match="no model class builds it here; pass build=False"):
        load_model(run_dir)


def test_a_flower_run_writes_the_arrays_its_strategy_ended_with(tmp_path):
    pytest.importorskip("flwr")
    from tests.flower.test_flower_runs import scenario
    from tests.flower_apps.task import Net

    from tests.flower_apps import message_app

    run_dir = run(scenario(), results_root=tmp_path).run_dir
    arrays, meta = read_model(run_dir / MODEL_FILE)
    assert meta["run"] == "flower" and list(arrays) == list(Net().state_dict())
    ended = message_app.LAST_RESULT.arrays
    assert all(np.array_equal(arrays[k], ended[k].numpy()) for k in ended)
    assert meta["round"] == load(run_dir).rounds["round"].iloc[-1]


# -- the command line: `raysim model`, `raysim verify` ------------------------------------------

def test_raysim_model_prints_the_arrays_and_metadata(kept, capsys):
    _, run_dir = kept
    assert main(["model", str(run_dir), "--round", "2"]) == 0
    out = capsys.readouterr().out
    assert "round-000002.safetensors" in out and "1.weight" in out and "(10, 60)" in out and "float32" in out
    assert "round: 2" in out and "model: logreg" in out and "run: star" in out
    assert main(["verify", str(run_dir)]) == 0
    assert main(["model", str(run_dir), "--round", "3"]) == 2
    assert "kept: 2, 4" in capsys.readouterr().err


def _header(entries: dict, payload: bytes, length: int | None = None) -> bytes:
    text = json.dumps({"__metadata__": {"round": "1", "run": "vertical", "content": "x"}, **entries}).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + payload


CRAFTED = {
    "bad-header-length": _header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, 1 << 40),
    "non-numeric-dtype": _header({"w": {"dtype": "STR", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
    "nan": _header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                   np.array([1.0, np.nan], dtype=np.float32).tobytes()),
    "truncated": _header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),
}


@pytest.mark.parametrize("command", ["model", "verify"])
@pytest.mark.parametrize("crafted", [*CRAFTED, "symlink"])
def test_a_crafted_model_file_exits_2_with_a_line_naming_it(tmp_path, capsys, crafted, command):
    good = tmp_path / "good.safetensors"
    good.write_bytes(_header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert main(["model", str(tmp_path), "--client", "0"]) == 2  # nothing kept: refused, named
    capsys.readouterr()
    target = run_dir / MODEL_FILE
    if crafted == "symlink":
        target.symlink_to(good)
    else:
        target.write_bytes(CRAFTED[crafted])
    assert main([command, str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and MODEL_FILE in err and "Traceback" not in err
