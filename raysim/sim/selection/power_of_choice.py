"""Power-of-Choice (Cho, Wang, Joshi, "Towards Understanding Biased Client Selection in Federated
Learning", AISTATS 2022, arXiv:2010.01243): the highest-loss clients among a sample.

Each dispatch draws a candidate set of ``d`` available clients without replacement, with
probability proportional to their data size, and takes the ``count`` candidates with the highest
loss. The loss is the one each candidate reported with its last update (the paper's
communication-free variant, cpr-POC / ``pow-d`` on stale losses): raysim does not charge the
candidates an extra forward pass. A candidate never heard from ranks first (its loss is unknown,
so it is treated as +inf): every client is tried before the bias sets in. Ties, and the order among
unknown clients, follow the candidates' draw order, which the run's seed fixes. ``d = count`` is
selection by data size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from raysim.sim.selection.protocol import SelectionView


@dataclass(frozen=True, kw_only=True)
class PowerOfChoice:
    """The highest last losses among d candidates drawn by data size (Cho et al. 2022).

    ``d``: candidates per dispatch, at least the cohort (a dispatch asking for more clients
    than ``d`` draws that many instead)."""

    kind: ClassVar[str] = "power_of_choice"
    d: int

    def __post_init__(self) -> None:
        if self.d < 1:
            raise ValueError(f"d (candidates per dispatch) must be >= 1, got {self.d}")

    def build(self) -> "PowerOfChoiceSelector":
        return PowerOfChoiceSelector(self.d)


class PowerOfChoiceSelector:
    def __init__(self, d: int):
        self.d = d

    def select(self, count: int, view: SelectionView, draw: np.random.Generator) -> list[int]:
        available = view.candidates()
        if not available:
            return []
        sizes = np.array([view.examples[c] for c in available], dtype=np.float64)
        size = min(max(self.d, count), len(available))
        drawn = draw.choice(len(available), size=size, replace=False, p=sizes / sizes.sum())
        candidates = [available[int(i)] for i in drawn]
        return sorted(sorted(candidates, key=lambda c: -last_loss(view, c))[:count])


def last_loss(view: SelectionView, client: int) -> float:
    """The client's last reported training loss; +inf when it never reported one."""
    record = view.records.get(client)
    return math.inf if record is None or record.loss is None else record.loss
