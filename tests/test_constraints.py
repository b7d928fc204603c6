"""Figures that hold from one machine to the next: constraints.txt pins what CI and the benchmarks
run with, the README and CI install with it, and every benchmark JSON records its environment."""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path):
    """A module from its file: site-packages here holds other packages named ``benchmarks`` and could ``tools``."""
    spec = importlib.util.spec_from_file_location(f"raysim_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


environment_module = load(ROOT / "benchmarks" / "environment.py")
constraints = environment_module.load_constraints()  # the module environment() walks with: one walk
MissingDistribution, applies, closure = constraints.MissingDistribution, constraints.applies, constraints.closure
installed_closure, project_requirements = constraints.installed_closure, constraints.project_requirements
PIN = re.compile(r"^([a-z0-9]+(?:[.-][a-z0-9]+)*)==(\S+)$")


def pins() -> dict[str, str]:
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    bad = [line for line in lines if not PIN.match(line)]
    assert not bad, f"constraints.txt lines that are not canonical name==version: {bad}"
    names = [PIN.match(line).group(1) for line in lines]
    assert names == sorted(set(names)), "constraints.txt must list each package once, sorted"
    return dict(PIN.match(line).groups() for line in lines)


def test_constraints_pin_raysims_direct_dependencies_at_the_installed_versions():
    pinned = pins()
    direct = {canonicalize_name(r.name) for r in project_requirements()[0]}
    assert {"ray", "torch", "numpy", "pandas", "pyarrow", "safetensors", "flwr", "opacus"} <= direct
    assert "raysim" not in pinned  # the editable project itself is never pinned: its version is the checkout's
    for name in sorted(direct):
        assert pinned.get(name) == metadata.version(name), (
            f"constraints.txt pins {name}=={pinned.get(name)}, installed {metadata.version(name)}: "
            f"run `python tools/constraints.py`")


def test_constraints_are_the_whole_installed_closure():
    """A dependency added to pyproject.toml (or one of its own) without regenerating is caught."""
    assert pins() == installed_closure(), "constraints.txt is stale: run `python tools/constraints.py`"


def install_line(text: str, source: str) -> list[str]:
    lines = [line for line in text.splitlines() if "pip install -e" in line]
    assert len(lines) == 1, f"{source}: expected one install line, found {lines}"
    words = shlex.split(lines[0].split(" && ")[0])
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # CI's PIP_QUIET=1 etc. set pip's options, not the command
        words.pop(0)
    return words


def test_readme_and_ci_run_the_same_install_command_with_the_constraints():
    readme = install_line((ROOT / "README.md").read_text(), "README.md")
    ci = install_line((ROOT / ".ci" / "run").read_text(), ".ci/run")
    assert readme == ci
    assert readme[readme.index("-c") + 1] == "constraints.txt"
    # tools/constraints.py pins the closure with every extra pyproject.toml declares: the command installs them all
    (target,) = [word for word in readme if word.startswith(".[")]
    assert Requirement(f"raysim{target[1:]}").extras == set(project_requirements()[1])


def test_markers_and_extras_are_honoured():
    assert applies(Requirement('x; extra == "tune"'), {"tune"})
    assert not applies(Requirement('x; extra == "tune"'), ())
    assert not applies(Requirement('x; python_version < "3"'), ())
    assert "tensorboardx" not in closure([Requirement("ray")])
    assert "tensorboardx" in closure([Requirement("ray[tune]")])  # Tune's dependencies come with the extra


def test_a_requirement_not_installed_is_named():
    with pytest.raises(MissingDistribution, match="no-such-package-raysim .needed by raysim. is not installed"):
        closure([Requirement("no-such-package-raysim")])


def test_environment_records_the_closure_and_the_commit():
    recorded = environment_module.environment()
    assert recorded["packages"] == installed_closure()
    assert recorded["cpu_count"] >= 1 and recorded["python"].startswith("3.")
    if recorded["git"] is not None:
        assert re.fullmatch(r"[0-9a-f]{40}", recorded["git"]["commit"])


def json_call(node: ast.AST, name: str) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "json")


def written_keys(tree: ast.AST) -> list[set[str]]:
    """The top-level keys of every JSON object a script writes to a file (json.dump, or
    json.dumps inside a write_text), following a name to the dict literal assigned to it."""
    literals = {target.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name) and isinstance(node.value, ast.Dict)}
    stored = {}  # name -> keys set by subscript, e.g. out["environment"] = ...
    for node in ast.walk(tree):
        if (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name)
                and isinstance(node.slice, ast.Constant)):
            stored.setdefault(node.value.id, set()).add(node.slice.value)
    writes = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "write_text"]
    objects = [node.args[0] for node in ast.walk(tree) if json_call(node, "dump")]
    objects += [inner.args[0] for write in writes for inner in ast.walk(write) if json_call(inner, "dumps")]
    keys = []
    for obj in objects:
        name = obj.id if isinstance(obj, ast.Name) else None
        literal = literals.get(name, obj)
        found = {k.value for k in literal.keys if isinstance(k, ast.Constant)} if isinstance(literal, ast.Dict) else set()
        keys.append(found | stored.get(name, set()))
    return keys


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")
                                          if p.name != "own_algorithms.py"))  # that one records its own versions
def test_every_benchmark_json_records_its_environment(script):
    for keys in written_keys(ast.parse((ROOT / "benchmarks" / script).read_text())):
        assert "environment" in keys, f"benchmarks/{script} writes JSON without its \"environment\": {sorted(keys)}"


def test_the_json_writers_are_found():
    """The check above looks at every script that writes a benchmark JSON, not at none."""
    writers = {p.name for p in (ROOT / "benchmarks").glob("*.py") if written_keys(ast.parse(p.read_text()))}
    assert {"run.py", "footprint.py", "flower.py", "contribution.py", "reproductions.py", "psi.py"} <= writers
