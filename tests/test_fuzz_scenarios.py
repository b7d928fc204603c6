"""Fuzzed scenarios: whatever the file says, the CLI answers 0 or 2 in one process, never a traceback.

Variants of the tiny synthetic scenario get one to three keys replaced by NaN, infinities,
huge or negative numbers, zero, wrong types, unknown names and odd strings; ``validate`` (which
prepares data and model as ``run`` does) must accept or refuse each with exit 0 or 2, and a few
are run for one round with the local executor. Derandomized, so the same examples run every time.
"""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raysim.cli import main
from raysim.scenario.config import to_table
from raysim.scenario.sections import parse_scenario
from tests.conftest import tiny_table

BASE = to_table(parse_scenario(tiny_table(run={"rounds": 1})))
# Fashion-MNIST with a Dirichlet split, so partition keys are fuzzed too (exit 2 where it is missing).
IMAGES = to_table(parse_scenario(tiny_table(run={"rounds": 1}, data={
    "dataset": "fashion_mnist", "num_clients": 20, "partition": {"kind": "dirichlet", "beta": 0.5}})))


def _leaves(table: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    keys = []
    for key, value in table.items():
        if isinstance(value, dict) and key != "options":
            keys += _leaves(value, prefix + (key,))
        else:
            keys.append(prefix + (key,))
    return keys


KEYS = sorted(set(_leaves(BASE) + _leaves(IMAGES))) + [("policy", "period_s"), ("policy", "deadline_s"),
                                                       ("model", "options")]
# Keys whose value scales the work of a run (threads, epochs, populations) stay out of the runs.
RUN_KEYS = [k for k in KEYS if k[0] in ("client", "server", "system", "selection", "policy", "attack", "model")
            and k[-1] not in ("epochs", "batch_size")]
ODD = [float("nan"), float("inf"), float("-inf"), 1e300, -1e300, 1e12, -1.0, 0, 0.0, -1, 1, 2, 3, 7, 1000, 10**9,
       2**63 - 1, -(2**63), 0.5, 0.999, True, False, "", " ", "x" * 300, "☃", "nan", "inf", "1e999", "../../etc",
       "os:system", "no.such.module:fn", "raysim.models.models:MODELS", "raysim.scenario.config:import_object", "sync", "async",
       "dirichlet", "natural", "krum", "trimmed_mean", "multi_krum", "ckks", "secagg", "central",
       [], [1, "a"], {}, {"kind": "zipf"}, {"command": "false"}]
VALUES = st.one_of(st.sampled_from(ODD), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))


def _mutated(draw_keys, values, base: dict = BASE) -> dict:
    table = copy.deepcopy(base)
    for key, value in zip(draw_keys, values):
        node = table
        for part in key[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {} if child is None else {"kind": child}
            node = child
        node[key[-1]] = value
    return table


def _cli(argv: list[str]) -> tuple[int, str]:
    """main's exit code and stderr; argparse's own usage errors exit 2 through SystemExit."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


def _check(table: dict, command: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.toml"
        path.write_text(tomli_w.dumps(table))
        extra = ["--results", str(Path(tmp) / "results"), "--quiet"] if command == "run" else []
        code, err = _cli([command, str(path), *extra])
        assert code in (0, 2), err
        assert "Traceback" not in err, err
        if code == 2:
            assert err.startswith("error:"), err
            assert not (Path(tmp) / "results").exists()


SETTINGS = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@SETTINGS.__class__(SETTINGS, max_examples=400)
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3), st.sampled_from([BASE, IMAGES]))
def test_validate_answers_0_or_2(mutations, base):
    _check(_mutated([k for k, _ in mutations], [v for _, v in mutations], base), "validate")


@SETTINGS.__class__(SETTINGS, max_examples=40)
@given(st.lists(st.tuples(st.sampled_from(RUN_KEYS), st.sampled_from(ODD)), min_size=1, max_size=2))
def test_one_local_round_answers_0_or_2(mutations):
    table = _mutated([k for k, _ in mutations], [v for _, v in mutations])
    table["run"].update(rounds=1, executor="local", checkpoint_every=0)
    _check(table, "run")


@SETTINGS.__class__(SETTINGS, max_examples=60)
@given(st.text(alphabet="abcdeilmnoprstuvx.=_[]{}\"'0123456789-+ ", max_size=30))
def test_odd_overrides_answer_0_or_2(assignment):
    code, err = _cli(["validate", "scenarios/quickstart.toml", "--set", assignment])
    assert code in (0, 2) and "Traceback" not in err, err
