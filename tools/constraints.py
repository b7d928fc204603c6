"""Pins of the exact versions CI and the benchmarks run with, for figures that hold from one machine to the next.

pyproject.toml gives ranges, right for users who install raysim next to their own packages; two
machines that resolve those ranges on different days get different releases, and the same commit
then measured 1,436 MB peak on one and 1,717 MB on another. ``constraints.txt`` fixes the
releases: the README's install command passes it with ``-c``, CI runs that same command, and every
benchmark JSON records the versions it ran with (benchmarks/environment.py, which calls
``closure`` below: one walk, in one place).

The closure is read from what is installed, never resolved anew: raysim's requirements with
every extra pyproject.toml declares (the ones ``.ci/run`` installs), then each installed
distribution's ``Requires-Dist``, recursively, keeping a requirement only where its environment
marker holds for this interpreter and the extras asked of it. Regenerate it, on a machine set up
by ``.ci/run``'s install command, with::

    python tools/constraints.py            # writes constraints.txt at the repository root
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "constraints.txt"

HEADER = """\
# The exact versions CI (.ci/run) and the benchmarks run with: pass this file with -c to the
# README's install command for reproducible figures. The ranges in pyproject.toml stay for users
# who install without it. Written by `python tools/constraints.py` from the installed
# distributions' metadata: the closure of raysim's requirements with all its extras
# ({extras}), markers evaluated for Python {python} on {platform}.
"""


class MissingDistribution(RuntimeError):
    """A requirement of the closure is not installed: the pins would be incomplete."""


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> tuple[list[Requirement], tuple[str, ...]]:
    """raysim's own requirements with every extra, and the extras' names, from pyproject.toml.

    Read from the source, not from raysim's installed metadata: an editable install's metadata is
    as old as its last ``pip install``, and would miss a dependency added since.
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    lines = [*project["dependencies"], *(line for group in extras.values() for line in group)]
    return [Requirement(line) for line in lines], tuple(extras)


def applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    """Whether the requirement's marker holds here, for its parent installed with ``extras``."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def closure(requirements: Iterable[Requirement]) -> dict[str, str]:
    """Every installed distribution the requirements reach: canonical name -> installed version.

    A distribution is walked again when it is reached with extras not yet walked, so
    ``ray[tune]`` adds Tune's dependencies to plain ``ray``'s. A reached distribution that is
    not installed raises ``MissingDistribution``, naming it and what needed it.
    """
    versions: dict[str, str] = {}
    walked: dict[str, set[str]] = {}
    pending = [("raysim", requirement) for requirement in requirements]
    while pending:
        parent, requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = {canonicalize_name(extra) for extra in requirement.extras}
        if name in walked and extras <= walked[name]:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise MissingDistribution(
                f"{requirement.name} (needed by {parent}) is not installed: install with the README's "
                f"command first, then run tools/constraints.py again") from None
        walked[name] = walked.get(name, set()) | extras
        versions[name] = distribution.version
        pending.extend((name, Requirement(line)) for line in distribution.requires or ()
                       if applies(Requirement(line), walked[name]))
    return versions


def installed_closure() -> dict[str, str]:
    """The closure of raysim with all its extras on this machine (what constraints.txt pins)."""
    requirements, _ = project_requirements()
    return closure(requirements)


def render(versions: dict[str, str], extras: Iterable[str]) -> str:
    """constraints.txt's text: the header, then one ``name==version`` line a package, sorted."""
    header = HEADER.format(extras=",".join(extras), python=".".join(map(str, sys.version_info[:3])),
                           platform=sys.platform)
    return header + "".join(f"{name}=={versions[name]}\n" for name in sorted(versions))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write (default: constraints.txt at the root)")
    args = parser.parse_args()
    requirements, extras = project_requirements()
    try:
        versions = closure(requirements)
    except MissingDistribution as error:
        print(f"constraints: {error}", file=sys.stderr)
        return 2
    args.out.write_text(render(versions, extras))
    print(f"constraints: {len(versions)} pins written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
