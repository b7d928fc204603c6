"""Trials on Ray Tune: each in its own placement group, several at once on one Ray cluster.

Every Ray Tune call lives here, on the runtime floor with the rest of Ray; the sweep
(``raysim/experiments/``) hands in a trainable and the trials, and never imports Ray.

A trial reserves ``[{}] + [actor] * W``: an empty head bundle (the trial's process and its
driver actor take no CPU slot, as in a plain run) and one bundle per client actor. Tune starts a
trial only when its whole reservation is free, and ``session.plan_pool`` places each actor in
its own bundle, so a trial never asks for more than it reserved (which would hang it, ray#24445).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ray


@dataclass(frozen=True)
class TrialShape:
    """What one trial reserves: ``actors`` client actors of ``num_cpus`` CPU and ``num_gpus`` GPU."""

    actors: int
    num_cpus: float
    num_gpus: float

    def bundles(self) -> list[dict[str, float]]:
        actor = {"CPU": self.num_cpus, **({"GPU": self.num_gpus} if self.num_gpus else {})}
        return [{}] + [dict(actor) for _ in range(self.actors)]


def at_once(shape: TrialShape) -> tuple[int, str]:
    """How many trials of ``shape`` the cluster runs at once (0: none fits), and the arithmetic
    in words: floor(C / (W c)), and the same for GPUs when the trial uses them."""
    cluster = ray.cluster_resources()
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    need_cpu, need_gpu = shape.actors * shape.num_cpus, shape.actors * shape.num_gpus
    fits = math.floor(cpus / need_cpu + 1e-9)
    words = f"{shape.actors} actor(s) x {shape.num_cpus:g} CPU = {need_cpu:g} of {cpus:g} CPU"
    if need_gpu:
        fits = min(fits, math.floor(gpus / need_gpu + 1e-9))
        words += f", {need_gpu:g} of {gpus:g} GPU"
    return fits, words


def run_trials(trainable: Callable[..., dict], configs: list[dict], *, params: dict[str, Any], shape: TrialShape,
               storage: Path, on_done: Callable[[str, dict | None, str | None], None]) -> list[str]:
    """Runs one Tune trial per config (a dict with its ``"name"``, handed to the trainable as
    ``config["trial"]``) and returns the names of those that failed; ``on_done(name, metrics,
    error)`` hears each as it ends. ``params`` go to every trial as keyword arguments, through
    the object store once (``tune.with_parameters``)."""
    from ray import tune
    from ray.tune import Callback

    class Announce(Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            on_done(trial.config["trial"]["name"], trial.last_result, None)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            on_done(trial.config["trial"]["name"], None, str(trial.error_file or "see the Tune log"))

    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, **params), tune.PlacementGroupFactory(shape.bundles(), strategy="PACK")),
        param_space={"trial": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(reuse_actors=False),
        run_config=tune.RunConfig(storage_path=str(storage.absolute()), name=f"attempt-{_attempt(storage)}",
                                  verbose=0, callbacks=[Announce()],
                                  failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
    )
    # Tune's own result files are off (trial_environment), so the ResultGrid it builds at the end
    # finds none and warns about every trial: noise, since the run folders hold the results.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    grid = tuner.fit()
    return [r.config["trial"]["name"] for r in grid if r.error is not None]


def _attempt(storage: Path) -> int:
    """A fresh Tune experiment folder per (re)start of a sweep; finished trials are not handed in again."""
    return len(list(storage.glob("attempt-*"))) + 1 if storage.exists() else 1


def trial_environment() -> None:
    """Trials run in the caller's folder, so the scenario's relative paths (data.root) still
    resolve (Tune would move each into its own folder), and Tune adds no logger callbacks of its
    own (its CSV, JSON and TensorBoard files would duplicate the run folders; raysim's sinks are
    ``raysim run --track``). Set before Ray starts: its workers inherit the environment."""
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
