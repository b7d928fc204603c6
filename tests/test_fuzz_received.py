"""Hostile received folders, names and files: whatever they hold, the CLI answers 0, 1 (a failed
run, an edited block) or 2 (bad input) with one clear line, never a traceback, and imports or
calls no code it was not told to.

One tiny ledger run (local executor, no Ray) is made once; every test copies it and damages the
copy: its scenario.toml (for ``run --resume``), ledger.json (``verify``), summary.json,
sweep.json and Parquet tables (``report`` and ``compare``). Derandomized, so the same examples
run every time. Everything runs in this process through ``raysim.cli.main``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raysim.inputs import ConfigError
from raysim.scenario.sections import parse_scenario
from raysim.sim.policies import SyncPolicy
from tests.conftest import EVERYONE, tiny_table
from tests.received import clear, cli

SETTINGS = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


# --- finding 2: a received folder is data ---------------------------------------------------------

MARKER_MODULE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
{body}
"""
BODIES = {"model.name": "import torch\nclass Model(torch.nn.Module):\n    pass\n",
          "server.weighting": "def weigh(client_id, samples):\n    return 1.0\n",
          "policy.kind": "import dataclasses\n@dataclasses.dataclass(frozen=True)\nclass Policy:\n"
                         "    def __post_init__(self):\n        print('the policy ran')\n",
          "data.dataset": "def load():\n    return {}\n", "task.kind": "class Task:\n    pass\n",
          "client.algorithm": "class Algorithm:\n    pass\n", "server.strategy": "class Strategy:\n    pass\n"}
NAMES = {"model.name": "Model", "server.weighting": "weigh", "policy.kind": "Policy", "data.dataset": "load",
         "task.kind": "Task", "client.algorithm": "Algorithm", "server.strategy": "Strategy"}


@pytest.mark.parametrize("key", sorted(BODIES))
def test_resume_imports_no_code_a_received_folder_names(received, tmp_path, monkeypatch, key):
    """Importing a module runs it: the folder's scenario.toml names one whose import writes a file."""
    marker, module = tmp_path / "imported", f"their_code_{key.replace('.', '_')}"
    (tmp_path / f"{module}.py").write_text(MARKER_MODULE.format(marker=str(marker), body=BODIES[key]))
    monkeypatch.syspath_prepend(str(tmp_path))
    table = tomllib.loads((received / "scenario.toml").read_text())
    section, name = key.split(".")
    if not isinstance(table.get(section), dict):
        table[section] = {}
    table[section][name] = f"{module}:{NAMES[key]}"
    (received / "scenario.toml").write_text(tomli_w.dumps(table))

    code, err = cli("run", "--resume", received, "--quiet")
    clear(code, err, allowed=(2,))
    assert key in err and f"'{module}'" in err and "--trust-code" in err
    assert not marker.exists() and module not in sys.modules
    if key != "model.name":
        return  # the rest is the import with --trust-code, the same for every key

    code, err = cli("run", "--resume", received, "--quiet", "--trust-code")  # said on the command line
    assert "names code to import" not in err
    sys.modules.pop(module, None)


def test_report_compare_and_verify_import_nothing_a_folder_names(received, tmp_path):
    table = tomllib.loads((received / "scenario.toml").read_text())
    table["model"]["name"] = "their_never_importable_module:Model"
    (received / "scenario.toml").write_text(tomli_w.dumps(table))
    for argv in (["report", received, "--out", tmp_path / "r.html"], ["compare", received, "--out", tmp_path / "c"],
                 ["verify", received]):
        code, err = cli(*argv)
        assert code == 0, err
    assert "their_never_importable_module" not in sys.modules


def takes_anything(*args, **kwargs):
    raise AssertionError("called")


def other_names(a, b):
    raise AssertionError("called")


def keyword_only(client_id, samples, *, extra=None):
    raise AssertionError("called")


WEIGHED = []


def weigh(client_id, samples):
    WEIGHED.append(client_id)
    return 1.0 + client_id


@pytest.mark.parametrize("spec", ["shutil:chown", "ctypes:string_at", "os:remove", "builtins:print",
                                  "tests.test_fuzz_received:takes_anything", "tests.test_fuzz_received:other_names",
                                  "tests.test_fuzz_received:keyword_only"])
