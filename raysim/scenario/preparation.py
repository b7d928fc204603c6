"""Everything a run does before it starts training, shared by ``raysim run`` and ``raysim validate``.

Loading the data, partitioning it, building the model and checking the user code and optional
packages a scenario names are the checks that need more than the scenario file. Doing them
here, without Ray, means ``validate`` says "ok" only when ``run`` would start, and ``run``
fails on bad input before anything is written.
"""

from __future__ import annotations

import importlib.util
import math
import numbers
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from raysim.algorithms.personal import holdout_split, local_mask
from raysim.contribution.plant import plant
from raysim.contribution.validation import split_validation
from raysim.data import Dataset, PixelScale, label_histogram, partition
from raysim.inputs import ConfigError, UserCodeError
from raysim.models.layout import ParamLayout
from raysim.models.spec import NOT_VECTORIZED, ModelSpec
from raysim.network.hierarchy import assign_edges, read_edge_trace
from raysim.privacy.stage import PrivacyConfig
from raysim.scenario.composition import (
    UserObjects, attackers, check_user_code, client_algorithm, client_sgd, learning_task, user_weighting,
)
from raysim.scenario.data_source import load_data
from raysim.scenario.sections import WEIGHTINGS, Scenario
from raysim.seeding import Stream, derive_seed, rng
from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan


ARRAY_NAMES = ("train_x", "train_y", "test_x", "test_y")  # the data set's arrays, as client workers take them


@dataclass(frozen=True)
class Prepared:
    """The data side of a run: loaded once, partitioned, described. Built without torch: the
    model is named (``model``), its initial state is computed where torch is (``InitialModel``)."""

    dataset: Dataset | None  # None once its arrays travel apart (see ``without_arrays``)
    shards: ClientIndices
    histogram: np.ndarray
    model: ModelSpec
    plan: TrainingPlan
    test_size: int  # examples in the test set
    pixels: PixelScale | None  # the data set's, for the client workers (data/pixels.py)
    holdout: ClientIndices | None = None  # each client's held-out examples (personalised evaluation)
    validation: np.ndarray | None = None  # the server's validation rows of the training set ([contribution])
    objects: UserObjects | None = None  # strategy and policy objects handed to raysim.api.run

    def without_arrays(self) -> tuple[Prepared, dict[str, np.ndarray]]:
        """This preparation without its data set, and the data set's arrays by client worker
        argument name: a Ray run puts the arrays in the object store for its client actors,
        and whoever drives the run needs only the small rest."""
        return replace(self, dataset=None), {name: getattr(self.dataset, name) for name in ARRAY_NAMES}


def prepare(scenario: Scenario, objects: UserObjects | None = None) -> Prepared:
    """Loads and partitions the data once, so bad input fails here (the model and the client
    algorithm: ``initial_model``); a user's strategy and policy are checked here too."""
    check_privacy_packages(scenario.privacy)
    check_user_code(scenario, objects)
    data = scenario.data
    task = learning_task(scenario)  # a user's, checked here (UserCodeError naming task.kind)
    targets = task.labels  # "class" or "value"
    dataset = load_data(scenario, task)
    classes = dataset.train_y if targets == "class" else np.zeros(len(dataset.train_y), dtype=np.int64)
    try:
        parts = partition(
            classes, data.num_clients, data.partition,
            seed=derive_seed(scenario.data_seed, Stream.PARTITION), natural=dataset.natural_parts,
            num_classes=dataset.num_classes,
        )
    except ValueError as exc:
        raise ConfigError(f"data.partition: {exc}") from exc
    validation = None
    if scenario.contribution.active:
        parts, validation = split_validation(parts, scenario.contribution.validation_share,
                                             rng(scenario.run.seed, Stream.VALIDATION))
        parts, labels = plant(parts, dataset.train_y, scenario.contribution.plant, dataset.num_classes,
                              rng(scenario.run.seed, Stream.VALIDATION, 1))
        dataset = replace(dataset, train_y=labels)
    _check_no_empty_clients(parts)
    personal = scenario.personal
    holdout = None
    if personal.holdout:
        parts, held = holdout_split(parts, personal.holdout, derive_seed(scenario.data_seed, Stream.HOLDOUT))
        holdout = ClientIndices.from_parts(held)
    check_weighting(scenario.server.weighting, [len(p) for p in parts])  # the sizes the server will see
    algorithm, algorithm_options = client_algorithm(scenario, objects)
    check_edge_trace(scenario)
    return Prepared(
        objects=objects,
        dataset=dataset,
        shards=ClientIndices.from_parts(parts),
        histogram=(label_histogram(dataset.train_y, parts, dataset.num_classes) if targets == "class"
                   else np.zeros((len(parts), 0), dtype=np.int64)),
        model=ModelSpec(scenario.model.name, dataset.input_shape, dataset.num_classes, dict(scenario.model.options)),
        holdout=holdout,
        validation=validation,
        test_size=len(dataset.test_y),
        pixels=dataset.pixels,
        plan=TrainingPlan(
            batch_size=scenario.client.batch_size, sgd=client_sgd(scenario), seed=scenario.run.seed,
            algorithm=algorithm, algorithm_options=algorithm_options,
            flipped_labels=frozenset(attackers(scenario)) if scenario.attack.kind == "label_flip" else frozenset(),
            num_classes=dataset.num_classes, local_layers=personal.local_layers,
            task=scenario.task.kind, task_options=dict(scenario.task.options),
        ),
    )


