"""Ray for the length of one run that needs it (the vertical and Flower runs; a horizontal run
starts its own in api.py)."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def ray_for_run(config, *, address: str | None, needed: bool) -> Iterator[None]:
    """Ray for the length of a run that needs it: started here (or joined at ``address``) first,
    before the run starts a thread (session.py), and shut down after if started here; nothing,
    and Ray not even imported, for a run in this process."""
    if not needed:
        yield
        return
    from raysim.runtime import session

    started_here = session.start(config, address=address)
    try:
        yield
    finally:
        session.stop(started_here)
