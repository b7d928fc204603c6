"""The README's sample scenario ("A scenario file, section by section") shows each key's real
default: every ``key = value`` and commented ``# key = value`` line is compared with the field's
default in the scenario's dataclasses; a line whose comment starts with "e.g." shows an example
and need only name a real key, and a key without a default (run.name, data.dataset) is shown as
required."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path

from raysim.scenario.config import to_table
from raysim.scenario.sections import Scenario

README = Path(__file__).resolve().parents[1] / "README.md"
LINE = re.compile(r"#?\s*(?P<key>\w+)\s*=\s*(?P<rest>.+)")


def _sample_lines() -> list[tuple[str, str, str]]:
    """(section, key, the text after '=') for each key line of the sample, commented or not."""
    text = README.read_text()
    start = text.index("## A scenario file, section by section")
    block = re.search(r"```toml\n(.*?)```", text[start:], flags=re.S).group(1)
    lines, section = [], None
    for line in block.splitlines():
        header = re.match(r"\[(\w+)\]", line)
        if header:
            section = header.group(1)
        elif match := LINE.fullmatch(line.strip()):
            lines.append((section, match.group("key"), match.group("rest")))
    return lines


def _defaults(section: str) -> dict[str, object]:
    """Each key of ``section`` and its default as a scenario without the key has it (a section's
    default object where the scenario has one: [selection]'s is 10 clients a round), or MISSING."""
    field = {f.name: f for f in dataclasses.fields(Scenario)}[section]
    if field.default_factory is not dataclasses.MISSING:
        table = to_table(field.default_factory())
        cls = type(field.default_factory())
    else:  # [run], [data]: their fields' own defaults, the required ones MISSING
        cls, table = typing.get_type_hints(Scenario)[section], {}
    defaults = {}
    for f in dataclasses.fields(cls):
        if f.name in table:
            value = table[f.name]
        elif f.default is not dataclasses.MISSING:
            value = to_table(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            value = to_table(f.default_factory())
        else:
            value = dataclasses.MISSING
        defaults[f.name] = value["kind"] if f.metadata.get("registry") else value  # a union by its kind's name
    return defaults | ({"kind": table["kind"]} if "kind" in table else {})


def test_the_sample_shows_every_default_as_it_is():
    lines = _sample_lines()
    assert len(lines) > 60
    checked, wrong = 0, []
    for section, key, rest in lines:
        defaults = _defaults(section)
        assert key in defaults, f"[{section}] {key} is no key of the scenario"
        value = tomllib.loads(f"v = {rest}")["v"]
        example = "#" in rest and rest.split("#", 1)[1].strip().startswith("e.g.")
        default = defaults[key]
        if example or default is dataclasses.MISSING:
            continue
        checked += 1
        if value != default:
            wrong.append(f"[{section}] {key} = {value!r}, but its default is {default!r}")
    assert not wrong, wrong
    assert checked > 60
