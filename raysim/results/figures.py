"""matplotlib, loaded the one way every figure of raysim needs it: the Agg backend (PNG files,
no display), imported on first use because it costs about 0.4 s."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the Agg backend. ``raysim run`` also calls it on a side thread
    while its data is prepared, so that the plots after the last round do not wait for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