def test_a_weighting_not_written_for_raysim_is_refused_before_any_call(tmp_path, monkeypatch, spec):
    """``shutil:chown(path, user)`` took (client_id, samples) as (fd 0, uid) and changed the owner
    of stdin; ``ctypes:string_at`` printed heap bytes; ``os:remove`` would delete a file."""
    calls = []
    monkeypatch.setattr(os, "chown", lambda *a, **k: calls.append(("chown", a)))
    monkeypatch.setattr(os, "remove", lambda *a, **k: calls.append(("remove", a)))
    survivor = tmp_path / "0"
    survivor.write_text("keep")
    monkeypatch.chdir(tmp_path)  # client 0's "path" would be ./0
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(server={"weighting": spec})))
    code, err = cli("validate", path)
    clear(code, err, allowed=(2,))
    assert "server.weighting" in err and ("nothing was called" in err or "nothing was imported" in err)
    assert "returned" not in err
    assert calls == [] and survivor.read_text() == "keep"


def test_a_weighting_written_as_documented_is_called():
    from raysim.scenario.composition import make_strategy
    from raysim.scenario.preparation import prepare

    WEIGHED.clear()
    scenario = parse_scenario(tiny_table(server={"weighting": "tests.test_fuzz_received:weigh"}))
    prepare(scenario)
    assert WEIGHED == list(range(8)) and make_strategy(scenario).weighting is weigh


# --- finding 3: paths -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "/abs", "a\x00b", "a\nb", "a\x1bb", "a b",
                                  "$\\frac$", "-rf", ".hidden", "x" * 101, "caf\u00e9", "~"])
def test_a_run_name_must_be_a_plain_folder_name(name):
    with pytest.raises(ConfigError, match="run: name = .* must be a folder name"):
        parse_scenario(tiny_table(run={"name": name}))


@pytest.mark.parametrize("name", ["quickstart", "fmnist_fedavg", "a.b-c_1", "_x", "X" * 100, "sweep-t01"])
def test_plain_run_names_still_load(name):
    assert parse_scenario(tiny_table(run={"name": name})).run.name == name


@SETTINGS.__class__(SETTINGS, max_examples=200)
@given(st.text(max_size=110))
def test_every_run_name_is_refused_or_a_plain_folder_name(name):
    try:
        scenario = parse_scenario(tiny_table(run={"name": name}))
    except ConfigError as exc:
        assert str(exc).startswith("run: name = ")
        return
    assert Path(name).name == name and name not in (".", "..") and name.isascii() and name.isprintable()
    assert not name.startswith(("-", ".")) and " " not in name and scenario.run.name == name


def test_a_run_named_dot_dot_writes_nothing_outside_results(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(run={"name": "..", "rounds": 1})))
    code, err = cli("run", path, "--results", tmp_path / "results" / "inner", "--quiet")
    clear(code, err, allowed=(2,))
    assert "run.name" in err or "run: name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_figure_titles_are_text_not_mathtext(received, tmp_path):
    """A folder name is a scenario name in titles and legends; ``$\\frac$`` failed mathtext."""
    odd = received.parent.rename(received.parent.with_name("a$\\frac$b"))
    for argv in (["report", odd, "--out", tmp_path / "r.html"], ["compare", odd, "--out", tmp_path / "c"]):
        code, err = cli(*argv)
        assert code == 0, err
    assert (tmp_path / "r.html").is_file() and (tmp_path / "c" / "comparison.png").is_file()


@pytest.mark.parametrize("folder", ["a\nb", "<img src=x onerror=alert(1)>", "%s%n", "caf\u00e9", "_x", "-rf", " "])
def test_received_folders_with_odd_names_report_and_compare(received, tmp_path, folder):
    odd = received.parent.rename(received.parent.with_name(folder))
    for argv in (["report", odd, "--out", tmp_path / "r.html"], ["compare", odd, "--out", tmp_path / "c"]):
        code, err = cli(*argv)
        assert code == 0, err
    assert "<img src=x" not in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("content", [b"root:x:0:0:root:/root:/bin/bash\nsecret-second-line\n",
                                     b"client_id,edge\n0,SECRET\n", b"\xff\xfe\x00secret", b"client_id,edge\n"])
def test_an_edge_trace_that_is_no_trace_is_refused_without_its_contents(tmp_path, content):
    trace = tmp_path / "trace.csv"
    trace.write_bytes(content)
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(network={"topology": "hierarchical", "num_edges": 2,
                                                     "edge_trace": str(trace)}, **EVERYONE)))
    code, err = cli("validate", path)
    clear(code, err, allowed=(2,))
    assert "network.edge_trace" in err and str(trace) in err
    assert "root" not in err.replace(str(tmp_path), "") and "SECRET" not in err and "secret" not in err


# --- finding 10: verify ----------------------------------------------------------------------------

