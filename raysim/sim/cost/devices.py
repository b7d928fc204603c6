"""Simulated client devices: speed, bandwidth, latency, availability and dropout.

Durations follow FedScale's cost model (Lai et al. 2022, arXiv:2105.11367): a task takes
download(model bytes) + compute(samples x epochs x seconds per sample) + upload(update bytes),
each transfer paying the link latency once (``transfer_s`` of ``network/transport.py``, the one
transfer-time formula). Nothing here reads a clock: a slow laptop and a fast cluster simulate
the same timeline. Profiles come either from distributions named in the
scenario's ``[system]`` section, seeded per client, or from a CSV trace with one row per client.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from raysim.inputs import FLOAT_LIMIT, is_file
from raysim.network.limits import check_latency, check_mbps
from raysim.network.transport import mbps_to_bps, transfer_s
from raysim.seeding import Stream, rng

_AVAILABILITY_CHUNK = 64

# How slow a device may be and how long it stays on or off. Beyond them simulated times become
# astronomic (1e12 s per sample times a slow factor of 1e12 gave a run 2e26 simulated seconds)
# or infinite (a lognormal of sigma 1e12 overflows, and the run stopped with a traceback).
MAX_SECONDS_PER_SAMPLE = 60.0  # a minute per example, before the lognormal draw and slow factor
MAX_SLOW_FACTOR = 1000.0
MAX_SPEED_SIGMA = 3.0  # a 5-sigma device is exp(15) = 3e6 times slower than the median
ON_OFF_RANGE_S = (1.0, 1e6)  # mean online / offline periods: a second to 11.6 days


@dataclass(frozen=True, kw_only=True)
class SystemConfig:
    """The ``[system]`` section: how simulated devices differ.

    Defaults describe a homogeneous, always-online population with no dropout. Bandwidths and
    latencies, here and in a trace, are held to the ranges of ``network/limits.py``; speeds and
    on/off periods to those above.
    """

    seconds_per_sample: float = 0.001
    speed_distribution: Literal["constant", "lognormal"] = "constant"
    speed_sigma: float = 0.5
    slow_fraction: float = 0.0
    slow_factor: float = 10.0
    downlink_mbps: float = 50.0
    uplink_mbps: float = 10.0
    latency_s: float = 0.05
    dropout: float = 0.0
    availability: Literal["always", "intermittent"] = "always"
    mean_online_s: float = 3600.0
    mean_offline_s: float = 600.0
    trace: str = ""

    def __post_init__(self) -> None:
        _within("seconds_per_sample", self.seconds_per_sample, 0.0, MAX_SECONDS_PER_SAMPLE, above=True)
        for name in ("mean_online_s", "mean_offline_s"):
            _within(name, getattr(self, name), *ON_OFF_RANGE_S)
        check_mbps("downlink_mbps", self.downlink_mbps)
        check_mbps("uplink_mbps", self.uplink_mbps)
        check_latency("latency_s", self.latency_s)
        _within("speed_sigma", self.speed_sigma, 0.0, MAX_SPEED_SIGMA)
        for name in ("slow_fraction", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        _within("slow_factor", self.slow_factor, 1.0, MAX_SLOW_FACTOR)
        if self.trace and not is_file("trace", self.trace):
            raise ValueError(f"trace = '{self.trace}' does not exist; give a CSV path or leave it empty")


def _within(name: str, value: float, low: float, high: float, *, above: bool = False) -> None:
    """``low <= value <= high`` (``low < value`` with ``above``), else ValueError naming both ends."""
    if value < low or (above and value == low) or value > high:
        raise ValueError(f"{name} must be {'>' if above else '>='} {low:g} and <= {high:g}, got {value:g}")


@dataclass(frozen=True)
class Availability:
    """On/off periods of one device: ``on`` intervals [start, end), generated lazily when random."""

    intervals: tuple[tuple[float, float], ...] = ((0.0, math.inf),)

    def online_at(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.intervals)

    def online_until(self, t: float) -> float:
        """End of the on-interval containing ``t`` (``t`` itself when offline)."""
        for a, b in self.intervals:
            if a <= t < b:
                return b
        return t


@dataclass(frozen=True)
class DeviceProfile:
    seconds_per_sample: float
    downlink_bps: float
    uplink_bps: float
    latency_s: float
    dropout: float
    availability: Availability = field(default_factory=Availability)


@dataclass(frozen=True)
class TaskTiming:
    """The simulated schedule of one client task, computed before any training."""

    start: float
    download_s: float
    compute_s: float
    upload_s: float

    @property
    def end(self) -> float:
        return self.start + self.download_s + self.compute_s + self.upload_s


class Population:
    """Device profiles of all clients, derived lazily and deterministically from the seed.

    Lazy, because a population of 100,000 clients needs profiles only for the few thousand
    that are ever selected; each profile depends on (seed, client id) alone.
    """

    def __init__(self, config: SystemConfig, num_clients: int, seed: int):
        self.config = config
        self.num_clients = num_clients
        self.seed = seed
        self._cache: dict[int, DeviceProfile] = {}
        self._trace = _read_trace(Path(config.trace), num_clients) if config.trace else None

    def profile(self, client_id: int) -> DeviceProfile:
        if client_id not in self._cache:
            if self._trace is not None:
                self._cache[client_id] = self._trace[client_id]
            else:
                self._cache[client_id] = self._draw(client_id)
        return self._cache[client_id]

    def link(self, client_id: int) -> tuple[float, float, float]:
        """(latency s, uplink bit/s, downlink bit/s) of a client's device."""
        p = self.profile(client_id)
        return p.latency_s, p.uplink_bps, p.downlink_bps

    def timing(self, client_id: int, *, start: float, samples: int, epochs: float, model_bytes: int, update_bytes: int) -> TaskTiming:
        p = self.profile(client_id)
        return TaskTiming(
            start=start,
            download_s=transfer_s(model_bytes, p.downlink_bps, p.latency_s),
            compute_s=samples * epochs * p.seconds_per_sample,
            upload_s=transfer_s(update_bytes, p.uplink_bps, p.latency_s),
        )

    def dropout_time(self, client_id: int, task_number: int, timing: TaskTiming) -> float | None:
        """When the device drops out during this task, or None; keyed by a task counter."""
        p = self.profile(client_id)
        if p.dropout == 0:
            return None
        draw = rng(self.seed, Stream.DROPOUT, client_id, task_number)
        if draw.random() >= p.dropout:
            return None
        return timing.start + draw.random() * (timing.end - timing.start)

    def _draw(self, client_id: int) -> DeviceProfile:
        c = self.config
        draw = rng(self.seed, Stream.SYSTEM_PROFILE, client_id)
        speed = c.seconds_per_sample
        if c.speed_distribution == "lognormal":
            speed *= float(draw.lognormal(0.0, c.speed_sigma))
        if draw.random() < c.slow_fraction:
            speed *= c.slow_factor
        availability = Availability()
        if c.availability == "intermittent":
            availability = _intermittent(draw, c.mean_online_s, c.mean_offline_s)
        return DeviceProfile(
            seconds_per_sample=speed,
            downlink_bps=mbps_to_bps(c.downlink_mbps),
            uplink_bps=mbps_to_bps(c.uplink_mbps),
            latency_s=c.latency_s,
            dropout=c.dropout,
            availability=availability,
        )


