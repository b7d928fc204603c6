"""``[compression]``: which codec an update travels as, and its one parameter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from raysim.compression.channel import Channel
from raysim.compression.codec import Codec
from raysim.compression.quantizers import QSGD, BFloat16, Float32, Half, IntK, ScaledSign
from raysim.compression.sparsifiers import RandomK, SharedMask, TopK

CODECS: dict[str, type[Codec]] = {c.name: c for c in (Float32, Half, BFloat16, IntK, QSGD, TopK, RandomK, SharedMask,
                                                      ScaledSign)}
PARAMETER = {"int": "bits", "qsgd": "levels", "topk": "ratio", "randk": "ratio", "mask": "ratio"}
EXAMPLE = {"bits": "bits = 8", "levels": "levels = 16", "ratio": "ratio = 0.01"}
DOWNLINK = ("none", "fp16", "bf16")  # the model itself travels down: casts only (sparsified weights are no model)
MAX_LEVELS = 2 ** 16 - 1


@dataclass(frozen=True, kw_only=True)
class CompressionConfig:
    """``uplink``: none | fp32 | fp16 | bf16 | int (``bits``) | qsgd (``levels``) | topk, randk,
    mask (``ratio``) | sign; ``error_feedback`` keeps each client's residual; ``downlink``:
    none | fp16 | bf16. FedPAQ is FedAvg with ``uplink = "qsgd"``."""

    uplink: str = "none"
    downlink: str = "none"
    ratio: float | None = None  # share of each tensor's entries sent, in (0, 1]
    bits: int | None = None  # int: bits an entry, 1..16
    levels: int | None = None  # qsgd: s, 1..65535 (1 + ceil(log2(s + 1)) bits an entry)
    error_feedback: bool = False

    def __post_init__(self) -> None:
        if self.uplink not in CODECS and self.uplink != "none":
            raise ValueError(f"uplink = {self.uplink!r} is unknown; choose one of {['none', *CODECS]}")
        if self.downlink not in DOWNLINK:
            raise ValueError(f"downlink = {self.downlink!r}: the model travels down whole, so only the casts "
                             f"{list(DOWNLINK)} apply")
        needed = PARAMETER.get(self.uplink)
        for name in EXAMPLE:
            given = getattr(self, name) is not None
            if name == needed and not given:
                raise ValueError(f"uplink = {self.uplink!r} needs {name} (e.g. {EXAMPLE[name]})")
            if name != needed and given:
                raise ValueError(f"{name} is a parameter of uplink = {[c for c, p in PARAMETER.items() if p == name]}, "
                                 f"not of {self.uplink!r}: remove it")
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1] (the share of entries kept), got {self.ratio}")
        if self.bits is not None and not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be in 1..16, got {self.bits}")
        if self.levels is not None and not 1 <= self.levels <= MAX_LEVELS:
            raise ValueError(f"levels must be in 1..{MAX_LEVELS}, got {self.levels}")
        if self.error_feedback and self.uplink in ("none", "fp32"):
            raise ValueError(f"error_feedback needs a lossy uplink codec (uplink = {self.uplink!r} loses nothing)")
        if self.error_feedback and CODECS[self.uplink].unbiased:
            raise ValueError(f"error_feedback corrects biased codecs (topk, sign, int, fp16, bf16); uplink = "
                             f"{self.uplink!r} is unbiased with a variance above ||v||^2, so its memory would grow "
                             "without bound: set error_feedback = false or use a biased codec")

    @property
    def active(self) -> bool:
        return self.uplink != "none" or self.downlink != "none"

    def channel(self, sizes: Sequence[int]) -> Channel | None:
        """The run's channel for a model whose tensors have these sizes; None when nothing is compressed."""
        if not self.active:
            return None
        parameter = PARAMETER.get(self.uplink)
        options = {parameter: getattr(self, parameter)} if parameter else {}
        uplink = CODECS[self.uplink](sizes, **options) if self.uplink != "none" else None
        downlink = CODECS[self.downlink](sizes) if self.downlink != "none" else None
        return Channel(uplink=uplink, downlink=downlink, error_feedback=self.error_feedback)