def _chain(run_dir: Path) -> list:
    return json.loads((run_dir / "ledger.json").read_text())


MALFORMED = [b"[" * 100_000, b'{"a": 1}', b"[1]", b"null", b'"text"', b"[[]]", b'[{"index": 0}]', b"\xff\xfe",
             b"not json", b""]


@pytest.mark.parametrize("text", MALFORMED, ids=lambda text: repr(text[:12]))
def test_verify_refuses_a_malformed_ledger_with_exit_2(received, text):
    (received / "ledger.json").write_bytes(text)
    code, err = cli("verify", received)
    clear(code, err, allowed=(2,))
    assert "ledger.json" in err


@pytest.mark.parametrize("field, value", [("digests", ["zz"]), ("digests", "00"), ("hash", "ab"),
                                          ("prev_hash", None), ("index", True), ("index", "0"), ("timestamp", "t"),
                                          ("merkle_root", 7), ("producer", 1.5), ("extra", 1)])
def test_verify_says_malformed_blocks_are_input_errors_not_edits(received, field, value):
    chain = _chain(received)
    chain[1][field] = value
    (received / "ledger.json").write_text(json.dumps(chain))
    code, err = cli("verify", received)
    clear(code, err, allowed=(2,))
    assert "block 1 is malformed" in err


def test_verify_exit_1_is_for_an_edited_block_only(received):
    chain = _chain(received)
    chain[0]["digests"][0] = "00" * 32
    (received / "ledger.json").write_text(json.dumps(chain))
    code, err = cli("verify", received)
    assert code == 1 and "block 0" in err


def test_verify_checks_a_head_given_on_the_command_line(received):
    head = _chain(received)[-1]["hash"]
    assert cli("verify", received, "--head", head)[0] == 0
    assert cli("verify", received, "--head", head.upper())[0] == 0
    code, err = cli("verify", received, "--head", "ab" * 32)
    assert code == 1 and "trusted head" in err
    for bad in ("xyz", "ab" * 33, ""):
        code, err = cli("verify", received, "--head", bad)
        clear(code, err, allowed=(2,))
        assert "--head" in err


def test_a_chain_rewritten_with_every_later_hash_is_caught_by_head(received):
    """Re-hash the whole chain after editing block 0: only a trusted head tells."""
    from raysim.network.ledger import append_block, chain_to_json

    original = _chain(received)
    chain = []
    for i, block in enumerate(original):
        digests = [bytes.fromhex("11" * 32) if i == 0 else bytes.fromhex(d) for d in block["digests"]]
        chain = append_block(chain, digests, block["timestamp"], block["producer"])
    (received / "ledger.json").write_text(chain_to_json(chain))
    assert cli("verify", received)[0] == 1  # against rounds.parquet's block_hash
    (received / "rounds.parquet").unlink()
    code, err = cli("verify", received)
    assert code == 0 and "NOT checked" in err and "--head" in err  # said, not silently skipped
    assert cli("verify", received, "--head", original[-1]["hash"])[0] == 1


def test_verify_says_when_rounds_has_no_block_hash(received):
    rounds = pd.read_parquet(received / "rounds.parquet")
    rounds.drop(columns=["block_hash"]).to_parquet(received / "rounds.parquet")
    code, err = cli("verify", received)
    assert code == 0 and "NOT checked" in err and "block_hash" in err


def test_verify_refuses_a_recorded_head_that_is_no_hash(received):
    rounds = pd.read_parquet(received / "rounds.parquet")
    rounds.assign(block_hash="not a hash").to_parquet(received / "rounds.parquet")
    code, err = cli("verify", received)
    clear(code, err, allowed=(2,))
    assert "block_hash" in err


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
                    max_leaves=6)


@SETTINGS.__class__(SETTINGS, max_examples=60)
@given(st.data())
def test_fuzzed_ledger_blocks_answer_0_1_or_2(ledger_run, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzzed")
    shutil.copy(ledger_run / "rounds.parquet", folder / "rounds.parquet")
    shutil.copy(ledger_run / "clients.parquet", folder / "clients.parquet")
    chain = _chain(ledger_run)
    block = data.draw(st.integers(0, len(chain) - 1))
    field = data.draw(st.sampled_from(sorted(chain[block]) + ["new"]))
    chain[block][field] = data.draw(JSON)
    (folder / "ledger.json").write_text(json.dumps(chain))
    clear(*cli("verify", folder))


# --- finding 10: nesting, report --out, --track, --set on a default section --------------------------

@pytest.mark.parametrize("text", ["a=" + "[" * 100_000, "a=" + "{b=" * 50_000, "[run]\nname = " + "[" * 5000 + "]" * 5000],
                         ids=["arrays", "tables", "closed"])
def test_deeply_nested_toml_is_refused_in_one_line(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    for command in ("validate", "run", "sweep"):
        code, err = cli(command, path)
        clear(code, err, allowed=(2,))
        assert str(path) in err


@pytest.mark.parametrize("depth", [10, 200, 900])
def test_nested_options_answer_0_or_2(tmp_path, depth):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table()) + "\n[model.options]\nx = " + "[" * depth + "]" * depth + "\n")
    clear(*cli("validate", path), allowed=(2,))