def _intermittent(draw: np.random.Generator, mean_on: float, mean_off: float) -> Availability:
    """Alternating exponential on/off periods; a device starts online with probability
    mean_on / (mean_on + mean_off), its stationary share of online time."""
    t = 0.0 if draw.random() < mean_on / (mean_on + mean_off) else float(draw.exponential(mean_off))
    intervals = []
    for _ in range(_AVAILABILITY_CHUNK):
        on = float(draw.exponential(mean_on))
        intervals.append((t, t + on))
        t += on + float(draw.exponential(mean_off))
    intervals.append((t, math.inf))  # beyond the generated horizon the device stays online
    return Availability(tuple(intervals))


_TRACE_COLUMNS = ("client_id", "seconds_per_sample", "downlink_mbps", "uplink_mbps", "latency_s")

# Each numeric column's lowest allowed value and whether it is included: a zero bandwidth divides
# by zero mid-run, a negative speed or latency runs the simulated clock backwards. Bandwidths and
# latencies are then held to the ranges every link has (network/limits.py), speeds to [system]'s.
_TRACE_RANGES = {"seconds_per_sample": (0.0, True), "downlink_mbps": (0.0, False), "uplink_mbps": (0.0, False),
                 "latency_s": (0.0, True), "dropout": (0.0, True)}
