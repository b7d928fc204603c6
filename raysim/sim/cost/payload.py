"""What one task moves over the simulated network: the model down and the update up, as payload
bytes (unframed, as the dense model is counted: compression/codec.py)."""

from __future__ import annotations

from dataclasses import dataclass

from raysim.compression.channel import Channel
from raysim.privacy.stage import PrivacyStage


@dataclass(frozen=True)
class Traffic:
    download_bytes: int
    upload_bytes: int


def payload(exchange_bytes: int, channel: Channel | None, privacy: PrivacyStage | None) -> Traffic:
    """A model of ``exchange_bytes`` (the body only, with personal heads) as it travels: the
    update goes up encoded (compression), masked or encrypted (privacy) or plain; the model
    comes down cast by the downlink codec, or plain."""
    uplink = channel.uplink if channel else None
    downlink = channel.downlink if channel else None
    return Traffic(download_bytes=downlink.payload_bytes if downlink else exchange_bytes,
                   upload_bytes=(uplink.payload_bytes if uplink else
                                 privacy.upload_bytes if privacy else exchange_bytes))
