"""The simulated link's codecs, built once per run: the client's update on the way up (with
its error-feedback memory), the model on the way down."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysim.compression import feedback
from raysim.compression.codec import Codec
from raysim.compression.wire import pack, unpack


@dataclass(frozen=True)
class Upload:
    """One client's update as the server gets it: decoded from the framed bytes that travelled."""

    delta: np.ndarray
    memory: np.ndarray | None  # the client's error-feedback memory after sending (None without)
    wire_bytes: int  # the framed message's size (checked; the tables count the payload, codec.py)


@dataclass(frozen=True)
class Channel:
    """``uplink`` encodes every update; with ``error_feedback`` each client carries a memory.
    ``downlink`` (a cast, or None) is what the model reaches the clients as."""

    uplink: Codec | None
    downlink: Codec | None
    error_feedback: bool

    def upload(self, delta: np.ndarray, memory: np.ndarray | None, rng: np.random.Generator) -> Upload:
        """Encodes, frames and decodes one update with the uplink codec (a client's memory None:
        it never sent)."""
        if self.error_feedback and memory is None:
            memory = np.zeros(np.size(delta))
        fields, memory = feedback.encode(self.uplink, delta, memory if self.error_feedback else None, rng)
        wire = pack(fields)
        if len(wire) != self.uplink.wire_bytes:  # the layout fixes it: else the charged payload is wrong too
            raise RuntimeError(f"codec {self.uplink.name} sent {len(wire)} bytes, not the {self.uplink.wire_bytes} "
                               "its layout fixes")
        return Upload(delta=self.uplink.decode(unpack(wire)), memory=memory, wire_bytes=len(wire))

    def broadcast(self, params: np.ndarray) -> np.ndarray:
        """The model as the clients receive it (float32): cast by the downlink codec, if any."""
        if self.downlink is None:
            return params
        return self.downlink.decode(unpack(pack(self.downlink.encode(params, np.random.default_rng(0))))).astype(np.float32)
