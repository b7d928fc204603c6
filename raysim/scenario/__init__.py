"""Scenario files: the TOML loader (``config``), the typed sections (``sections``), the checks
between sections (``combinations``), and what a scenario becomes (``preparation``, ``composition``).

The Python way in is :func:`load` (a file) and :func:`from_dict` (the same table as a dict): each
validates as ``raysim run`` does, with the same ConfigError naming the key, and returns the
scenario ``raysim.api.run`` takes. Relative paths in a scenario (``data.path``, ``data.root``,
``system.trace``) are read from the working directory, for a file and a dict alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping


def load(path: str | Path, overrides: Mapping[str, Any] | Iterable[str] | None = None) -> Any:
    """The scenario file at ``path``, with ``overrides`` applied: ``{"run.rounds": 5}`` (Python
    values) or ``["run.rounds=5"]`` (read as ``raysim run --set`` reads them). A ``Scenario``, or a
    ``VerticalScenario`` / ``FlowerScenario`` for a file with ``[vertical]`` / ``[flower]``."""
    from raysim.scenario.sections import read_table

    return from_dict(read_table(path), overrides)


def from_dict(table: Mapping[str, Any], overrides: Mapping[str, Any] | Iterable[str] | None = None) -> Any:
    """The scenario a file holding ``table`` would be (``{"run": {"name": "mine"}, "data": {...}}``),
    checked as the file would be; ``table`` itself is not changed. Values a TOML file cannot hold
    are refused by key, since the run folder records the scenario as TOML."""
    from raysim.scenario.config import with_overrides
    from raysim.scenario.vertical import parse_any

    return parse_any(with_overrides(table, overrides))
