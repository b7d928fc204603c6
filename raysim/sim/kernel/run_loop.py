"""The run-loop protocol: what every kind of run's loop answers, and all that its caller uses.

The star kernel (driver.py) and the round loops without a server (nodes.py: gossip, hierarchy)
implement it; ``api.py`` drives one through it, in this process or as a Ray actor (the same
calls either way), writes each report's rows and a checkpoint between rounds. A new kind of run
implements these calls and is run, resumed and written like the others."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from raysim.sim.kernel.records import RoundReport


@runtime_checkable
class RunLoop(Protocol):
    def advance(self) -> list[RoundReport]:
        """Runs until the next recorded round(s); [] once the run is finished."""
        ...

    def snapshot(self) -> bytes:
        """Everything that evolves, as data (checkpoint.py), between two calls of ``advance``."""
        ...

    def restore(self, snapshot: bytes) -> None:
        """Continues from a snapshot of the same run; CheckpointError, with nothing changed, when
        it does not fit."""
        ...

    def use_state_dir(self, directory: Path) -> None:
        """Where per-client state beyond the memory budget is kept (the run folder's ``client_state``)."""
        ...

    def model_arrays(self) -> dict[str, np.ndarray]:
        """The run's model by entry name: the result written as ``model.safetensors``."""
        ...

    def client_models(self) -> dict[int, dict[str, np.ndarray]]:
        """Each client's own part of the model, where the run has them (``clients/``)."""
        ...

    def describe(self) -> dict:
        """Runtime facts for the run's summary."""
        ...

    def close(self) -> None:
        ...
