"""What a benchmark ran on, recorded in its JSON so that a figure can be traced and reproduced.

The same commit measured 1,436 MB peak on one machine and 1,717 MB on another with the same
declared dependency ranges: a figure without the versions it ran with cannot be compared. Every
benchmark that writes a JSON stores ``"environment": environment()``: the interpreter, the
platform, the CPU count, the commit, and the installed version of every package in raysim's
dependency closure, from tools/constraints.py's walk (the one that writes constraints.txt), so
the record and the pins list the same packages.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_constraints():
    """tools/constraints.py, loaded from its file: ``import tools.constraints`` would find an
    installed package named ``tools`` first where one exists (a regular package beats a folder)."""
    spec = importlib.util.spec_from_file_location("raysim_tools_constraints", ROOT / "tools" / "constraints.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


installed_closure = load_constraints().installed_closure


def git_commit(root: Path = ROOT) -> dict[str, object] | None:
    """The checked-out commit and whether tracked files differ from it; None outside git.

    The benchmarks' own JSON files are left out of the comparison: a benchmark rewrites its JSON,
    which would mark every second run as changed.
    """
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True, timeout=30).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                  "--", ".", ":(exclude)benchmarks/*.json"],
                                 capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "uncommitted_changes": bool(changes.strip())}


def environment() -> dict[str, object]:
    """Python, platform, CPUs, commit and the closure's package versions, as JSON-ready values."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "git": git_commit(),
        "packages": installed_closure(),
    }