def test_a_deeply_nested_set_value_is_refused_in_one_line():
    code, err = cli("validate", "scenarios/quickstart.toml", "--set", "run.seed=" + "[" * 100_000)
    clear(code, err, allowed=(2,))


def test_report_out_a_folder_or_a_full_device_is_refused(received, tmp_path):
    code, err = cli("report", received, "--out", tmp_path)
    clear(code, err, allowed=(2,))
    assert "--out" in err and "folder" in err
    code, err = cli("report", received, "--out", tmp_path / "missing" / "r.html")
    clear(code, err, allowed=(2,))
    assert "--out" in err and not (tmp_path / "missing").exists()
    if Path("/dev/full").exists():
        code, err = cli("report", received, "--out", "/dev/full")
        clear(code, err, allowed=(2,))
        assert "No space left" in err


def test_report_leaves_no_half_page_when_the_write_fails(received, tmp_path, monkeypatch):
    out = tmp_path / "r.html"
    out.write_text("the previous report")

    import raysim.files

    real = os.fdopen

    class FillsUp:  # a disk that fills up half way through the page
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[:100])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(raysim.files.os, "fdopen", lambda fd, mode: FillsUp(real(fd, mode)))
    code, err = cli("report", received, "--out", out)
    monkeypatch.undo()
    clear(code, err, allowed=(2,))
    assert out.read_text() == "the previous report" and not list(tmp_path.glob("*.tmp")) + list(tmp_path.glob(".*"))


@pytest.mark.parametrize("tracker", ["tensorboard", "mlflow"])
def test_track_with_a_results_path_that_cannot_be_a_folder(tmp_path, tracker):
    pytest.importorskip("torch.utils.tensorboard" if tracker == "tensorboard" else "mlflow")
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(run={"rounds": 1})))
    code, err = cli("run", path, "--results", blocker / "results", "--track", tracker, "--quiet")
    clear(code, err, allowed=(2,))
    assert "--results" in err


def test_set_on_a_section_left_at_its_default_applies_to_the_default():
    scenario = parse_scenario(tiny_table(), ("policy.over_selection=1.3",))
    assert isinstance(scenario.policy, SyncPolicy) and scenario.policy.over_selection == 1.3
    with pytest.raises(ConfigError, match="unknown key 'policy.buffer_size'"):
        parse_scenario(tiny_table(), ("policy.buffer_size=3",))


# --- finding 10: damaged results and sweep.json, read by report and compare --------------------------

def _report_and_compare(path: Path, out: Path) -> None:
    for argv in (["report", path, "--out", out / "r.html"], ["compare", path, "--out", out / "c"]):
        clear(*cli(*argv), allowed=(0, 2))


DAMAGE = {
    "summary.json": ["[" * 100_000, "[]", "null", '{"status": [1, {"a": null}], "final_accuracy": "x"}',
                     '{"rounds": 1e999}', '{"a": ' * 20_000],
    "rounds.parquet": ["", "PAR1garbage", "x" * 100],
    "clients.parquet": ["", "PAR1"],
    "partition.parquet": ["PAR1"],
    "task.json": ["[" * 100_000, "{}", '{"kind": "x", "metrics": ["mse"], "lower_is_better": []}',
                  '{"kind": "x", "metrics": ["a.b"], "lower_is_better": []}', '{"kind": 1, "metrics": ["x"]}'],
}
DAMAGE_BYTES = {"summary.json": b"\xff\xfe{}", "rounds.parquet": b"PAR1\x00\xff" * 10}


@pytest.mark.parametrize("name, text", [(n, t) for n, texts in DAMAGE.items() for t in texts],
                         ids=lambda value: repr(value[:16]))
def test_damaged_result_files_answer_0_or_2(received, tmp_path, name, text):
    (received / name).write_text(text)
    _report_and_compare(received, tmp_path)


