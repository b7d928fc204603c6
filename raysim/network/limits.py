"""The ranges of link and network keys a scenario may give, checked at load.

Outside them a run would still start but mean nothing or never end: a link of 1e-300 Mbit/s
makes every transfer last about 1e299 simulated seconds; ``miners = 1e9`` draws a billion
exponential times per block (gigabytes, in one uninterruptible numpy call); an Erdos-Renyi
graph far below its connectivity threshold is redrawn ``MAX_REDRAWS`` times and then fails
mid-run. The bandwidth and latency ranges apply to devices (``[system]``, its trace CSV) and to
the network's shared nodes (``[network]``) alike.
"""

from __future__ import annotations

import math

MBPS_RANGE = (1e-6, 1e6)  # Mbit/s: 1 bit/s (a 1 GB model then takes 250 simulated years) to 1 Tbit/s
MAX_LATENCY_S = 3600.0  # seconds a message may wait on a link or a node: one hour
MAX_MINERS = 1000  # proof-of-work miners; each block draws one time per miner
MAX_BLOCK_INTERVAL_S = 86400.0  # the mean time between proof-of-work blocks: at most a day
# Gossip nodes: the mixing matrix is dense n x n and its norm costs n^3 (2048 nodes: 32 MB and
# about 20 s on 2 cores; 10^5 nodes would ask for 80 GB)
MAX_GOSSIP_NODES = 2048
MAX_REDRAWS = 1000  # seeded draws of an Erdos-Renyi graph until one is connected (graphs.py)
# A G(n, p) must be connected with at least this chance per draw, so that all MAX_REDRAWS draws
# fail with a chance below one in a million: 1 - (1 - c)^1000 >= 1 - 1e-6.
MIN_CONNECTED_CHANCE = 1.0 - 1e-6 ** (1.0 / MAX_REDRAWS)
_EXACT_NODES = 300  # above this, the connection chance is Erdos and Renyi's limit (exact enough)


def check_mbps(name: str, value: float) -> None:
    """A bandwidth in Mbit/s within :data:`MBPS_RANGE`; ValueError naming ``name`` otherwise."""
    low, high = MBPS_RANGE
    if not (_number(value) and low <= value <= high):
        raise ValueError(f"{name} must be > 0 and within [{low:g}, {high:g}] Mbit/s (1 bit/s to 1 Tbit/s), "
                         f"got {value!r}")


def check_latency(name: str, value: float) -> None:
    """A latency (or per-message delay) in seconds within [0, :data:`MAX_LATENCY_S`]."""
    if not (_number(value) and 0 <= value <= MAX_LATENCY_S):
        raise ValueError(f"{name} must be >= 0 and at most {MAX_LATENCY_S:g} seconds (an hour), got {value!r}")


def connected_chance(n: int, p: float) -> float:
    """The chance that G(n, p) is connected.

    Exact for n <= 300, by the recursion on the component holding node 0 (Gilbert 1959):
    ``P(m) = 1 - sum_{k<m} C(m-1, k-1) P(k) q^(k (m-k))`` with q = 1 - p; above, Erdos and
    Renyi's limit ``exp(-n q^(n-1))`` (no isolated node, the last obstacle to connection)."""
    log_q = math.log1p(-p) if p < 1 else -math.inf
    if n > _EXACT_NODES:
        return math.exp(-n * math.exp((n - 1) * log_q))
    chance = [0.0, 1.0]  # chance[m] for m nodes
    for m in range(2, n + 1):
        apart = sum(math.exp(math.lgamma(m) - math.lgamma(k) - math.lgamma(m - k + 1) + k * (m - k) * log_q)
                    * chance[k] for k in range(1, m))
        chance.append(max(0.0, 1.0 - apart))
    return chance[n]


def check_connectable(n: int, p: float) -> None:
    """Refuses an Erdos-Renyi ``edge_probability`` whose seeded redraws would all be
    disconnected (a chance above one in a million), naming the threshold to raise it to."""
    chance = connected_chance(n, p)
    if chance < MIN_CONNECTED_CHANCE:
        raise ValueError(f"edge_probability = {p:g} leaves G({n}, p) connected with chance {chance:.2g} per draw, "
                         f"so {MAX_REDRAWS} seeded draws would find no connected graph: raise it (connected "
                         f"w.h.p. above ln(n)/n = {math.log(n) / n:.3g}) or use another graph")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
