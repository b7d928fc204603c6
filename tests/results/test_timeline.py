"""The simulated clock in ``raysim report`` (issue 37): each run's timeline and where its time
went, drawn from the tables alone, for every policy of scenarios/policies, Flower, gossip and
hierarchical runs; a clear line for runs without task timings; pages that fit their width."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raysim.api import run
from raysim.cli import main
from raysim.results.results import load
from raysim.results.spans import task_spans
from raysim.results.time_split import round_split
from raysim.results.timeline import MAX_ROWS, TOP, busy_counts, sampled_clients, timeline_figure
from raysim.scenario.sections import load_scenario, parse_scenario
from tests.conftest import tiny_table
from tests.results.browser import CHROMIUM, coloured_pixels, images, layout

POLICIES = sorted((Path(__file__).parents[2] / "scenarios" / "policies").glob("*.toml"))
# each policy file's [system] and [policy] on a tiny synthetic population, in this process
TINY = ("run.executor=local", "run.rounds=4", "run.eval_every=2", "data.num_clients=16",
        "selection.clients_per_round=4", "data.dataset=synthetic", "data.partition=natural", "model.name=logreg")
SMALLER_BUFFERS = {"fedbuff": ("policy.buffer_size=2",), "hybrid": ("policy.min_updates=2",)}
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def policy_runs(tmp_path_factory) -> dict[str, Path]:
    """Every scenarios/policies/*.toml run once, tiny: policy name -> run folder."""
    root = tmp_path_factory.mktemp("policies")
    return {path.stem: run(load_scenario(path, TINY + SMALLER_BUFFERS.get(path.stem, ())), results_root=root).run_dir
            for path in POLICIES}


def _report(path: Path, out: Path) -> str:
    assert main(["report", str(path), "--out", str(out)]) == 0
    return out.read_text()


def _check_in_browser(out: Path, page: str) -> None:
    """Every figure decodes to a non-empty picture with a text alternative, inside the page's width."""
    laid = layout(out)
    assert laid["page"] <= laid["view"] == 800
    assert len(laid["images"]) == len(images(page)) > 0
    for image in laid["images"]:
        assert image["width"] > 100 and image["height"] > 100 and image["right"] <= laid["view"]
        assert len(image["alt"]) > 60  # says what the figure shows, not just its name
    for alt, png in images(page):
        assert coloured_pixels(png) > 500, alt  # an empty chart has none


@needs_chromium
@pytest.mark.parametrize("policy", [p.stem for p in POLICIES])
def test_each_policy_runs_report_draws_its_timeline_and_time_split(policy_runs, policy, tmp_path):
    out = tmp_path / "report.html"
    page = _report(policy_runs[policy], out)
    alts = [alt for alt, _ in images(page)]
    assert "Timeline on the simulated clock" in page and "Where the time went" in page
    assert sum(alt.startswith("Timeline of policy_") for alt in alts) == 1
    assert sum("where the time went" in alt or "mean time from dispatch to aggregation" in alt for alt in alts) == 1
    _check_in_browser(out, page)


@needs_chromium
def test_a_comparison_draws_one_timeline_per_run_aligned_on_simulated_time(policy_runs, tmp_path):
    root = next(iter(policy_runs.values())).parent.parent
    out = tmp_path / "report.html"
    page = _report(root, out)
    timelines = [alt for alt, _ in images(page) if alt.startswith("Timeline of ")]
    assert len(timelines) == len(POLICIES)
    until = {re.search(r"from 0 to ([0-9.]+) s", alt).group(1) for alt in timelines}
    assert len(until) == 1  # one clock for every run
    ends = [load(d).clients.pipe(task_spans)["end"].max() for d in policy_runs.values()]
    assert float(until.pop()) == pytest.approx(max(ends), abs=0.05)
    _check_in_browser(out, page)
    # the control: the same page with its tables out of their scrolling boxes is wider than the window
    bare = tmp_path / "bare.html"
    bare.write_text(page.replace('<div class="table">', "<div>"))
    assert layout(bare)["page"] > 800


def test_a_synchronous_rounds_split_adds_up_to_the_rounds_duration(policy_runs):
    """Sync without a deadline: every task of round k leaves at round k-1's end, so an applied
    update's transfer + compute + wait is the round's duration, whichever update it is."""
    results = load(policy_runs["sync"])
    split = round_split(task_spans(results.clients), results.rounds)
    durations = results.rounds.set_index("round")["sim_time"].diff().fillna(results.rounds["sim_time"].iloc[0])
    np.testing.assert_allclose(split[["transfer", "compute", "wait"]].sum(axis=1),
                               durations.loc[split["round"]].to_numpy(), rtol=1e-9)
    assert (split["wait"] > 0).any()  # some waited for the slowest


def test_fedbuff_updates_are_stale_and_fedasync_ones_wait_for_nothing(policy_runs):
    fedbuff, fedasync = (load(policy_runs[p]) for p in ("fedbuff", "fedasync"))
    assert "stale-applied" in set(task_spans(fedbuff.clients)["fate"])
    split = round_split(task_spans(fedasync.clients), fedasync.rounds)
    assert (split["wait"] == 0).all()  # FedAsync applies each update as it arrives


def test_spans_of_a_star_flower_and_gossip_row():
    clients = pd.DataFrame([
        {"round": 1, "client_id": 3, "status": "applied", "staleness": 2, "start_time": 10.0, "end_time": 16.0,
         "download_s": 1.0, "compute_s": 3.0, "upload_s": 2.0},
        {"round": 1, "client_id": 4, "status": "dropout", "staleness": -1, "start_time": 10.0, "end_time": 30.0,
         "download_s": 1.0, "compute_s": 17.0, "upload_s": 2.0},
    ]).assign(scenario="s", run_id="r")
    spans = task_spans(clients)
    assert spans[["start", "download_end", "compute_end", "end"]].values.tolist() == [[10, 11, 14, 16], [10, 11, 28, 30]]
    assert spans["fate"].tolist() == ["stale-applied", "dropped out"]
    flower = pd.DataFrame([
        {"round": 1, "client_id": 0, "status": "dropout", "staleness": 0, "sent_at": 5.0, "arrived_at": np.nan,
         "dropped_at": 7.0, "download_s": 1.0, "compute_s": 4.0, "upload_s": 1.0},
        {"round": 1, "client_id": 1, "status": "offline", "staleness": 0, "sent_at": 5.0, "arrived_at": np.nan},
        {"round": 1, "client_id": 2, "status": "late", "staleness": 0, "sent_at": 5.0, "arrived_at": 9.0,
         "download_s": 1.0, "compute_s": 2.0, "upload_s": 1.0},
    ])
    spans = task_spans(flower)
    assert spans[["start", "download_end", "compute_end", "end"]].values.tolist() == [
        [5, 6, 7, 7], [5, 5, 5, 5], [5, 6, 8, 9]]  # cut where it dropped out; offline: no length
    assert spans["fate"].tolist() == ["dropped out", "offline", "late-dropped"]
    gossip = pd.DataFrame([{"round": 2, "client_id": 0, "status": "applied", "staleness": 0,
                            "start_time": 1.0, "end_time": 2.0, "compute_s": 0.25}])
    assert task_spans(gossip)[["start", "download_end", "compute_end", "end"]].values.tolist() == [[1, 1, 1.25, 2]]


def test_hostile_timings_drop_their_rows_not_the_report():
    clients = pd.DataFrame({"round": [1, 1, 1, 1], "client_id": [0, 1, 2, 3], "status": ["applied"] * 4,
                            "staleness": [0] * 4, "start_time": ["x", "1", np.inf, 2.0],
                            "end_time": [1.0, 3.0, 4.0, [1, 2]], "compute_s": [0.5, 0.5, 0.5, {"a": 1}]})
    spans = task_spans(clients)
    assert spans["client_id"].tolist() == [1, 3]  # no start: no task; an end that is no number: start + phases
    assert spans[["start", "end"]].values.tolist() == [[1, 3], [2, 2]]


def test_a_thousand_clients_are_sampled_as_the_busiest_and_an_even_spread():
    spans = pd.DataFrame({"client_id": np.r_[np.arange(1000), np.repeat([500, 7, 999], 5)]})
    clients, said = sampled_clients(spans)
    assert len(clients) == MAX_ROWS and clients == sorted(clients) and {7, 500, 999} <= set(clients)
    assert clients[:3] == [0, 1, 2] and said.startswith(f"{MAX_ROWS} of 1000 clients") and f"the {TOP} with" in said
    assert sampled_clients(spans) == (clients, said)  # deterministic


def test_busy_counts_are_exact_however_short_the_task():
    spans = pd.DataFrame({"start": [0.0, 1.0], "download_end": [0.0, 1.5], "compute_end": [7200.0, 1.5],
                          "end": [7200.0, 3.0]})
    times, counts = busy_counts(spans)
    at = {t: {p: int(c[i]) for p, c in counts.items()} for i, t in enumerate(times)}
    assert at[1.0] == {"download": 1, "compute": 1, "upload": 0}
    assert at[1.5] == {"download": 0, "compute": 1, "upload": 1} and at[3.0]["upload"] == 0


def test_a_thousand_clients_and_rounds_draw_sampled_rows_a_zoom_and_ticks():
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 900, 5000)
    spans = pd.DataFrame({"client_id": (np.arange(5000) % 1000).astype(float), "fate": "applied",
                          "start": start, "download_end": start + 0.5, "compute_end": start + 5, "end": start + 6})
    picture = timeline_figure(spans, np.linspace(1, 900, 1000), title="big", until=906.0)
    full, zoom, density = picture.fig.axes[:3]
    assert len(full.get_yticks()) == MAX_ROWS and zoom.get_title() == "zoom: the first 30 aggregations"
    assert zoom.get_xlim()[1] == pytest.approx(np.linspace(1, 900, 1000)[29])
    assert "40 of 1000 clients" in picture.alt and "1000 server aggregations" in picture.alt
    assert "ticks above" in picture.caption
    import matplotlib.pyplot as plt

    plt.close(picture.fig)


@pytest.fixture(scope="module")
def other_runs(tmp_path_factory) -> dict[str, Path]:
    """Gossip and hierarchical runs of the tiny scenario, and a tiny vertical run."""
    from raysim.scenario.vertical import parse_vertical
    from tests.vertical.test_scenario import GOOD

    root = tmp_path_factory.mktemp("kinds")
    every = {"selection": {"clients_per_round": 8}, "run": {"rounds": 3}}
    vertical = copy.deepcopy(GOOD)
    vertical["vertical"].update(max_train=40, max_test=30)
    scenarios = {"gossip": parse_scenario(tiny_table(**every, network={"topology": "gossip", "graph": "ring"})),
                 "hierarchical": parse_scenario(tiny_table(**every, network={"topology": "hierarchical", "num_edges": 2})),
                 "vertical": parse_vertical(vertical)}
    return {name: run(s, results_root=root / name).run_dir for name, s in scenarios.items()}


@pytest.mark.parametrize("kind", ["gossip", "hierarchical"])
def test_gossip_and_hierarchical_nodes_have_timelines(other_runs, kind, tmp_path):
    page = _report(other_runs[kind], tmp_path / "r.html")
    (timeline,) = [alt for alt, _ in images(page) if alt.startswith("Timeline of ")]
    assert "8 of 8 clients" in timeline and "24 tasks in all: 24 applied" in timeline


def test_a_vertical_run_says_it_has_no_task_timings(other_runs, tmp_path):
    page = _report(other_runs["vertical"], tmp_path / "r.html")
    assert "no task timings in this run" in page
    assert not [alt for alt, _ in images(page) if alt.startswith("Timeline of ") or "time went" in alt]


def test_a_received_clients_table_without_usable_timings_gets_the_line(policy_runs, tmp_path):
    copied = Path(shutil.copytree(policy_runs["sync"], tmp_path / "theirs" / "policy_sync" / "run"))
    clients = pd.read_parquet(copied / "clients.parquet")
    clients.assign(start_time="soon", end_time="later").to_parquet(copied / "clients.parquet")
    page = _report(copied, tmp_path / "r.html")
    assert "no task timings in this run" in page and "Timeline of" not in page


def test_a_flower_run_has_its_timeline(tmp_path):
    pytest.importorskip("flwr")
    from tests.flower.test_flower_runs import scenario

    system = {"dropout": 0.3, "speed_distribution": "lognormal", "speed_sigma": 1.0, "seconds_per_sample": 0.01}
    outcome = run(scenario(system=system), results_root=tmp_path)
    page = _report(outcome.run_dir, tmp_path / "r.html")
    (timeline,) = [alt for alt, _ in images(page) if alt.startswith("Timeline of flower")]
    messages = pd.read_parquet(outcome.run_dir / "clients.parquet")
    assert f"({len(messages)} tasks in all:" in timeline and "dropped out" in timeline
    participation = next(alt for alt, _ in images(page) if alt.startswith("Bar chart of applied updates"))
    assert "no client's update was applied" not in participation  # Flower's train replies count


CELLS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30), st.text(max_size=3),
                  st.none())


@settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_whatever_a_received_table_holds_the_clock_is_drawn_or_said(data):
    """Received tables are hostile input: any cells in the timing columns give pictures or a line."""
    from raysim.results.clock import clock
    from raysim.results.html import _embed
    from raysim.results.results import Results

    n = data.draw(st.integers(1, 6))
    column = lambda: data.draw(st.lists(CELLS, min_size=n, max_size=n))  # noqa: E731
    clients = pd.DataFrame({"round": data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)),
                            "status": data.draw(st.lists(st.sampled_from(["applied", "late", "replied", "?"]),
                                                         min_size=n, max_size=n)),
                            **{c: column() for c in ("client_id", "staleness", "start_time", "end_time", "download_s",
                                                     "compute_s", "upload_s")}}).assign(scenario="s", run_id="r")
    rounds = pd.DataFrame({"round": [1, 2, 3], "sim_time": data.draw(st.lists(
        st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3))}).assign(scenario="s", run_id="r")
    seen = clock(Results(rounds=rounds, clients=clients, partition=pd.DataFrame(), evaluation=pd.DataFrame(),
                         summary=pd.DataFrame()))
    assert (seen.split is None) == (not seen.timelines) == bool(seen.notes)
    for picture in (*seen.timelines, *([seen.split] if seen.split else [])):
        assert "<img" in _embed(picture)