_TRACE_BOUNDS = {"downlink_mbps": check_mbps, "uplink_mbps": check_mbps, "latency_s": check_latency,
                "seconds_per_sample": lambda name, value: _within(name, value, 0.0, MAX_SECONDS_PER_SAMPLE)}


def _read_trace(path: Path, num_clients: int) -> dict[int, DeviceProfile]:
    """Reads a device trace: one row per client, ``availability`` as ``start-end;start-end``.

    Every value is checked here, so a bad row stops the scenario at load with its line and
    column named instead of surfacing as a division by zero or a backwards clock mid-run.
    """
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError as exc:
        raise ValueError(f"system.trace '{path}' is not a UTF-8 CSV file ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise ValueError(f"system.trace '{path}' is not a CSV file ({exc})") from None
    if not rows or any(col not in rows[0] for col in _TRACE_COLUMNS):
        raise ValueError(f"system.trace '{path}' needs columns {list(_TRACE_COLUMNS)} (+ optional dropout, availability)")
    profiles = {}
    for line, row in enumerate(rows, start=2):
        try:
            values = {name: _trace_number(row, name) for name in _TRACE_RANGES}
            cid = _trace_client_id(row["client_id"], profiles)
            if values["dropout"] >= 1:
                raise ValueError(f"column dropout must be < 1, got {values['dropout']}")
            profiles[cid] = DeviceProfile(
                seconds_per_sample=values["seconds_per_sample"],
                downlink_bps=mbps_to_bps(values["downlink_mbps"]),
                uplink_bps=mbps_to_bps(values["uplink_mbps"]),
                latency_s=values["latency_s"],
                dropout=values["dropout"],
                availability=_parse_intervals(row.get("availability") or ""),
            )
        except ValueError as exc:
            raise ValueError(f"system.trace '{path}' line {line}: {exc}") from exc
    missing = sorted(set(range(num_clients)) - set(profiles))
    if missing:
        raise ValueError(f"system.trace '{path}' has no row for clients {missing[:5]}{'...' if len(missing) > 5 else ''}")
    return profiles


def _trace_client_id(raw: str | None, seen: dict[int, DeviceProfile]) -> int:
    if not (raw or "").strip().isdigit():
        raise ValueError("column client_id must be an integer >= 0")  # the cell is not quoted: the file may be anyone's
    if int(raw) in seen:
        raise ValueError(f"column client_id: {int(raw)} is a duplicate; give each client one row")
    return int(raw)


def _trace_number(row: dict, name: str) -> float:
    """One numeric cell, finite and in range; an absent or empty optional dropout is 0."""
    raw = row.get(name) or ("0" if name == "dropout" else "")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"column {name} is not a number") from None
    low, inclusive = _TRACE_RANGES[name]
    if not math.isfinite(value) or value < low or (value == low and not inclusive) or value > FLOAT_LIMIT:
        raise ValueError(f"column {name} must be a finite number {'>=' if inclusive else '>'} {low:g} "
                         f"(and <= {FLOAT_LIMIT:g})")
    if name in _TRACE_BOUNDS:
        _TRACE_BOUNDS[name](f"column {name}", value)
    return value


def _parse_intervals(text: str) -> Availability:
    if not text.strip():
        return Availability()
    intervals = []
    for number, part in enumerate(text.split(";"), start=1):
        start, _, end = part.partition("-")
        try:
            a, b = float(start), (math.inf if end.strip() in ("", "inf") else float(end))
        except ValueError:  # float's message would quote the cell, and the file may be anyone's
            a = b = math.nan
        if not 0 <= a < b:  # also refuses NaN, which compares false
            raise ValueError(f"column availability: interval {number} must be start-end with 0 <= start < end")
        intervals.append((a, b))
    return Availability(tuple(sorted(intervals)))
