"""Vertical scenario files: bad input is refused at load, naming the key and the fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import tomli_w

from raysim.cli import main
from raysim.inputs import ConfigError
from raysim.scenario.vertical import VerticalScenario, load_any, parse_vertical

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios" / "vertical"
GOOD = {
    "run": {"name": "v", "seed": 0, "rounds": 1, "executor": "local"},
    "vertical": {
        "dataset": "breast", "trainer": "plain_lr",
        "parties": [{"name": "guest", "label": True, "columns": "20-29", "id_column": "id"},
                    {"name": "host", "columns": "0-19", "id_column": "id"}],
    },
}


def _with(**party_changes) -> dict:
    table = copy.deepcopy(GOOD)
    for index, changes in party_changes.items():
        party = table["vertical"]["parties"][int(index[1:])]
        party.update(changes)
        for key in [k for k, v in changes.items() if v is None]:
            del party[key]
    return table


@pytest.mark.parametrize("table, words", [
    (_with(p1={"columns": "0-20"}), ["vertical", "column 20", "'guest' and 'host'", "one party"]),
    (_with(p1={"columns": ""}), ["vertical.parties[1]", "no columns", "columns = "]),
    (_with(p0={"label": False}), ["vertical", "no party holds the label", "label = true"]),
    (_with(p1={"id_column": None}), ["vertical.parties[1]", "id_column is missing", 'id_column = "id"']),
    (_with(p0={"id_column": "uid"}), ["vertical.parties[0]", "'uid'", '"id"']),
    (_with(p1={"columns": "0-19,30-35"}), ["column 30", "0-29"]),
    (_with(p1={"columns": "19-0"}), ["vertical.parties[1]", "'19-0'", "upwards"]),
    (_with(p1={"columns": "0-1e9"}), ["vertical.parties[1]", "'0-1e9' is not a column number"]),
    ({**GOOD, "vertical": {**GOOD["vertical"], "network": {"bandwidth_mbps": 1e-300}}},
     ["bandwidth_mbps", "1 bit/s to 1 Tbit/s"]),
    ({**GOOD, "vertical": {**GOOD["vertical"], "network": {"latency_s": 1e6}}}, ["latency_s", "an hour"]),
])
def test_bad_input_is_refused_with_the_key_and_the_fix(table, words) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_vertical(table)
    for word in words:
        assert word in str(exc.value)


def test_hide_gradients_needs_paillier() -> None:
    table = copy.deepcopy(GOOD)
    table["vertical"]["lr"] = {"hide_gradients": True}
    with pytest.raises(ConfigError, match="hide_gradients.*paillier_lr"):
        parse_vertical(table)
    table["vertical"]["trainer"] = "paillier_lr"
    assert parse_vertical(table).vertical.lr.settings().hide_gradients


def test_lr_needs_two_classes() -> None:
    table = copy.deepcopy(GOOD)
    table["vertical"].update(dataset="fashion_mnist", trainer="paillier_lr")
    table["vertical"]["parties"][0]["columns"], table["vertical"]["parties"][1]["columns"] = "0-13", "14-27"
    with pytest.raises(ConfigError, match="trainer = 'splitnn'"):
        parse_vertical(table)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.stem)
def test_the_shipped_scenarios_load_and_round_trip(path: Path) -> None:
    scenario = load_any(path)
    assert isinstance(scenario, VerticalScenario)
    assert parse_vertical(__import__("tomllib").loads(scenario.to_toml())) == scenario


def test_the_cli_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(tomli_w.dumps(_with(p0={"label": False})))
    results = tmp_path / "results"
    assert main(["run", str(bad), "--results", str(results), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no party holds the label" in err
    assert not results.exists()


def _synthetic(**changes) -> dict:
    table = copy.deepcopy(GOOD)
    table["vertical"].update(dataset="synthetic", rows=10, columns=4, **changes)
    table["vertical"]["parties"][0]["columns"], table["vertical"]["parties"][1]["columns"] = "0-1", "2-3"
    return table


@pytest.mark.parametrize("table, words", [
    (_synthetic(overlap=0.04), ["vertical.overlap = 0.04", "no row in common", "raise vertical.overlap"]),
    (_synthetic(test_fraction=0.05), ["vertical.test_fraction = 0.05", "none of the 10 aligned rows is held out",
                                      "raise vertical.test_fraction"]),
    ({**GOOD, "vertical": {**GOOD["vertical"], "max_train": 1}},
     ["vertical.max_train = 1", "one class only", "raise vertical.max_train"]),
], ids=["no_common_rows", "no_test_rows", "one_class"])
def test_untrainable_data_is_refused_by_validate_and_run(tmp_path: Path, capsys, table, words) -> None:
    """Issue 24 (10): ``validate`` said ok and ``run`` crashed in sklearn or numpy."""
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(table))
    results = tmp_path / "results"
    for command in (["validate", str(path)], ["run", str(path), "--results", str(results), "--quiet"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not results.exists()
