"""The simulated broker's packet and byte counts against a real MQTT broker on loopback.

Mosquitto (Debian ``mosquitto``) is started on a free 127.0.0.1 port for the test and stopped
after it; paho-mqtt clients talk to it through a small TCP relay that splits each direction of
each connection into MQTT packets (type = first byte >> 4; size = 1 + varint + remaining length)
and counts them. The test is skipped when mosquitto or paho-mqtt is missing or the broker does
not start.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from raysim.network.mqtt import Broker
from raysim.network.transport import Transport

mqtt = pytest.importorskip("paho.mqtt.client")
TYPES = {3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP"}
TOPIC, PAYLOAD, SUBSCRIBERS = "fl/model", 1000, 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def broker_port(tmp_path: Path):
    binary = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.skip("mosquitto did not start on loopback")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=5)


class CountingRelay:
    """Accepts clients on its own port, relays each to the broker, counts packets by type and
    direction (``in``: towards the broker, ``out``: from it)."""

    def __init__(self, broker_port: int):
        self.broker_port = broker_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.packets: Counter = Counter()
        self.bytes: Counter = Counter()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.broker_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, "in"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "out"), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        buffer = b""
        while True:
            try:
                chunk = source.recv(65536)
                if not chunk:
                    return
                sink.sendall(chunk)
            except OSError:
                return
            buffer += chunk
            while (size := packet_length(buffer)) is not None:
                kind = TYPES.get(buffer[0] >> 4)
                if kind:
                    with self.lock:
                        self.packets[kind] += 1
                        self.bytes[direction] += size
                buffer = buffer[size:]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def packet_length(buffer: bytes) -> int | None:
    """The whole length of the first MQTT packet in ``buffer``; None until all of it is there."""
    remaining, shift = 0, 0
    for i in range(1, min(len(buffer), 5)):
        remaining |= (buffer[i] & 0x7F) << shift
        shift += 7
        if not buffer[i] & 0x80:
            total = 1 + i + remaining
            return total if len(buffer) >= total else None
    return None


def connected_client(name: str, port: int) -> "mqtt.Client":
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    return client


def wait_for(condition, seconds: float = 5.0) -> bool:
    """Whether ``condition`` came true within ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_packet_and_byte_counts_match_a_real_broker(broker_port: int, qos: int) -> None:
    relay = CountingRelay(broker_port)
    clients, received = [], Counter()
    try:
        subscribed = Counter()
        for k in range(SUBSCRIBERS):
            client = connected_client(f"sub{k}", relay.port)
            client.on_subscribe = lambda c, u, mid, codes, props, k=k: subscribed.update([k])
            client.on_message = lambda c, u, msg, k=k: received.update([k])
            client.subscribe(TOPIC, qos=2)
            clients.append(client)
        publisher = connected_client("pub", relay.port)
        clients.append(publisher)
        assert wait_for(lambda: len(subscribed) == SUBSCRIBERS and publisher.is_connected()), "no SUBACKs"
        publisher.publish(TOPIC, b"x" * PAYLOAD, qos=qos).wait_for_publish(timeout=5)

        transport = Transport()
        simulated = Broker(transport, node=0)
        for k in range(SUBSCRIBERS):
            simulated.subscribe(k + 2, TOPIC, 2)
        simulated.publish(1, TOPIC, PAYLOAD, qos=qos, at=0.0)
        expected = Counter({kind: n for (_, kind, _), n in simulated.packets.items()})

        wait_for(lambda: len(received) == SUBSCRIBERS and relay.packets == expected)
        time.sleep(0.2)  # nothing more arrives
        assert len(received) == SUBSCRIBERS
        assert relay.packets == expected, (qos, relay.packets, expected)
        assert relay.bytes["in"] == transport.traffic[0].bytes_in
        assert relay.bytes["out"] == transport.traffic[0].bytes_out
    finally:
        for client in clients:  # disconnect first: it wakes the network loop, which then stops at once
            client.disconnect()
        for client in clients:
            client.loop_stop()
        relay.close()
