"""The scenario's data set and the checks that tie it to the task and the model.

``[data] dataset`` names a built-in (data/datasets.py), a table (data/table.py), a LEAF folder
(data/leaf.py) or a user's function (data/user_data.py); each comes back as one ``Dataset``.
The learning task (``[task] kind``) decides what the targets must be (classes or values), so a
regression on class labels, a class-based partition of real-valued targets or a classifier asked
to regress is refused here, at load, with the keys to change.
"""

from __future__ import annotations

import numpy as np

from raysim.data import Dataset, load_dataset
from raysim.data.leaf import load_leaf
from raysim.data.table import TableSpec, load_table
from raysim.data.user_data import load_user_data
from raysim.inputs import ConfigError
from raysim.models.learning_task import LearningTask
from raysim.models.spec import MODEL_TARGETS
from raysim.scenario.sections import Scenario


def load_data(scenario: Scenario, task: LearningTask) -> Dataset:
    """Loads ``[data]``'s data set with targets of the kind the task learns (``task.labels``:
    "class" or "value"), checked against the task and the model."""
    data, labels = scenario.data, task.labels
    if data.dataset == "table":
        dataset = load_table(TableSpec(path=data.path, label=data.label, features=tuple(data.features),
                                       client=data.client, test_path=data.test_path, test_share=data.test_share,
                                       target=labels, standardize=data.standardize), seed=scenario.data_seed)
    elif data.dataset == "leaf":
        dataset = load_leaf(data.path)
    elif ":" in data.dataset:
        dataset = load_user_data(data.dataset, data.options, seed=scenario.data_seed, labels=labels)
    else:
        dataset = load_dataset(data.dataset, root=data.root or None, download=data.download, seed=scenario.data_seed,
                               num_devices=data.num_clients, synthetic_alpha=data.synthetic.alpha,
                               synthetic_beta=data.synthetic.beta, synthetic_iid=data.synthetic.iid)
    check_fits_task(scenario, dataset, task)
    return dataset


def check_fits_task(scenario: Scenario, dataset: Dataset, task: LearningTask) -> None:
    """Refuses what the task cannot mean: real-valued targets for a class task (and the reverse),
    a built-in model of the other kind, a partition, an attack or planted noise that needs
    classes, contributions valued by an accuracy the task does not report."""
    kind, labels = scenario.task.kind, task.labels
    is_classes = np.issubdtype(dataset.train_y.dtype, np.integer)
    if labels == "class" and not is_classes:
        raise ConfigError(f"task.kind = {kind!r} needs class labels, but data.dataset = {scenario.data.dataset!r} "
                          f"has real-valued targets: set [task] kind = 'regression'")
    if labels == "value" and is_classes:
        raise ConfigError(f"task.kind = {kind!r} needs real-valued targets, but data.dataset = "
                          f"{scenario.data.dataset!r} has class labels: use a classification task")
    model = scenario.model.name
    made_for = MODEL_TARGETS.get(model)
    if made_for is not None and made_for != labels:
        fitting = sorted(name for name, targets in MODEL_TARGETS.items() if targets == labels)
        raise ConfigError(f"model.name = {model!r} predicts {'classes' if made_for == 'class' else 'values'}, "
                          f"but task.kind = {kind!r} needs {'classes' if labels == 'class' else 'values'}: "
                          f"use one of {fitting} or a model of yours")
    if labels == "value":
        partition = scenario.data.partition
        if getattr(partition, "by_label", False):
            raise ConfigError(f"data.partition = {partition.kind!r} splits by class, and task.kind = {kind!r} has "
                              "no classes: use 'iid', 'quantity', 'natural' or 'sampled'")
        if scenario.attack.kind == "label_flip":
            raise ConfigError(f"attack.kind = 'label_flip' swaps classes, and task.kind = {kind!r} has none: "
                              "use another attack")
        if scenario.contribution.active and scenario.contribution.plant.label_noise:
            raise ConfigError(f"contribution.plant.label_noise replaces classes, and task.kind = {kind!r} has none: "
                              "plant sizes or duplicates instead")
    if scenario.contribution.active and scenario.contribution.metric == "accuracy" and "accuracy" not in task.metrics:
        raise ConfigError(f"contribution.metric = 'accuracy', and task.kind = {kind!r} reports "
                          f"{list(task.metrics)}: set contribution.metric = 'loss'")
