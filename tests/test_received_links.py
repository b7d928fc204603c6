"""A received folder writes nothing outside itself, and a check calls nothing a scenario names
(issue 32, findings 1 and 3): planted links at the names raysim used to write through, links
among a run's entries, and standard-library callables under every named-object key.

Each test fails on the code before the fix: the temporary names were fixed (``.report.html.tmp``,
``rounds.parquet.tmp``, ...) and opened through whatever was there, and ``validate`` called a
data function, task, algorithm or strategy named from the standard library before checking it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import tomli_w

from raysim.files import atomic_write, check_received_folder, UnsafeFolderError
from tests.conftest import tiny_table
from tests.received import clear, cli

# the names raysim wrote through before: a received folder could plant a link at any of them
OLD_TEMPORARY_NAMES = [".report.html.tmp", ".summary.json.tmp", "rounds.parquet.tmp", "clients.parquet.tmp",
                       "accuracy.tmp.png", ".checkpoint.zip.tmp", ".scenario.toml.tmp"]


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file of the user's, outside every folder they received."""
    path = tmp_path / "home" / "victim.txt"
    path.parent.mkdir()
    path.write_text("the user's own file")
    return path


def test_a_write_never_follows_a_link_planted_at_a_temporary_name(tmp_path, victim):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".summary.json.tmp").symlink_to(victim)
    (folder / ".report.html.tmp").symlink_to(tmp_path / "home" / "created-through-a-dangling-link")
    atomic_write(folder / "summary.json", "{}")
    atomic_write(folder / "report.html", "<html>")
    assert victim.read_text() == "the user's own file"
    assert not (tmp_path / "home" / "created-through-a-dangling-link").exists()
    assert (folder / "summary.json").read_text() == "{}" and (folder / "report.html").read_text() == "<html>"


def test_a_write_over_a_link_replaces_the_link_not_its_target(tmp_path, victim):
    link = tmp_path / "summary.json"
    link.symlink_to(victim)
    atomic_write(link, "{}")
    assert not link.is_symlink() and link.read_text() == "{}" and victim.read_text() == "the user's own file"


def test_written_files_keep_the_users_permissions(tmp_path):
    """mkstemp makes private files (0600); results are shared, so they get what umask allows."""
    atomic_write(tmp_path / "summary.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("name", OLD_TEMPORARY_NAMES)
@pytest.mark.parametrize("command", ["report", "resume"])
def test_a_received_folder_with_a_planted_link_is_refused_and_the_target_untouched(received, victim, name, command):
    (received / name).symlink_to(victim)
    before = sorted(p.name for p in received.iterdir())
    argv = ["report", received] if command == "report" else ["run", "--resume", received, "--quiet"]
    code, err = cli(*argv)
    clear(code, err, allowed=(2,))
    assert name in err and "symbolic link" in err
    assert victim.read_text() == "the user's own file"
    assert sorted(p.name for p in received.iterdir()) == before


@pytest.mark.parametrize("entry", ["rounds.parquet", "summary.json", "checkpoint.zip", "scenario.toml"])
def test_a_run_folder_whose_entry_is_a_link_is_refused_before_it_is_read(received, tmp_path, entry):
    """A table linked to a system file would be read (and quoted in an error) or replaced."""
    outside = tmp_path / f"outside-{entry}"
    shutil.move(received / entry, outside)
    (received / entry).symlink_to(outside)
    for argv in (["report", received], ["compare", received, "--out", tmp_path / "c"], ["verify", received],
                 ["run", "--resume", received, "--quiet"]):
        code, err = cli(*argv)
        clear(code, err, allowed=(2,))
        assert entry in err and "symbolic link" in err


def test_a_client_state_linked_to_another_runs_is_refused_and_that_run_untouched(received, tmp_path):
    """Before: a resume through ``client_state -> ../other/client_state`` deleted and rewrote the
    other run's state files (19 files became 16, exit 0)."""
    other = tmp_path / "other-run" / "client_state"
    other.mkdir(parents=True)
    for i in range(19):
        (other / f"{i}.npz").write_bytes(b"state")
    shutil.rmtree(received / "client_state", ignore_errors=True)
    (received / "client_state").symlink_to(other)
    code, err = cli("run", "--resume", received, "--quiet")
    clear(code, err, allowed=(2,))
    assert "client_state" in err
    assert sorted(p.name for p in other.iterdir()) == sorted(f"{i}.npz" for i in range(19))


def test_a_link_deep_in_client_state_is_refused(tmp_path, victim):
    run = tmp_path / "run"
    (run / "client_state" / "scaffold").mkdir(parents=True)
    (run / "client_state" / "scaffold" / "7.npz").symlink_to(victim)
    check_received_folder(run)  # report and compare read no state file
    with pytest.raises(UnsafeFolderError, match="7.npz"):
        check_received_folder(run, deep=("client_state",))


def test_a_pipe_in_a_run_folder_is_refused_rather_than_read(received):
    """Reading a FIFO blocks forever: a hang where exit 2 is promised."""
    (received / "summary.json").unlink()
    os.mkfifo(received / "summary.json")
    code, err = cli("report", received)
    clear(code, err, allowed=(2,))
    assert "not a plain file" in err


def test_the_default_report_page_is_not_written_through_a_link(tmp_path, received, victim):
    """A scenario folder (above the run folders) is received too: its report.html link is refused."""
    scenario_folder = received.parent
    (scenario_folder / "report.html").symlink_to(victim)
    code, err = cli("report", scenario_folder)
    clear(code, err, allowed=(2,))
    assert victim.read_text() == "the user's own file"


# --- finding 3: one gate for every name a scenario holds ------------------------------------------

STDLIB_CALLABLES = ["shutil:rmtree", "os:system", "subprocess:Popen", "runpy:run_path", "builtins:exec",
                    "os:remove", "functools:partial"]
NAMED_KEYS = {"data.dataset": {"data": {"dataset": "{spec}", "options": {"path": "{doomed}"}}},
              "task.kind": {"task": {"kind": "{spec}", "options": {"path": "{doomed}"}}},
              "client.algorithm": {"client": {"algorithm": "{spec}", "algorithm_options": {"path": "{doomed}"}}},
              "server.strategy": {"server": {"strategy": "{spec}", "strategy_options": {"path": "{doomed}"}}},
              "model.name": {"model": {"name": "{spec}", "options": {"path": "{doomed}"}}},
              "policy.kind": {"policy": {"kind": "{spec}"}},
              "server.weighting": {"server": {"weighting": "{spec}"}}}


def _fill(value, **names):
    if isinstance(value, dict):
        return {k: _fill(v, **names) for k, v in value.items()}
    return value.format(**names)


@pytest.mark.parametrize("spec", STDLIB_CALLABLES)
@pytest.mark.parametrize("key", sorted(NAMED_KEYS))
def test_validate_never_calls_a_standard_library_callable(tmp_path, monkeypatch, key, spec):
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    (doomed / "keep").write_text("keep")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(**_fill(NAMED_KEYS[key], spec=spec, doomed=str(doomed)))))
    code, err = cli("validate", path)
    clear(code, err, allowed=(2,))
    assert key in err and "standard library" in err and "nothing was imported" in err
    assert (doomed / "keep").read_text() == "keep"


