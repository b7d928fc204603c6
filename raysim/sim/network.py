"""The run's network on the simulated clock, for the topologies the event-driven driver runs with a
server: ``broker`` and ``ledger`` (``star`` has no object here: its timing stays
``Population.timing``, so star runs are unchanged).

* :class:`NetworkLinks` times each task's download and upload through the phase-1 transport
  (``network/transport.py``): the server is a node of infinite bandwidth and no latency, so a
  plain transfer costs what ``Population.timing`` charges; with a broker every model goes
  server -> broker -> client on the client's own topic ``fl/down/<id>`` and every update
  client -> broker -> server on ``fl/up/<id>`` (FedML's MQTT topics, one per client), through
  the broker's NIC queue and per-message CPU (``network/mqtt.py``), so the broker link is the
  bottleneck once enough clients share it, and QoS multiplies the packets. It counts messages
  and bytes per node for ``network.parquet``. A task's upload is booked when the task is planned
  (its fate is decided from this timing), so a task that later drops out or goes offline still
  holds its upload's place on the broker and in the counts; with the default always-on devices
  and no dropout every booked upload is sent.
* :class:`Chain` appends a block for every aggregation (``network/ledger.py``): the applied
  updates' digests, their Merkle root and the previous hash; proof of work adds the race's block
  time to the round (a seeded exponential race, never a nonce search). A race that forks (a
  rival found within the propagation delay) orphans its block: the height is raced again until
  a race ends without a rival, and the round waits for all of them (``fork_s`` of its
  ``block_s``, ``orphaned`` blocks).

Both evolve with the run and are checkpointed with the driver.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from raysim.network.config import NetworkConfig
from raysim.network.ledger import Block, append_block, chain_to_json, committee, pow_race, update_digest
from raysim.network.mqtt import Broker
from raysim.network.transport import Link, Transport
from raysim.sim.system import Population, TaskTiming

SERVER, BROKER = -1, -2  # node ids; clients are 0..n-1
ROLES = {SERVER: "server", BROKER: "broker"}


class NetworkLinks:
    """Times transfers through the topology's nodes and counts their traffic (module docstring)."""

    def __init__(self, config: NetworkConfig, population: Population):
        self.population = population
        self.qos = config.qos
        links = {SERVER: Link()}
        if config.topology == "broker":
            bps = config.broker_mbps * 1e6
            links[BROKER] = Link(config.broker_latency_s, bps, bps)
        self.transport = Transport(links, shared=(BROKER,) if config.topology == "broker" else (),
                                   log=config.log_messages)
        self.broker = None
        if config.topology == "broker":
            self.broker = Broker(self.transport, BROKER, overhead_s=config.broker_overhead_s)
            self.broker.subscribe(SERVER, "fl/up/+", config.qos)
        self._logged = 0

    def timing(self, client: int, timing: TaskTiming, *, model_bytes: int, update_bytes: int,
               download: bool) -> TaskTiming:
        """``timing`` with its download (when there is one) and upload sent through the network."""
        if client not in self.transport.links:
            latency, up, down = self.population.link(client)
            self.transport.links[client] = Link(latency, up, down)
            if self.broker is not None:
                self.broker.subscribe(client, f"fl/down/{client}", self.qos)
        download_s = self._send(SERVER, client, f"fl/down/{client}", model_bytes, timing.start) if download else 0.0
        up_at = timing.start + download_s + timing.compute_s
        return replace(timing, download_s=download_s,
                       upload_s=self._send(client, SERVER, f"fl/up/{client}", update_bytes, up_at))

    def _send(self, source: int, destination: int, topic: str, nbytes: int, at: float) -> float:
        """Seconds until ``destination`` holds the payload: the PUBLISH's arrival via the broker,
        or a plain message's."""
        if self.broker is None:
            return self.transport.send(source, destination, nbytes, at, "model").arrival - at
        delivery, = self.broker.publish(source, topic, nbytes, self.qos, at)
        return delivery.message.arrival - at

    def totals(self) -> tuple[int, int]:
        """(messages, bytes) sent so far over the whole network."""
        traffic = self.transport.traffic.values()
        return sum(t.messages_out for t in traffic), sum(t.bytes_out for t in traffic)

    def node_rows(self) -> list[dict]:
        return [{"role": ROLES.get(r["node"], "client"), **r} for r in self.transport.node_rows()]

    def new_messages(self, round_number: int) -> list[dict]:
        """The messages logged since the last call, tagged with the round they close
        (empty unless ``network.log_messages``)."""
        if self.transport.log is None:
            return []
        rows = [{"round": round_number, **m} for m in self.transport.rows()[self._logged:]]
        self._logged = len(self.transport.log)
        return rows


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
