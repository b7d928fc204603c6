"""matplotlib, loaded the one way every figure of raysim needs it: the Agg backend (PNG files,
no display), imported on first use because it costs about 0.4 s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the Agg backend and without mathtext. ``raysim run`` also calls
    it on a side thread while its data is prepared, so that the plots after the last round do
    not wait for it.

    Titles and legends hold scenario names, read from scenario files and folder names; with
    mathtext on, a name such as ``a$\\b$`` is parsed as TeX and fails the figure (and the run,
    after its last round). raysim's own labels use no TeX, so every text is drawn as it is.
    """
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Picture:
    """A figure for the report with its text alternative (the <img>'s alt: what it shows, for
    readers who cannot see it) and an optional caption shown under it (how it was drawn)."""

    fig: Any
    alt: str
    caption: str = ""