def test_a_module_re_exporting_a_standard_library_function_is_refused_after_import(tmp_path, monkeypatch):
    (tmp_path / "their_data.py").write_text("from shutil import rmtree as load\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(data={"dataset": "their_data:load", "options": {"path": str(doomed)}})))
    code, err = cli("validate", path)
    clear(code, err, allowed=(2,))
    assert "defined in Python's standard library (shutil)" in err and doomed.is_dir()


def test_a_data_function_is_called_only_with_parameters_it_has(tmp_path, monkeypatch):
    (tmp_path / "their_loader.py").write_text("CALLS = []\ndef load(rows):\n    CALLS.append(rows)\n    return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(data={"dataset": "their_loader:load", "options": {"columns": 3}})))
    code, err = cli("validate", path)
    clear(code, err, allowed=(2,))
    assert "has no parameter ['columns']" in err and "nothing was called" in err
    import their_loader

    assert their_loader.CALLS == []


def test_validate_says_which_code_it_would_call(tmp_path, capsys):
    from raysim.cli import main

    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(server={"weighting": "tests.test_fuzz_received:weigh"})))
    assert main(["validate", str(path)]) == 0
    assert "names code: server.weighting = 'tests.test_fuzz_received:weigh'" in capsys.readouterr().out


def test_a_received_scenario_naming_this_prints_no_zen(received, capsys):
    """Before: ``policy.kind = "this:X"`` imported ``this`` (the Zen of Python printed) before --resume refused."""
    from raysim.cli import main

    text = (received / "scenario.toml").read_text()
    (received / "scenario.toml").write_text(text.replace('[policy]\nkind = "sync"', '[policy]\nkind = "this:X"'))
    assert 'kind = "this:X"' in (received / "scenario.toml").read_text()
    assert main(["run", "--resume", str(received), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "Beautiful is better" not in captured.out + captured.err and "policy.kind" in captured.err


@pytest.mark.parametrize("key", ["flower.server_app", "flower.client_app"])
def test_validate_never_imports_a_standard_library_flower_app(key):
    pytest.importorskip("flwr")
    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "flower_quickstart.toml"
    code, err = cli("validate", scenario, "--set", f"{key}=runpy:run_path")
    clear(code, err, allowed=(2,))
    assert key in err and "standard library" in err
