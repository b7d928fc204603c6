"""The privacy stage of a server step: clip, noise, securely sum, account.

Given one round's client updates, it produces the averaged delta the server optimizer applies,
the way a real deployment would:

- DP-FedAvg (McMahan et al. 2018, arXiv:1710.06963): each delta is clipped to norm S; with
  ``central`` placement the server adds N(0, (zS)^2) to the sum and divides by the *expected*
  cohort size m (a fixed denominator); with ``local`` placement every client adds that noise
  to its own clipped delta. Adaptive clipping (Andrew et al. 2021, arXiv:1905.03871) moves S
  towards a quantile of the update norms, using a noised count.
- The sum itself is computed in the clear, under secure aggregation (Bonawitz et al. 2017, the
  server only ever holds masked vectors; clients that dropped after sharing keys are the
  protocol's dropouts), or under CKKS homomorphic encryption (the server adds ciphertexts).
- The RDP accountant (opacus) turns the rounds into epsilon at the scenario's delta: the
  sampled Gaussian with q = min(1, ceil(m * over_selection) / N) for central DP (fixed-size
  sampling, see accounting.py), and per client, over its own participations, for local DP.

What the numbers mean (README, "Privacy and security"):

- epsilon is per client (its whole dataset is the unit), at ``privacy.delta``, under the
  adjacency ``privacy.adjacency``: ``zero_out`` (a neighbouring run has the client's update
  replaced by zeros, i.e. the client sent nothing: sensitivity S) or ``replace_one`` (the
  client's data replaced by anything: sensitivity 2S, so the accountant sees noise z / 2).
  Unset, it is ``zero_out`` for central DP (DP-FedAvg's add/remove notion) and
  ``replace_one`` for local DP (the local model: any two inputs of one client).
- q, the central accountant's sampling rate, is an upper bound of a client's inclusion
  probability: min(1, ceil(m * over_selection) / N), every client drawn being counted as
  released (the loader refuses availability models that draw from fewer than N clients).
- The trust model: central DP trusts the server (or the secure aggregation it runs behind)
  with the noiseless sum; local DP trusts nobody. Secure aggregation and CKKS protect the
  individual updates from an honest-but-curious server, not the sum.
- The protocols' costs are on the simulated clock: uploads take the masked vector's or the
  ciphertext's size, and the extra round trips and bytes of the slowest client move the
  round's end (``protocol_sim_s``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np

from raysim.network.transport import transfer_s
from raysim.privacy.dp import (
    AdaptiveClipState, adaptive_clip_update, adaptive_noise_multiplier, clip_to_norm, dp_average, local_noise,
    noisy_unclipped_fraction,
)
from raysim.seeding import Stream, derive_seed, rng


@dataclass(frozen=True, kw_only=True)
class PrivacyConfig:
    """``[privacy]``: differential privacy, secure aggregation, homomorphic encryption."""

    dp: Literal["none", "central", "local"] = "none"
    clip_norm: float = 1.0
    noise_multiplier: float = 1.0
    adaptive_clipping: bool = False
    target_quantile: float = 0.5
    delta: float = 1e-5
    epsilon_budget: float = 0.0  # stop the run once epsilon reaches this (0 = no budget)
    secure_aggregation: Literal["none", "secagg", "secagg+"] = "none"
    secagg_threshold: float = 0.6  # Shamir t as a share of the cohort (SecAgg+: of a neighbourhood)
    secagg_neighbours: int = 0  # SecAgg+ graph degree k (0 = 2 * ceil(log2 n))
    quantization_bits: int = 16
    quantization_range: float = 1.0  # coordinates are clipped to [-r, r] before quantising
    homomorphic: Literal["none", "ckks"] = "none"
    adjacency: Literal["zero_out", "replace_one"] | None = None  # unset: see ``neighbouring``

    def __post_init__(self) -> None:
        for name in ("clip_norm", "quantization_range"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if not 0 < self.target_quantile < 1:
            raise ValueError(f"target_quantile must be in (0, 1), got {self.target_quantile}")
        if not 0 < self.secagg_threshold <= 1:
            raise ValueError(f"secagg_threshold must be in (0, 1], got {self.secagg_threshold}")
        if not 1 <= self.quantization_bits <= 24:
            raise ValueError(f"quantization_bits must be in [1, 24] (the masked ring has 32 bits), got {self.quantization_bits}")
        if self.epsilon_budget < 0 or (self.epsilon_budget and self.dp == "none"):
            raise ValueError("epsilon_budget needs dp = 'central' or 'local' and a value > 0")
        if self.dp != "none" and self.noise_multiplier == 0:
            raise ValueError("dp needs noise_multiplier > 0 (0 would give no privacy)")
        if self.secure_aggregation != "none" and self.homomorphic != "none":
            raise ValueError("choose secure_aggregation or homomorphic, not both")
        if self.adjacency is not None and self.dp == "none":
            raise ValueError("adjacency says what epsilon protects: it needs dp = 'central' or 'local'")
        if self.adaptive_clipping and self.dp != "central":
            raise ValueError(f"adaptive_clipping needs dp = 'central', not {self.dp!r}: under local DP each "
                             "client's clipped-or-not bit would leave without local noise, and without DP "
                             "there is no clip norm to adapt")
        if self.secagg_neighbours and self.secure_aggregation != "secagg+":
            raise ValueError("secagg_neighbours is SecAgg+'s graph degree: it needs secure_aggregation = 'secagg+'")

    @property
    def neighbouring(self) -> str:
        """The adjacency epsilon is stated for: as set, else zero-out for central DP (a client
        that sends nothing) and replace-one for local DP (any two inputs of one client)."""
        return self.adjacency or ("replace_one" if self.dp == "local" else "zero_out")

    @property
    def accounted_noise(self) -> float:
        """The noise multiplier the accountant sees: replace-one doubles the sensitivity to 2S,
        which for the same noise std z S halves the multiplier."""
        return self.noise_multiplier / (2.0 if self.neighbouring == "replace_one" else 1.0)

    @property
    def active(self) -> bool:
        return self.dp != "none" or self.secure_aggregation != "none" or self.homomorphic != "none"


Link = tuple[float, float, float]  # latency (s), uplink and downlink (bit/s)


@dataclass(frozen=True)
class PrivateUpdate:
    client_id: int
    delta: np.ndarray
    weight: float


class PrivacyStage:
    """Turns a round's updates into the averaged delta, privately; keeps the accountant."""

    # what a checkpoint leaves out: the population's link (a bound method) and the CKKS context
    # (native SEAL objects) are the resumed scenario's own (raysim/sim/state/checkpoint.py)
    REBUILT = ("link", "he")

    def __init__(self, config: PrivacyConfig, *, seed: int, population: int, cohort: int, drawn: int | None = None,
                 link: Callable[[int], Link] | None = None, update_bytes: int = 0, num_params: int = 0):
        """``cohort`` m is the expected number of updates (DP's fixed denominator), ``drawn`` the
        clients selected per round (m times the over-selection; default m), which bounds the
        inclusion probability. ``link(client)`` gives a client's (latency s, uplink bit/s,
        downlink bit/s), to turn the protocol's messages into simulated time; ``update_bytes``
        is the plain upload, ``num_params`` the length of the vector that is masked or encrypted."""
        self.config = config
        self.link = link
        self.update_bytes = update_bytes
        self.num_params = num_params
        self.seed = seed
        self.population = population
        self.cohort = cohort
        self.sample_rate = min(1.0, (drawn or cohort) / population)
        self.clip = AdaptiveClipState(clip_norm=config.clip_norm, target_quantile=config.target_quantile)
        self.participations: dict[int, int] = {}
        self.accountant = None
        if config.dp != "none":
            from raysim.privacy.accounting import PrivacyAccountant

            self.accountant = PrivacyAccountant(config.delta)
        self.he = None
        if config.homomorphic == "ckks":
            from raysim.privacy.he import HEContext

            self.he = HEContext()
        self.epsilon = 0.0

    def __getstate__(self) -> dict:
        # A CKKS context holds native SEAL objects; a resumed run makes fresh keys.
        return {**self.__dict__, "he": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.config.homomorphic == "ckks":
            from raysim.privacy.he import HEContext

            self.he = HEContext()

    @property
    def upload_bytes(self) -> int:
        """What one client uploads: the masked ring vector (32 bits a coordinate) under secure
        aggregation, the CKKS ciphertext under homomorphic encryption, else the plain update."""
        if self.config.secure_aggregation != "none":
            from raysim.privacy.ring import MODULUS_BITS

            return math.ceil(self.num_params * MODULUS_BITS / 8)
        if self.config.homomorphic == "ckks":
            from raysim.privacy.he import ciphertext_bytes

            return ciphertext_bytes(self.num_params)
        return self.update_bytes

    def would_exceed_budget(self, clients: Sequence[int]) -> bool:
        """Whether a round releasing these clients' updates would take epsilon past the budget:
        such a round is not applied, and the run stops with epsilon still within it."""
        budget = self.config.epsilon_budget
        return bool(budget) and self._epsilon_after(clients) > budget

    def _epsilon_after(self, clients: Sequence[int]) -> float:
        from raysim.privacy.accounting import local_epsilon

        c = self.config
        if c.dp == "central":
            return self.accountant.epsilon_if_step(c.accounted_noise, self.sample_rate)
        counts = {**self.participations, **{k: self.participations.get(k, 0) + 1 for k in clients}}
        return local_epsilon(max(counts.values(), default=0), noise_multiplier=c.accounted_noise, delta=c.delta)

    def reduce(self, updates: Sequence[PrivateUpdate], *, round_number: int, dropped: Sequence[int]) -> tuple[np.ndarray | None, dict]:
        """The round's averaged delta (None if secure aggregation could not unmask) and metrics."""
        c = self.config
        metrics: dict[str, float] = {}
        deltas = [np.asarray(u.delta, dtype=np.float64) for u in updates]
        weights = [u.weight for u in updates]
        if c.dp != "none":
            deltas, norms, clipped = self._clip(deltas)
            metrics.update(clip_norm=self.clip.clip_norm, fraction_clipped=float(np.mean(clipped)))
            if c.dp == "local":
                deltas = [local_noise(d, clip_norm=self.clip.clip_norm, noise_multiplier=c.noise_multiplier,
                                      rng=rng(self.seed, Stream.PRIVACY, round_number, u.client_id))
                          for d, u in zip(deltas, updates)]
        total, weight_sum, cost = self._sum(deltas, weights, updates, round_number=round_number, dropped=dropped)
        metrics.update(cost)
        if total is None:
            return None, metrics
        if c.dp == "central":
            average = dp_average(total, clip_norm=self.clip.clip_norm, noise_multiplier=self._update_noise(),
                                 denominator=self.cohort, rng=rng(self.seed, Stream.PRIVACY, round_number))
        else:
            average = total / weight_sum
        if c.dp != "none":
            self._account([u.client_id for u in updates])
            if c.adaptive_clipping:
                self._adapt(norms, round_number)
            metrics.update(epsilon=self.epsilon, dp_adjacency=c.neighbouring,
                           dp_sampling_rate=self.sample_rate if c.dp == "central" else 1.0)
        return average, metrics

    def _clip(self, deltas: list[np.ndarray]) -> tuple[list[np.ndarray], list[float], list[bool]]:
        results = [clip_to_norm(d, self.clip.clip_norm) for d in deltas]
        return [r[0] for r in results], [r[2] for r in results], [r[1] for r in results]

    def _sum(self, deltas, weights, updates, *, round_number: int, dropped: Sequence[int]):
        """The weighted sum of the deltas and the total weight, in the clear or protected."""
        c = self.config
        if c.secure_aggregation != "none":
            return self._secure_sum(deltas, updates, round_number=round_number, dropped=dropped)
        if self.he is not None:
            from raysim.privacy.he import ciphertext_bytes, he_weighted_average

            result = he_weighted_average(self.he, deltas, weights)
            return result.average * sum(weights), float(sum(weights)), {
                "he_bytes_per_client": float(ciphertext_bytes(deltas[0].size)),
                "he_wall_s": result.encrypt_seconds + result.aggregate_seconds + result.decrypt_seconds,
                "protocol_sim_s": self._decryption_time([u.client_id for u in updates]),
            }
        total = np.zeros_like(deltas[0])
        for d, w in zip(deltas, weights):
            total += w * d
        return total, float(sum(weights)), {}

    def _secure_sum(self, deltas, updates, *, round_number: int, dropped: Sequence[int]):
        from raysim.privacy.ring import dequantize, quantize
        from raysim.privacy.secagg import SecAggError, run_secagg

        c = self.config
        started = time.perf_counter()
        clipped = float(np.mean([np.mean(np.abs(d) > c.quantization_range) for d in deltas]))
        inputs = {u.client_id: quantize(d, c.quantization_range, c.quantization_bits,
                                        rng=rng(self.seed, Stream.PRIVACY, round_number, u.client_id, 1))
                  for d, u in zip(deltas, updates)}
        size = deltas[0].size
        for client in dropped:  # shared keys, then never sent their masked input
            inputs[client] = np.zeros(size, dtype=np.uint64)
        n = len(inputs)
        neighbours = None
        if c.secure_aggregation == "secagg+":
            neighbours = min(n - 1, c.secagg_neighbours or 2 * math.ceil(math.log2(max(n, 2))))
        # Shamir t counts shares among those who hold them: the cohort, or a SecAgg+ neighbourhood.
        holders = n if neighbours is None else neighbours + 1
        threshold = max(1, math.ceil(c.secagg_threshold * holders))
        try:
            result = run_secagg(inputs, threshold=threshold, dropped=set(dropped), neighbours=neighbours,
                                seed=derive_seed(self.seed, Stream.PRIVACY, round_number))
        except SecAggError:
            return None, 0.0, {"secagg_failed": 1.0, "secagg_wall_s": time.perf_counter() - started}
        total = dequantize(result.sum, len(result.survivors), c.quantization_range, c.quantization_bits)
        up = np.mean(list(result.cost.bytes_up.values()))
        down = np.mean(list(result.cost.bytes_down.values()))
        return total, float(len(result.survivors)), {
            "secagg_failed": 0.0, "secagg_clipped_coordinates": clipped,
            "secagg_bytes_up_per_client": float(up), "secagg_bytes_down_per_client": float(down),
            "secagg_wall_s": time.perf_counter() - started, "protocol_sim_s": self._secagg_time(result),
        }

    def _secagg_time(self, result) -> float:
        """Simulated time the protocol adds to the round, on the slowest survivor's link: three
        round trips beyond the masked upload (advertise keys, share keys, unmasking) and the
        bytes beyond the masked vector, whose upload is already on the clock."""
        return max((self._transfer_s(client, rounds=3, up=result.cost.bytes_up[client] - self.upload_bytes,
                                     down=result.cost.bytes_down[client]) for client in result.survivors), default=0.0)

    def _decryption_time(self, clients: Sequence[int]) -> float:
        """CKKS: the encrypted sum goes to the key holder and the plain average comes back, one
        round trip, timed on the slowest link of the round (the key holder may be any client)."""
        return max((self._transfer_s(client, rounds=1, up=self.update_bytes, down=self.upload_bytes)
                    for client in clients), default=0.0)

    def _transfer_s(self, client: int, *, rounds: int, up: int, down: int) -> float:
        if self.link is None:
            return 0.0
        latency, up_bps, down_bps = self.link(client)
        return transfer_s(max(up, 0), up_bps, rounds * 2 * latency) + transfer_s(down, down_bps)

    def _update_noise(self) -> float:
        """With adaptive clipping part of the privacy budget goes to the noised count."""
        c = self.config
        if not c.adaptive_clipping:
            return c.noise_multiplier
        return adaptive_noise_multiplier(c.noise_multiplier, self.cohort / 20.0)

    def _account(self, clients: Sequence[int]) -> None:
        """Central: one sampled-Gaussian round at q; local: one release per client sending."""
        if self.config.dp == "central":
            self.epsilon = self.accountant.step(self.config.accounted_noise, self.sample_rate)
            return
        self.epsilon = self._epsilon_after(clients)
        for k in clients:
            self.participations[k] = self.participations.get(k, 0) + 1

    def _adapt(self, norms: list[float], round_number: int) -> None:
        fraction = noisy_unclipped_fraction(np.array(norms), self.clip.clip_norm, self.cohort,
                                            rng(self.seed, Stream.PRIVACY, round_number, 2**31))
        self.clip = adaptive_clip_update(self.clip, fraction)
