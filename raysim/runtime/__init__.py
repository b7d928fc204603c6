"""Where client work runs: in-process (``local``) or on Ray actors (``ray_executor``).

``ray_executor`` is the only module of raysim that imports Ray. The driver talks to either
through the ``Executor`` protocol (``raysim/sim/kernel/executor.py``) and cannot tell them apart,
except by speed.
"""

from __future__ import annotations


class DriverLost(RuntimeError):
    """The driver actor died (its process was killed): the run cannot go on in this session."""


class WorkersLost(RuntimeError):
    """Client actors keep dying with no work finishing in between: the run cannot progress."""