@pytest.mark.parametrize("name", sorted(DAMAGE_BYTES))
def test_result_files_that_are_not_text_answer_0_or_2(received, tmp_path, name):
    (received / name).write_bytes(DAMAGE_BYTES[name])
    _report_and_compare(received, tmp_path)


@pytest.mark.parametrize("frame", [
    {"round": ["a", "b"], "sim_time": [0.0, 1.0], "test_accuracy": [0.1, 0.2], "bytes_up": [1, 2]},
    {"round": [1, 2], "sim_time": ["x", "y"], "test_accuracy": ["a", "b"], "bytes_up": [None, None]},
    {"round": [1, 2], "sim_time": [0.0, 1.0], "test_accuracy": [float("nan")] * 2, "bytes_up": [1, 2]},
    {"round": [1, 2], "sim_time": [0.0, 1.0], "test_accuracy": [0.5, None], "bytes_up": [None, None],
     "bytes_down": ["1", "x"]},
    {"round": [], "sim_time": [], "test_accuracy": [], "bytes_up": []},
])
def test_rounds_tables_of_the_wrong_types_answer_0_or_2(received, tmp_path, frame):
    pd.DataFrame(frame).to_parquet(received / "rounds.parquet")
    _report_and_compare(received, tmp_path)


def _sweep(received: Path) -> Path:
    """The received run as the one trial of a sweep: <sweep>/trials/tiny-t0/<run id>."""
    sweep = received.parent.parent / "sweep"
    shutil.copytree(received, sweep / "trials" / "tiny-t0" / received.name)
    return sweep


@pytest.mark.parametrize("text", [
    "[" * 100_000, "[]", '{"keys": 1, "trials": 2}', '{"keys": [], "trials": {"tiny-t0": 5}}',
    '{"keys": ["round"], "trials": {"tiny-t0": {"round": 9}}}', '{"keys": ["client.lr"], "trials": {"tiny-t0": {}}}',
    '{"keys": [["client.lr"]], "trials": {}}', '{"keys": ["client.lr"], "trials": {"tiny-t0": {"client.lr": [1, 2, 3]}}}',
    '{"keys": ["data.partition"], "trials": {"tiny-t0": {"data.partition": {"kind": "iid"}}}}',
    '{"keys": ["run.seed"], "trials": {"other": {"run.seed": 0}}}',
], ids=lambda text: repr(text[:40]))
def test_damaged_sweep_indexes_answer_0_or_2(received, tmp_path, text):
    sweep = _sweep(received)
    (sweep / "sweep.json").write_text(text)
    _report_and_compare(sweep, tmp_path)


@SETTINGS.__class__(SETTINGS, max_examples=25)
@given(st.data())
def test_fuzzed_summaries_and_sweep_indexes_answer_0_or_2(ledger_run, tmp_path_factory, data):
    root = tmp_path_factory.mktemp("fuzzed")
    received = Path(shutil.copytree(ledger_run, root / "sweep" / "trials" / "tiny-t0" / ledger_run.name))
    summary = json.loads((received / "summary.json").read_text())
    summary[data.draw(st.sampled_from(sorted(summary) + ["new"]))] = data.draw(JSON)
    (received / "summary.json").write_text(json.dumps(summary))
    index = {"name": "tiny", "keys": ["client.lr", "run.seed"], "trials": {"tiny-t0": {"client.lr": 0.1, "run.seed": 0}}}
    path = data.draw(st.sampled_from([("keys",), ("trials",), ("trials", "tiny-t0"), ("trials", "tiny-t0", "client.lr")]))
    node = index
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = data.draw(JSON)
    (root / "sweep" / "sweep.json").write_text(json.dumps(index))
    _report_and_compare(root / "sweep", root)


def test_a_received_folders_text_is_shown_never_run_by_the_report(received, tmp_path):
    """The report page is opened in a browser: markup in a folder's summary or sweep index is
    shown as text there (escaped), so reading the page runs nothing from the folder."""
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    summary = json.loads((received / "summary.json").read_text())
    summary.update(scenario=payload, status=payload)
    (received / "summary.json").write_text(json.dumps(summary))
    sweep = _sweep(received)
    (sweep / "sweep.json").write_text(json.dumps({"keys": ["client.lr"], "trials": {"tiny-t0": {"client.lr": payload}}}))
    for path in (received, sweep):
        out = tmp_path / f"{path.name}.html"
        assert cli("report", path, "--out", out)[0] == 0
        page = out.read_text()
        assert "<script" not in page and "<img src=x" not in page and "&lt;script&gt;" in page
