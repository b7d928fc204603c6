"""One meaning per class name: no two modules of raysim define a top-level class of the same name,
so a name in a traceback, a checkpoint (``module:QualName``), a docstring or a review means one
thing (issue 34: ``Ledger`` once meant three things, ``Shards`` two).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "raysim"


def top_level_classes(tree: ast.Module) -> list[str]:
    """The classes a module defines at its top, those under a top-level ``if`` or ``try`` (a
    ``TYPE_CHECKING`` block, an optional import's fallback) included."""
    names, pending = [], list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, (ast.If, ast.Try)):
            pending.extend(node.body + node.orelse + getattr(node, "finalbody", []))
            pending.extend(s for handler in getattr(node, "handlers", []) for s in handler.body)
    return names


def twice_defined(package: Path) -> dict[str, list[str]]:
    """Each class name defined by more than one module of ``package``, with those modules."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(package.rglob("*.py")):
        for name in set(top_level_classes(ast.parse(path.read_text(), filename=str(path)))):
            where[name].append(str(path.relative_to(package.parent)))
    return {name: paths for name, paths in sorted(where.items()) if len(paths) > 1}


def test_every_class_name_has_one_meaning() -> None:
    twice = twice_defined(PACKAGE)
    assert not twice, "class names defined by more than one module (rename all but one to say what " \
                      "it holds): " + "; ".join(f"{name} in {', '.join(paths)}" for name, paths in twice.items())


def test_the_check_sees_a_name_defined_twice(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("class Ledger:\n    pass\n\nclass Only:\n    pass\n")
    (package / "sub" / "b.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    class Ledger:\n        pass\n")
    (package / "c.py").write_text("def f():\n    class Only:  # not at the top: a local name\n        pass\n")
    assert twice_defined(package) == {"Ledger": ["pkg/a.py", "pkg/sub/b.py"]}


def test_no_class_inherits_from_two_raysim_classes() -> None:
    """Issue 34: the driver was ``Driver(Incentivised, Dispatching, Recording)``, three mixins
    reading its attributes freely, the order of its bases load-bearing. A feature is a stage now
    (sim/stages/), handed to the kernel: no class of raysim has two raysim bases."""
    ours = {name for path in PACKAGE.rglob("*.py") for name in top_level_classes(ast.parse(path.read_text()))}
    mixed = [f"{path.relative_to(PACKAGE.parent)}:{node.name}" for path in sorted(PACKAGE.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)
             and sum(ast.unparse(base).split(".")[-1] in ours for base in node.bases) > 1]
    assert not mixed, mixed


def test_raysim_has_at_most_six_modules_at_its_top() -> None:
    """The run kinds live in runs/, the simulation's rooms under sim/: the top keeps the public
    entry points (api, cli, __main__) and floor 0 (files, inputs, seeding)."""
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= 6, top