@dataclass(frozen=True)
class InitialModel:
    """The global model at version 0 and what its layout decides, checked against the scenario."""

    params: np.ndarray  # a function of the run's seed alone
    layout: ParamLayout
    vectorize: bool  # clients of equal size are trained as one batch of models


StateOf = Callable[[ModelSpec, int], tuple[np.ndarray, ParamLayout]]


def initial_model(scenario: Scenario, model: ModelSpec, state_of: StateOf | None = None, *,
                  plan: TrainingPlan | None = None) -> InitialModel:
    """Builds the model once, so a bad model or layer name fails before anything is written.

    ``state_of(model, seed)`` computes the state: ``models.initial_state`` in this process by
    default; a Ray run asks a client actor, which imports torch anyway, so the process that
    starts the run never does (the actor has built the plan's client algorithm too, and raises
    its ConfigError). Given a ``plan``, its client algorithm is built here as well (``raysim
    validate``).
    """
    if state_of is None:
        from raysim.models.models import initial_state as state_of  # torch: only where a model is built

    if plan is not None:
        from raysim.models.algorithm import build_algorithm

        build_algorithm(plan.algorithm, plan.algorithm_options)
    try:
        params, layout = state_of(model, derive_seed(scenario.run.seed, Stream.MODEL_INIT))
    except UserCodeError:  # the client algorithm, built with the model: its message names its key
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model: {exc}") from exc
    if scenario.personal.local_layers:
        try:
            local_mask(layout, scenario.personal.local_layers)
        except ValueError as exc:
            raise ConfigError(f"personal.local_layers: {exc}") from exc
    return InitialModel(params=params, layout=layout,
                        vectorize=_vectorize(scenario.resources.vectorize, layout, recurrent=model.name in NOT_VECTORIZED))


# The packages of the ``privacy`` extra each [privacy] option imports when the run starts.
_PRIVACY_PACKAGES = {"dp": "opacus", "secure_aggregation": "cryptography", "homomorphic": "tenseal"}


def check_privacy_packages(privacy: PrivacyConfig) -> None:
    """Refuses a [privacy] option whose package is missing, before anything imports it."""
    for key, package in _PRIVACY_PACKAGES.items():
        value = getattr(privacy, key)
        if value != "none" and importlib.util.find_spec(package) is None:
            raise ConfigError(f"privacy.{key} = {value!r} needs the '{package}' package: "
                              f"pip install 'raysim[privacy]'")


def _check_no_empty_clients(parts: list[np.ndarray]) -> None:
    """A client without examples cannot train when selected: refuse such a partition up front."""
    empty = [client for client, part in enumerate(parts) if not len(part)]
    if empty:
        raise ConfigError(f"data.partition gives {len(empty)} clients no examples (e.g. client {empty[0]}): "
                          "set a min_samples, fewer data.num_clients or a less skewed partition")


def check_weighting(spec: str, sizes: list[int]) -> None:
    """Calls a user weighting function on every client once, so a bad weight fails before training.

    The server divides by the sum of weights and trusts their sign, so each must be a finite
    number > 0; anything else would surface mid-run as NaN models or a traceback.
    """
    if spec in WEIGHTINGS:
        return
    weigh = user_weighting(spec)
    for client, samples in enumerate(sizes):
        try:
            weight = weigh(client, samples)
        except Exception as exc:  # user code: any failure is the scenario's, reported in one line
            raise ConfigError(f"server.weighting '{spec}' raised {type(exc).__name__} ({exc}) for client "
                              f"{client} with {samples} samples; it must return a number > 0") from exc
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) \
                or weight <= 0:
            raise ConfigError(f"server.weighting '{spec}' returned {weight!r} for client {client} with "
                              f"{samples} samples; it must return a finite number > 0")


def check_edge_trace(scenario: Scenario) -> None:
    """Reads ``network.edge_trace`` and checks its assignment as the hierarchical run will, so a
    bad file fails at load, naming the key, instead of in the driver after start-up."""
    network = scenario.network
    if network.topology != "hierarchical" or not network.edge_trace:
        return
    try:
        assign_edges(scenario.data.num_clients, network.num_edges, scenario.run.seed,
                     read_edge_trace(network.edge_trace))
    except ValueError as exc:
        text = str(exc)
        raise ConfigError(f"network.{text}" if text.startswith("edge_trace")
                          else f"network.edge_trace {network.edge_trace}: {text}") from exc


VECTORIZE_AUTO_MAX_PARAMS = 1_000_000


def _vectorize(choice: str, layout: ParamLayout, *, recurrent: bool = False) -> bool:
    """Whether clients are trained as batches of models: ``auto`` picks it for small models
    without buffers, where per-step overhead dominates (see benchmarks/README.md), and not for
    the LSTM, which vmap runs as a loop (models/spec.py)."""
    possible = layout.num_trainable == layout.size
    if choice == "on" and not possible:
        raise ConfigError("resources.vectorize = 'on' needs a model without buffers (e.g. no BatchNorm): use 'off'")
    if choice == "auto":
        return possible and not recurrent and layout.size <= VECTORIZE_AUTO_MAX_PARAMS
    return choice == "on"
