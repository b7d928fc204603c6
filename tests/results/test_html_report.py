"""``raysim report``: a self-contained page, checked in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from raysim.api import run
from raysim.cli import main
from raysim.results.results import load, write_sweep_index

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """Two arms x two seeds of the tiny scenario run in-process, laid out and indexed as a sweep."""
    from raysim.scenario.sections import parse_scenario
    from tests.conftest import tiny_table

    root = tmp_path_factory.mktemp("sweep")
    trials = {}
    for index, (lr, seed) in enumerate([(0.01, 0), (0.01, 1), (0.2, 0), (0.2, 1)]):
        name = f"tiny-t{index}"
        trials[name] = {"client.lr": lr, "run.seed": seed}
        scenario = parse_scenario(tiny_table(run={"name": name, "seed": seed}, client={"lr": lr},
                                             personal={"holdout": 0.3}, evaluation={"clients": "all"}))
        run(scenario, results_root=root / "trials")
    write_sweep_index(root, name="tiny", keys=["client.lr", "run.seed"], trials=trials)
    return root


def test_load_on_a_sweep_folder_gives_a_column_per_swept_key(sweep_dir):
    results = load(sweep_dir)
    for frame in (results.rounds, results.clients, results.evaluation, results.summary):
        assert {"client.lr", "run.seed", "trial"} <= set(frame.columns)
    assert sorted(results.summary["client.lr"].tolist()) == [0.01, 0.01, 0.2, 0.2]


def test_the_report_is_one_self_contained_file(sweep_dir, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(sweep_dir), "--out", str(out)]) == 0
    page = out.read_text()
    assert "<script" not in page and "http" not in page.replace('lang="en"', "")
    sources = re.findall(r'src="([^"]*)"', page)
    # the metric, the sweep's arms, a timeline per run and the time split, participation, evaluation, bytes
    assert len(sources) == 3 + 4 + 1 + 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    for heading in ("Test accuracy", "Sweep: final test accuracy", "paired differences", "Timeline on the simulated clock",
                    "Where the time went", "Participation", "Client evaluation", "Bytes"):
        assert heading in page


def _browse(page: Path, shot: Path) -> list[str]:
    """Opens the page in headless chromium, screenshots it, returns the console messages."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1200,3600",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars", page.absolute().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.exists(), done.stderr
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def _coloured_pixels(shot: Path) -> int:
    """Pixels with a saturated colour (chart lines, bars, ribbons): text and rules are grey."""
    from matplotlib.image import imread

    rgb = imread(shot)[..., :3]
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 0.3).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_the_report_loads_in_a_browser_without_console_errors_and_shows_its_charts(sweep_dir, tmp_path):
    out = tmp_path / "report.html"
    main(["report", str(sweep_dir), "--out", str(out)])
    assert _browse(out, tmp_path / "report.png") == []
    assert _coloured_pixels(tmp_path / "report.png") > 20_000
    # the controls: the same page without its images shows no chart; a broken script is heard
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"<img [^>]*>", "", out.read_text()))
    assert _browse(bare, tmp_path / "bare.png") == [] and _coloured_pixels(tmp_path / "bare.png") < 500
    broken = tmp_path / "broken.html"
    broken.write_text(out.read_text().replace("</body>", "<script>console.error('boom')</script></body>"))
    assert any("boom" in line for line in _browse(broken, tmp_path / "broken.png"))


def test_a_single_runs_report_has_no_sweep_sections(tmp_path):
    from raysim.scenario.sections import parse_scenario
    from tests.conftest import tiny_table

    outcome = run(parse_scenario(tiny_table()), results_root=tmp_path)
    assert main(["report", str(outcome.run_dir)]) == 0
    page = (outcome.run_dir / "report.html").read_text()
    assert "Sweep" not in page and "Client evaluation" not in page and page.count("<img ") == 5
