"""The links a run's transfers are timed on: the clients' own (their device profiles), the
symmetric NICs of shared nodes (a broker, an edge aggregator), and :class:`NetworkLinks`, which
times a star run's tasks through the ``broker`` or ``ledger`` topology (``star`` has no object
here: its timing stays ``Population.timing``, so star runs are unchanged).

:class:`NetworkLinks` times each task's download and upload through the phase-1 transport
(``network/transport.py``): the server is a node of infinite bandwidth and no latency, so a plain
transfer costs what ``Population.timing`` charges; with a broker every model goes server ->
broker -> client on the client's own topic ``fl/down/<id>`` and every update client -> broker ->
server on ``fl/up/<id>`` (FedML's MQTT topics, one per client), through the broker's NIC queue
and per-message CPU (``network/mqtt.py``), so the broker link is the bottleneck once enough
clients share it, and QoS multiplies the packets. It counts messages and bytes per node for
``network.parquet``. A task's upload is booked when the task is planned (its fate is decided
from this timing), so a task that later drops out or goes offline still holds its upload's place
on the broker and in the counts; with the default always-on devices and no dropout every booked
upload is sent. It evolves with the run and is checkpointed with the driver.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from raysim.network.config import NetworkConfig
from raysim.network.mqtt import Broker
from raysim.network.transport import Link, Transport, mbps_to_bps
from raysim.sim.cost.devices import Population, TaskTiming

SERVER, BROKER = -1, -2  # node ids; clients are 0..n-1
ROLES = {SERVER: "server", BROKER: "broker"}


def client_links(population: Population, clients: Iterable[int]) -> dict[int, Link]:
    """Each client's access link, from its device profile."""
    return {client: Link(*population.link(client)) for client in clients}


def shared_link(mbps: float, latency_s: float = 0.0) -> Link:
    """A shared node's NIC: ``mbps`` each way (a broker's ``broker_mbps``, an edge's ``edge_mbps``)."""
    bps = mbps_to_bps(mbps)
    return Link(latency_s, bps, bps)


class NetworkLinks:
    """Times transfers through the topology's nodes and counts their traffic (module docstring)."""

    def __init__(self, config: NetworkConfig, population: Population):
        self.population = population
        self.qos = config.qos
        links = {SERVER: Link()}
        if config.topology == "broker":
            links[BROKER] = shared_link(config.broker_mbps, config.broker_latency_s)
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
            self.transport.links.update(client_links(self.population, [client]))
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
