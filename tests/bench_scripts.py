"""Loading a benchmark script (benchmarks/*.py) as a module, as it runs: with its folder on the
path, since the scripts import their neighbours (environment.py, each other's statistics); and
the two fixtures of a test that the README's table is a script's JSON."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def readme_section(heading: str) -> str:
    """The README's section under ``heading``, up to the next section of level 2."""
    readme = (BENCHMARKS.parent / "README.md").read_text()
    section = readme[readme.index(heading):]
    return section[:section.index("\n## ")]


def script_fixtures(name: str):
    """Module-scoped fixtures ``bench`` (the script as a module) and ``sweep`` (its JSON), for
    ``bench, sweep = script_fixtures("name")`` at a test module's top."""
    import json

    bench = pytest.fixture(scope="module", name="bench")(lambda: load_script(name))
    sweep = pytest.fixture(scope="module", name="sweep")(lambda: json.loads((BENCHMARKS / f"{name}.json").read_text()))
    return bench, sweep
