"""The compression stage: each update as the server decodes it from the codec's bytes, and how
many times fewer bytes went up than dense updates would have taken.

The client's error-feedback memory moves on with each upload; it lives in the per-client state
(client_state.py), by client id, so it does not depend on which worker trained the client,
survives lost workers and is checkpointed with the run. The broadcast's encoding (a quantised
downlink) is the kernel's, at submission (``Channel.broadcast``)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from raysim.compression.channel import Channel
from raysim.seeding import Stream, rng
from raysim.sim.stages.stage import Stage, StageContext


class CompressionStage(Stage):
    key = "compression"

    def __init__(self, channel: Channel, *, exchange_bytes: int):
        self.channel, self.exchange_bytes = channel, exchange_bytes

    def inbound(self, task: Any, delta: np.ndarray, context: StageContext) -> np.ndarray:
        client = task.info.client_id
        sent = self.channel.upload(delta, context.clients.feedback(client),
                                   rng(context.seed, Stream.COMPRESSION, task.seed_key, client))
        if sent.memory is not None:
            context.clients.keep_feedback(client, sent.memory)
        return sent.delta

    def round_columns(self, client_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Both counted as payload (compression/codec.py): fp32 gives exactly 1.0."""
        sent = sum(r["bytes_up"] for r in client_rows)
        dense = self.exchange_bytes * sum(r["bytes_up"] > 0 for r in client_rows)
        return {"compression_ratio": dense / sent if sent else float("nan")}
