"""The run's ledger on the simulated clock, for ``network.topology = "ledger"``: :class:`Chain`
appends a block for every aggregation (``network/ledger.py``): the applied updates' digests, their
Merkle root and the previous hash; proof of work adds the race's block time to the round (a seeded
exponential race, never a nonce search). A race that forks (a rival found within the propagation
delay) orphans its block: the height is raced again until a race ends without a rival, and the
round waits for all of them (``fork_s`` of its ``block_s``, ``orphaned`` blocks). The ledger's
transfers are timed by ``cost/links.py``; the chain evolves with the run and is checkpointed with
the driver.
"""

from __future__ import annotations

import numpy as np

from raysim.network.config import NetworkConfig
from raysim.network.ledger import Block, append_block, chain_to_json, committee, pow_race, update_digest


class Chain:
    """The run's ledger (module docstring). PoW races are drawn one at a time as heights call
    for them (race k is the same however they are drawn, ``ledger.pow_race``): ``raced`` counts
    them, and ``race_clock`` is when the next may start (the last one's find, propagated), on
    the races' own clock from 0."""

    def __init__(self, config: NetworkConfig, *, seed: int, num_clients: int):
        self.config, self.seed, self.num_clients = config, seed, num_clients
        self.blocks: list[Block] = []
        self.raced, self.race_clock = 0, 0.0

    def members(self, round_number: int) -> np.ndarray:
        """This round's validation committee (consensus = 'committee')."""
        return committee(self.num_clients, self.config.committee_size, round_number, self.seed)

    def append(self, updates: list[np.ndarray], now: float) -> tuple[float, dict]:
        """Commits ``updates``; returns the simulated seconds the block takes and the round's
        ledger columns."""
        height = len(self.blocks)
        orphaned, fork_s = 0, 0.0
        if self.config.consensus == "pow":
            delay, producer, orphaned, fork_s = self._race_height()
        else:  # the committee's first member writes the block once the scores are in
            delay, producer = 0.0, int(self.members(height + 1)[0])
        self.blocks = append_block(self.blocks, [update_digest(u) for u in updates], now + delay, producer)
        return delay, {"block": height, "block_s": delay, "forked": orphaned > 0, "orphaned": orphaned,
                       "fork_s": fork_s, "block_hash": self.blocks[-1].hash}

    def _race_height(self) -> tuple[float, int, int, float]:
        """(seconds until the height is settled, its producer, blocks orphaned, seconds the forks
        took): races run until one ends with no rival; each race takes its find time plus the
        propagation that lets the next race start."""
        began, orphaned, fork_end = self.race_clock, 0, self.race_clock
        while True:
            race = pow_race(self.config.miner_rates(), self.config.propagation_s, 1, self.seed,
                            start=self.race_clock, first=self.raced)
            self.raced += 1
            self.race_clock = float(race.found[0]) + self.config.propagation_s
            if not race.forked[0]:
                return self.race_clock - began, int(race.winner[0]), orphaned, fork_end - began
            orphaned, fork_end = orphaned + 1, self.race_clock

    def to_json(self) -> str:
        return chain_to_json(self.blocks)
