"""The utility of a coalition, as the estimators see it: a batched, cached, budgeted callable.

An estimator never scores a model itself. It asks for the values of a batch of coalitions;
``Utility`` answers from its cache what it has already seen (keyed by the sorted tuple of
player ids, so ``{3, 1}`` and ``{1, 3}`` are one entry and ids need not be 0..n-1), sends the
rest to ``evaluate`` in one call (so the caller can score the batch on its workers at once),
and refuses a batch that would cross ``max_evaluations``, raising :class:`BudgetExhausted`
before anything of it is evaluated. Estimators catch that and keep what they had finished.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

Coalition = tuple[int, ...]
Evaluate = Callable[[Sequence[Coalition]], Sequence[float]]


class BudgetExhausted(RuntimeError):
    """The next batch would need more utility evaluations than the round's budget has left."""


class Utility:
    """v(S) for coalitions S of player ids; see the module's docstring."""

    def __init__(self, evaluate: Evaluate, *, max_evaluations: int | None = None):
        if max_evaluations is not None and max_evaluations < 1:
            raise ValueError(f"max_evaluations must be >= 1 (or None for no limit), got {max_evaluations}")
        self._evaluate = evaluate
        self.max_evaluations = max_evaluations
        self.cache: dict[Coalition, float] = {}
        self.calls = 0  # utility evaluations made (cache hits are free)

    def __call__(self, coalitions: Iterable[Iterable[int]]) -> np.ndarray:
        """Values of the coalitions, in order; the unseen ones are evaluated in one batch."""
        keys = [tuple(sorted(int(p) for p in c)) for c in coalitions]
        new = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if new:
            if self.max_evaluations is not None and self.calls + len(new) > self.max_evaluations:
                raise BudgetExhausted(f"{len(new)} more evaluations would pass max_evaluations = "
                                      f"{self.max_evaluations} ({self.calls} made)")
            values = [float(v) for v in self._evaluate(new)]
            if len(values) != len(new):
                raise ValueError(f"the utility returned {len(values)} values for {len(new)} coalitions")
            self.calls += len(new)
            self.cache.update(zip(new, values))
        return np.array([self.cache[k] for k in keys], dtype=np.float64)
