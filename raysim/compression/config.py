"""``[compression]``: which codec an update travels as, and its one parameter."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from raysim.compression.channel import Channel
from raysim.compression.codec import Codec
from raysim.compression.quantizers import QSGD, BFloat16, Float32, Half, IntK, ScaledSign
from raysim.compression.sparsifiers import RandomK, SharedMask, TopK
from raysim.inputs import ConfigError

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
    none | fp16 | bf16. FedPAQ is FedAvg with ``uplink = "qsgd"``. ``error_feedback`` with an
    unbiased codec (qsgd, randk, mask) is checked against the model's layout when the channel is
    built (``check_contractive``)."""

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
        if self.error_feedback:
            check_contractive(uplink)
        downlink = CODECS[self.downlink](sizes) if self.downlink != "none" else None
        return Channel(uplink=uplink, downlink=downlink, error_feedback=self.error_feedback)


def check_contractive(codec: Codec) -> None:
    """Error feedback keeps e = p - C(p), so E||e||^2 = E||C(p) - p||^2: its guarantees (Stich
    et al. 2018, arXiv:1809.07599; Karimireddy et al. 2019, arXiv:1901.09847) assume a
    contractive codec, E||C(p) - p||^2 <= (1 - delta) ||p||^2 (top-k and the scaled sign are;
    the casts lose at most 2^-8 of each entry; int-k at most half a step). An unbiased codec
    with variance factor omega (``Codec.variance_bound``) is contractive only when omega < 1:
    random-k and the mask keeping more than half of each tensor, QSGD with s^2 > d. Otherwise
    each send can multiply the memory's expected square by omega, and it can grow without bound
    (random-k at 10%: a sent entry's memory becomes -9 times its value), so the pairing is
    refused, once the model's layout is known; being unbiased is no reason in itself."""
    omega = codec.variance_bound()
    if omega is None or omega < 1:
        return
    name = f"compression.uplink = {codec.name!r}"
    fix = (f"set compression.levels >= {math.isqrt(max(codec.sizes)) + 1} (levels^2 above the largest tensor's "
           f"{max(codec.sizes)} entries)" if codec.name == "qsgd" else "set compression.ratio above 0.5")
    raise ConfigError(f"compression.error_feedback with {name}: error feedback needs E||C(v) - v||^2 < ||v||^2, "
                      f"and this unbiased codec's bound on this model is {omega:.3g} ||v||^2, so its memory can "
                      f"grow each round; {fix}, or set compression.error_feedback = false (an unbiased codec "
                      "converges without it)")
