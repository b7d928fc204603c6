"""What a restored driver state must satisfy against the live run, beyond the kinds the decoder
checks (``checkpoint.py``): its ids, versions, times and model-sized arrays.

The decoder compares each value with the fresh driver's at the same place; what a fresh driver
does not have yet (tasks in flight, older model versions, clients' models) is checked here
against the run: client ids within the population, task ids below the task counter, versions
the bases hold, times finite and not before the clock, arrays of the model's shape and dtype,
and work scheduled unless the run is finished. A snapshot that passes can be run on without an
error the scenario could not cause; CheckpointError names the first field that does not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from raysim.sim.state.checkpoint import CheckpointError

STATUSES = ("running", "unfinished", "dropout", "offline", "lost", "suppressed", "discarded", "rejected", "applied")


def check_restored(driver: Any) -> None:
    """Refuses (CheckpointError) a restored Driver state that does not fit its run."""
    population, model = len(driver.sizes), driver.state.params
    _time(driver.clock.now, "clock.now", at_least=0.0)
    if driver._started and not driver.finished and not len(driver.clock):
        raise CheckpointError(f"clock: no work is scheduled at round {driver.round} of {driver.limits.rounds}: the "
                              f"checkpoint is of a run that finished at round {driver.round}; a finished run cannot "
                              "be given more rounds: start a new run with them")
    for at, *_ in driver.clock._queue:
        _time(at, "clock: an event", at_least=driver.clock.now)
    for client in driver.busy:
        _client(client, population, "busy")
    for version, params in driver.bases.items():  # a global version, or -1 - task_id: a task's own start
        _whole(version, f"bases[{version!r}]", -driver._task_counter, driver.state.version)
        _model_sized(params, model, f"bases[{version}]")
    for client, params in driver.local_models.items():
        _model_sized(params, model, f"local_models[{_client(client, population, 'local_models')}]")
    for client, (version, params) in driver.anchors.items():
        _whole(version, f"anchors[{_client(client, population, 'anchors')}]", 0, driver.state.version)
        _model_sized(params, model, f"anchors[{client}]")
    for task_id, task in driver.tasks.items():
        _task(driver, task_id, task, population, model)


def _task(driver: Any, task_id: Any, task: Any, population: int, model: np.ndarray) -> None:
    where, info = f"tasks[{task_id!r}]", task.info
    if info.task_id != task_id:
        raise CheckpointError(f"{where}.info.task_id: {info.task_id} where the task is filed as {task_id!r}")
    _whole(task_id, f"{where}.info.task_id", 0, driver._task_counter - 1)
    _client(info.client_id, population, f"{where}.info.client_id")
    _whole(info.epochs, f"{where}.info.epochs", 1, math.inf)
    _whole(task.samples, f"{where}.samples", 0, math.inf)
    _whole(task.round, f"{where}.round", 0, driver.limits.rounds)
    _whole(task.seed_key, f"{where}.seed_key", 0, driver._dispatches)
    if task.status not in STATUSES:
        raise CheckpointError(f"{where}.status: {task.status!r} is none of {', '.join(STATUSES)}")
    for name in ("download_s", "compute_s", "upload_s"):
        _time(getattr(task, name), f"{where}.{name}", at_least=0.0)
    _time(info.start, f"{where}.info.start", at_least=0.0)
    _time(info.end, f"{where}.info.end", at_least=info.start)
    if task.status == "running" and task.start_params is None and info.base_version not in driver.bases:
        raise CheckpointError(f"{where}.info.base_version: {info.base_version!r} is no model version the "
                              "checkpoint holds")
    for name in ("start_params", "new_model"):
        if getattr(task, name) is not None:
            _model_sized(getattr(task, name), model, f"{where}.{name}")
    if task.fetched is not None:
        if (task.fetched.task_id, task.fetched.client_id) != (info.task_id, info.client_id):
            raise CheckpointError(f"{where}.fetched: a result of another task or client")
        _model_sized(task.fetched.delta, model, f"{where}.fetched.delta", dtype=False)


def _client(client: Any, population: int, where: str) -> int:
    return _whole(client, where, 0, population - 1, what="a client of this run")


def _whole(value: Any, where: str, low: float, high: float, what: str = "") -> int:
    if type(value) is not int or not low <= value <= high:
        raise CheckpointError(f"{where}: {value!r} is not {what or 'a whole number'} ({low} to {high})")
    return value


def _time(value: Any, where: str, *, at_least: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < at_least:
        raise CheckpointError(f"{where}: {value!r} is not a simulated time of at least {at_least}")


def _model_sized(array: Any, model: np.ndarray, where: str, *, dtype: bool = True) -> None:
    if not isinstance(array, np.ndarray) or array.shape != model.shape or (dtype and array.dtype != model.dtype):
        found = f"a {array.dtype} array of shape {array.shape}" if isinstance(array, np.ndarray) else repr(type(array))
        raise CheckpointError(f"{where}: {found} where this run's model is {model.dtype} {model.shape}")
