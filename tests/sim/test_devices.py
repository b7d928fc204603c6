"""Simulated devices: the cost model, profiles from distributions and traces, availability."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysim.sim.cost.devices import Population, SystemConfig


def test_task_duration_is_download_plus_compute_plus_upload():
    config = SystemConfig(seconds_per_sample=0.01, downlink_mbps=8.0, uplink_mbps=2.0, latency_s=0.5)
    timing = Population(config, 3, seed=0).timing(1, start=10.0, samples=100, epochs=2,
                                                  model_bytes=1_000_000, update_bytes=500_000)
    # download 0.5 + 8e6/8e6 = 1.5; compute 100 * 2 * 0.01 = 2; upload 0.5 + 4e6/2e6 = 2.5
    assert (timing.download_s, timing.compute_s, timing.upload_s) == pytest.approx((1.5, 2.0, 2.5))
    assert timing.end == pytest.approx(16.0)


def test_slow_fraction_and_factor_shape_the_population():
    config = SystemConfig(seconds_per_sample=0.001, slow_fraction=0.3, slow_factor=10.0)
    speeds = np.array([Population(config, 2000, seed=1).profile(c).seconds_per_sample for c in range(2000)])
    assert set(np.round(speeds, 6)) == {0.001, 0.01}
    assert (speeds > 0.001).mean() == pytest.approx(0.3, abs=0.03)


def test_profiles_depend_only_on_seed_and_client():
    config = SystemConfig(speed_distribution="lognormal", availability="intermittent", dropout=0.2)
    a, b = Population(config, 100, seed=5), Population(config, 100, seed=5)
    b.profile(99)  # touching other clients first changes nothing
    assert a.profile(7) == b.profile(7)
    assert a.profile(7) != Population(config, 100, seed=6).profile(7)


def test_dropout_is_drawn_per_task_and_lands_inside_it():
    population = Population(SystemConfig(dropout=0.5), 10, seed=0)
    timing = population.timing(3, start=5.0, samples=10, epochs=1, model_bytes=4, update_bytes=4)
    outcomes = [population.dropout_time(3, task, timing) for task in range(400)]
    dropped = [t for t in outcomes if t is not None]
    assert 0.4 < len(dropped) / 400 < 0.6
    assert all(timing.start <= t <= timing.end for t in dropped)
    assert outcomes == [population.dropout_time(3, task, timing) for task in range(400)]


def test_intermittent_availability_alternates_on_and_off():
    config = SystemConfig(availability="intermittent", mean_online_s=100.0, mean_offline_s=100.0)
    availability = Population(config, 1, seed=2).profile(0).availability
    (a, b), (c, _) = availability.intervals[0], availability.intervals[1]
    assert a < b < c
    assert availability.online_at((a + b) / 2) and not availability.online_at((b + c) / 2)
    assert availability.online_until((a + b) / 2) == b


def test_trace_file_gives_each_client_its_profile(tmp_path):
    trace = tmp_path / "devices.csv"
    trace.write_text("client_id,seconds_per_sample,downlink_mbps,uplink_mbps,latency_s,dropout,availability\n"
                     "0,0.5,10,1,0.1,0.25,0-100;200-inf\n1,0.05,100,10,0.01,,\n")
    population = Population(SystemConfig(trace=str(trace)), 2, seed=0)
    first = population.profile(0)
    assert (first.seconds_per_sample, first.downlink_bps, first.dropout) == (0.5, 10e6, 0.25)
    assert first.availability.online_at(50) and not first.availability.online_at(150)
    assert first.availability.online_until(250) == math.inf
    assert population.profile(1).availability.online_at(1e9)


HEADER = "client_id,seconds_per_sample,downlink_mbps,uplink_mbps,latency_s\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [("client_id,seconds_per_sample\n0,1\n", "needs columns"),
     ("client_id,seconds_per_sample,downlink_mbps,uplink_mbps,latency_s\n0,x,1,1,0\n", "line 2"),
     ("client_id,seconds_per_sample,downlink_mbps,uplink_mbps,latency_s\n0,1,1,1,0\n", "no row for clients [1]"),
     (HEADER + "0,nan,1,1,0\n1,1,1,1,0\n", "line 2: column seconds_per_sample must be a finite number >= 0"),
     (HEADER + "0,1,1,1,0\n1,-1,1,1,0\n", "line 3: column seconds_per_sample must be a finite number >= 0"),
     (HEADER + "0,1,0,1,0\n1,1,1,1,0\n", "line 2: column downlink_mbps must be a finite number > 0"),
     (HEADER + "0,1,1,inf,0\n1,1,1,1,0\n", "line 2: column uplink_mbps"),
     (HEADER + "0,1,1,1,-0.5\n1,1,1,1,0\n", "line 2: column latency_s must be a finite number >= 0"),
     (HEADER + "0,1,1,1,0\n0,1,1,1,0\n1,1,1,1,0\n", "line 3: column client_id: 0 is a duplicate"),
     (HEADER + "-1,1,1,1,0\n0,1,1,1,0\n1,1,1,1,0\n", "line 2: column client_id must be an integer >= 0"),
     (HEADER + "0,1,1,1\n1,1,1,1,0\n", "line 2: column latency_s is not a number"),
     (HEADER.rstrip() + ",dropout\n0,1,1,1,0,1\n1,1,1,1,0,0\n", "line 2: column dropout must be < 1"),
     (HEADER.rstrip() + ",availability\n0,1,1,1,0,nan-5\n1,1,1,1,0,\n", "line 2: column availability")],
)
def test_bad_trace_files_are_explained(tmp_path, text, message):
    trace = tmp_path / "devices.csv"
    trace.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Population(SystemConfig(trace=str(trace)), 2, seed=0)


@pytest.mark.parametrize("row", ["secret-token,1,1,1,0", "0,secret-token,1,1,0", "0,1,1,1,0,secret-token",
                                 "0,1,1,1,0,1-secret-token"])
def test_a_trace_error_never_quotes_the_file(tmp_path, row):
    """A scenario from someone else may point system.trace at any file: its cells stay unread."""
    trace = tmp_path / "devices.csv"
    trace.write_text(HEADER.rstrip() + ",availability\n" + row + ("" if row.count(",") == 5 else ",") + "\n")
    with pytest.raises(ValueError) as refused:
        Population(SystemConfig(trace=str(trace)), 1, seed=0)
    assert "secret" not in str(refused.value) and "line 2" in str(refused.value)


def test_missing_trace_file_is_a_config_error():
    with pytest.raises(ValueError, match="trace = 'nope.csv' does not exist"):
        SystemConfig(trace="nope.csv")


def test_a_trace_that_is_not_utf8_is_named(tmp_path):
    trace = tmp_path / "devices.csv"
    trace.write_bytes(HEADER.encode() + b"0,1,1,1,\xff\xfe\n")
    with pytest.raises(ValueError, match="devices.csv' is not a UTF-8 CSV file"):
        Population(SystemConfig(trace=str(trace)), 1, seed=0)
