"""Imports only go down: a module of raysim may import its own floor or a lower one, never a
higher one, so each floor can be read (and tested) without the floors above it.

Every import is checked, those inside functions and ``TYPE_CHECKING`` blocks included: a lazy
import is still a dependency, it only fails later.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "raysim"

# Bottom to top; a module belongs to the floor of the longest prefix that names it.
FLOORS = [
    ("raysim.seeding", "raysim.inputs", "raysim.files"),
    ("raysim.data", "raysim.models", "raysim.algorithms", "raysim.privacy", "raysim.compression",
     "raysim.contribution", "raysim.incentives", "raysim.vertical",
     "raysim.network"),
    ("raysim.sim",),
    ("raysim.runtime",),
    ("raysim.scenario",),
    ("raysim.results",),
    ("raysim.api", "raysim.runs"),
    ("raysim.experiments",),
    ("raysim.cli", "raysim.__main__"),
]


def floor_of(module: str) -> int:
    if module == "raysim":  # the package itself: its __init__ is empty
        return len(FLOORS) - 1
    matches = [(len(prefix), level) for level, prefixes in enumerate(FLOORS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} is on no floor: add its folder to FLOORS")
    return max(matches)[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, *, annotations: bool = True) -> set[str]:
    """The raysim modules a file imports anywhere in it (``from raysim.x import y`` names
    ``raysim.x.y`` where that is a module, else ``raysim.x``); without ``annotations``, those
    imported only for type hints (``if TYPE_CHECKING:``) are left out."""
    tree = ast.parse(path.read_text(), filename=str(path))
    hints_only = set()
    if not annotations:
        for block in ast.walk(tree):
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
                hints_only.update(id(node) for statement in block.body for node in ast.walk(statement))
    found = set()
    for node in ast.walk(tree):
        if id(node) in hints_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = any((PACKAGE.parent / Path(*candidate.split("."))).with_suffix(suffix).exists()
                                for suffix in (".py", ""))
                found.add(candidate if is_module else node.module)
    return {name for name in found if name == "raysim" or name.startswith("raysim.")}


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_only_go_down(path: Path) -> None:
    module = module_name(path)
    own = floor_of(module)
    upward = sorted(name for name in imported_modules(path) if floor_of(name) > own)
    assert not upward, f"{module} (floor {own}) imports a higher floor: {upward}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself: an upward import inside a function is found."""
    source = tmp_path / "example.py"
    source.write_text("def f():\n    from raysim.scenario.sections import Scenario\n")
    assert imported_modules(source) == {"raysim.scenario.sections"}
    assert floor_of("raysim.scenario.sections") > floor_of("raysim.sim.kernel.driver")


def test_no_module_imports_itself_back() -> None:
    """No circles: following imports from any module never leads back to it (imports for type
    hints only are left out: they never run)."""
    graph = {module_name(path): imported_modules(path, annotations=False) for path in MODULES}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for name in graph.get(start, ()):
            if name == goal or (name not in seen and not seen.add(name) and reaches(name, goal, seen)):
                return True
        return False

    circles = sorted(module for module in graph if reaches(module, module, set()))
    assert not circles, f"modules on an import circle: {circles}"
