"""Oort (Lai, Zhu, Madhyastha, Chowdhury, "Oort: Efficient Federated Learning via Guided
Participant Selection", OSDI 2021): clients ranked by statistical utility and speed, with
exploration and a pacer. Parameters are named as in the authors' code.

After client i's update for round t_i, its statistical utility is |B_i| * sqrt(mean of its
per-sample losses squared) (``loss_rms`` where the client algorithm reports it; raysim's built-in
clients report the mean loss only, which stands in for the root mean square: a lower bound of
it, equal when the losses are equal). At a dispatch for round R:

- utilities of the explored clients are min-max normalised, clipped at their ``clip_bound``
  quantile, plus the staleness bonus sqrt(0.1 * log R / t_i);
- a client whose last measured duration t exceeds the preferred duration T is multiplied by
  (T / t) ** ``round_penalty`` (alpha); T is the ``round_threshold`` percentile of the measured
  durations, which the pacer raises by ``pacer_delta`` when the utility exploited over the last
  ``pacer_step`` dispatches is within 10% of the window before (and lowers when it moved more
  than 5-fold);
- exploration ``epsilon`` starts at ``exploration_factor`` and is multiplied by
  ``exploration_decay`` each dispatch down to ``exploration_min``; (1 - epsilon) of the slots
  exploit: sampled, in proportion to utility, among the explored clients whose utility is at
  least ``cut_off_util`` times the one at the last exploited place; the other slots explore
  never-tried clients, sampled in proportion to their data size among the fastest
  ``sample_window`` times as many as needed, penalised by their expected duration like the
  explored ones (raysim knows each device's profile, as FedScale does). Slots neither part can
  fill go to the next explored clients by utility. Oort's blacklist of over-picked clients
  (off by default in the authors' code) is not built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from raysim.sim.selection.protocol import SelectionView


@dataclass(frozen=True, kw_only=True)
class Oort:
    """Loss-based utility times a speed penalty, with exploration and a pacer (Lai et al. 2021).

    The defaults are the authors' code's."""

    kind: ClassVar[str] = "oort"
    exploration_factor: float = 0.9
    exploration_decay: float = 0.98
    exploration_min: float = 0.3
    round_penalty: float = 2.0  # alpha
    round_threshold: float = 30.0  # the percentile of measured durations that is the preferred duration T
    pacer_step: int = 20
    pacer_delta: float = 5.0
    cut_off_util: float = 0.95
    clip_bound: float = 0.98
    sample_window: float = 5.0

    def __post_init__(self) -> None:
        for name in ("exploration_factor", "exploration_decay", "exploration_min", "cut_off_util", "clip_bound"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.round_threshold <= 100:
            raise ValueError(f"round_threshold must be a percentile in (0, 100], got {self.round_threshold}")
        if self.round_penalty < 0 or self.pacer_delta < 0 or self.pacer_step < 1 or self.sample_window < 1:
            raise ValueError("round_penalty and pacer_delta must be >= 0, pacer_step and sample_window >= 1")

    def build(self) -> "OortSelector":
        return OortSelector(self)


class OortSelector:
    def __init__(self, settings: Oort):
        self.settings = settings
        self.epsilon = settings.exploration_factor
        self.threshold = settings.round_threshold
        self.exploited_utility: list[float] = []  # per dispatch, for the pacer

    def select(self, count: int, view: SelectionView, draw: np.random.Generator) -> list[int]:
        s = self.settings
        self._pace()
        available = view.candidates()
        explored = [c for c in available if c in view.records and view.records[c].completions]
        known = set(explored)
        unexplored = [c for c in available if c not in known]
        durations = [r.duration_s for r in view.records.values() if r.duration_s is not None]
        preferred = preferred_duration(durations, self.threshold)
        scores = utilities(view, explored, preferred, round_penalty=s.round_penalty, clip_bound=s.clip_bound)
        self.epsilon = max(self.epsilon * s.exploration_decay, s.exploration_min)
        exploit = exploit_sample(scores, min(int(count * (1 - self.epsilon)), len(explored)), s.cut_off_util, draw)
        chosen = list(exploit)
        if unexplored and len(chosen) < count:
            chosen += explore_sample(view, unexplored, count - len(chosen), preferred, s, draw)
        if len(chosen) < count:  # too few never-tried clients: the next explored ones by utility
            rest = sorted((c for c in scores if c not in chosen), key=lambda c: (-scores[c], c))
            chosen += rest[:count - len(chosen)]
        self.exploited_utility.append(sum(statistical_utility(view, c) for c in exploit))
        return sorted(chosen)

    def _pace(self) -> None:
        """The pacer: every ``pacer_step`` dispatches, compare the utility exploited in the last
        window with the window before; flat means the fast clients are spent, so admit slower
        ones (raise T's percentile); a sharp change lowers it again."""
        s, history = self.settings, self.exploited_utility
        if len(history) < 2 * s.pacer_step or len(history) % s.pacer_step:
            return
        last, before = sum(history[-s.pacer_step:]), sum(history[-2 * s.pacer_step:-s.pacer_step])
        if abs(last - before) <= 0.1 * before:
            self.threshold = min(100.0, self.threshold + s.pacer_delta)
        elif abs(last - before) >= 5 * before:
            self.threshold = max(s.pacer_delta, self.threshold - s.pacer_delta)


def statistical_utility(view: SelectionView, client: int) -> float:
    """|B_i| times the root mean square of its last per-sample losses (the mean loss without one)."""
    record = view.records[client]
    rms = record.loss_rms if record.loss_rms is not None else record.loss
    return record.samples * abs(rms) if rms is not None else 0.0


def preferred_duration(durations: list[float], percentile: float) -> float:
    """T: the ``percentile`` of the measured durations (infinite at 100, or with none measured)."""
    if percentile >= 100 or not durations:
        return math.inf
    ordered = sorted(durations)
    return ordered[min(int(len(ordered) * percentile / 100), len(ordered) - 1)]


def penalty(duration_s: float, preferred: float, round_penalty: float) -> float:
    """(T / t) ** alpha for a client slower than T, else 1."""
    return (preferred / max(duration_s, 1e-4)) ** round_penalty if duration_s > preferred else 1.0


def utilities(view: SelectionView, explored: list[int], preferred: float, *, round_penalty: float,
              clip_bound: float) -> dict[int, float]:
    """Each explored client's score: normalised, clipped utility plus the staleness bonus, times
    the system penalty."""
    if not explored:
        return {}
    raw = {c: statistical_utility(view, c) for c in explored}
    ordered = sorted(raw.values())
    clip = ordered[min(int(len(ordered) * clip_bound), len(ordered) - 1)]
    low = ordered[0] * 0.999
    spread = max(ordered[-1] - low, 1e-4)
    scores = {}
    for client in explored:
        record = view.records[client]
        bonus = math.sqrt(0.1 * math.log(max(view.round, 1)) / max(record.last_round, 1))
        score = (min(raw[client], clip) - low) / spread + bonus
        scores[client] = abs(score * penalty(record.duration_s, preferred, round_penalty))
    return scores


def exploit_sample(scores: dict[int, float], slots: int, cut_off: float, draw: np.random.Generator) -> list[int]:
    """``slots`` clients sampled in proportion to score among those at least ``cut_off`` times
    the score at place ``slots`` (ties in rank broken by id)."""
    if slots <= 0:
        return []
    ranked = sorted(scores, key=lambda c: (-scores[c], c))
    floor = scores[ranked[slots - 1]] * cut_off
    pool = [c for c in ranked if scores[c] >= floor]
    weights = np.array([scores[c] for c in pool])
    p = weights / weights.sum() if weights.sum() > 0 else None
    return [pool[int(i)] for i in draw.choice(len(pool), size=slots, replace=False, p=p)]


def explore_sample(view: SelectionView, unexplored: list[int], slots: int, preferred: float, settings: Oort,
                   draw: np.random.Generator) -> list[int]:
    """``slots`` never-tried clients: their data size, penalised by their expected duration, ranks
    them; ``sample_window`` times ``slots`` of the best are sampled in proportion to it."""
    slots = min(slots, len(unexplored))
    reward = {c: view.examples[c] * penalty(view.expected_duration_s(c), preferred, settings.round_penalty)
              for c in unexplored}
    pool = sorted(reward, key=lambda c: (-reward[c], c))[:max(int(settings.sample_window * slots), slots)]
    weights = np.array([reward[c] for c in pool], dtype=np.float64)
    p = weights / weights.sum() if weights.sum() > 0 else None
    return [pool[int(i)] for i in draw.choice(len(pool), size=slots, replace=False, p=p)]
