"""Vertical scenarios: a top-level ``[vertical]`` table turns a scenario file into one.

``[run]`` keeps its meaning (``name``, ``seed``, ``executor``; ``rounds`` counts epochs), ``[ray]``
too; ``[vertical]`` names the data set, the trainer and its settings, the network, the HE costs
and ``[[vertical.parties]]``: each party's columns, whether it holds the label, and the column it
joins on. Every check is made here, at load, so a bad file stops before Ray or a results folder.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from raysim.inputs import ConfigError, at_least
from raysim.network.limits import check_latency, check_mbps
from raysim.runtime.resources import RayConfig
from raysim.scenario.config import apply_override, build, to_table
from raysim.scenario.sections import RunConfig, parse_scenario, read_table
from raysim.sim.bridges.vertical import HeCost, LrSettings
from raysim.vertical import data, netshape

MAX_COLUMNS = 100_000
MAX_SYNTHETIC_VALUES = 200_000_000  # rows x columns of float32: 800 MB
TRAINERS = {
    "paillier_lr": "Hardy et al. 2017: parties' scores and residuals cross only as Paillier ciphertexts, "
                   "re-randomised when they go back to a party that made them; a coordinator decrypts masked "
                   "gradients (semi-honest parties, no collusion with the coordinator); each party learns its own "
                   "gradient, a linear function of the batch's labels at w = 0 (all of them when a batch has no "
                   "more rows than the party has columns); scoring after each epoch hands the label party the "
                   "others' plaintext scores X_k w_k, as FATE's prediction does (summary.json: disclosure)",
    "paillier_lr_hidden": "Hardy et al. 2017 with hide_gradients: every party's weights stay encrypted under the "
                          "coordinator's key from start to end (the final model too), so no party ever sees a "
                          "plaintext gradient, weight, residual or another party's scores; the coordinator decrypts "
                          "only masked updates (to rescale them) and masked total scores; after each epoch the label "
                          "party learns the total score z of every train and test row, nothing per party "
                          "(semi-honest parties, no collusion with the coordinator; summary.json: disclosure)",
    "plain_lr": "none: the same Taylor-loss logistic regression with scores and residuals in plaintext "
                "(the exactness reference for paillier_lr)",
    "splitnn": "no cryptography: raw columns and labels stay at their party, but embeddings and their "
               "gradients cross in plaintext and can leak features and labels",
}


def column_list(spec: str) -> list[int]:
    """'0-9,12' -> [0, ..., 9, 12]."""
    columns = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"columns = {spec!r}: '{part}' is not a column number or a range like '0-9'")
        first, last = int(low), int(high or low)
        if last < first or last - first > MAX_COLUMNS:
            raise ValueError(f"columns = {spec!r}: the range '{part}' must run upwards, over at most "
                             f"{MAX_COLUMNS} columns")
        columns.extend(range(first, last + 1))
    return columns


@dataclass(frozen=True, kw_only=True)
class PartyConfig:
    name: str
    columns: str = ""  # column numbers and ranges, e.g. "0-9,12"
    label: bool = False  # the active party: labels, the top model, the loss
    id_column: str = ""  # the column rows are joined on; the built-in data sets call it "id"

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ "):
            raise ValueError(f"name must be a non-empty word, got {self.name!r}")
        if not self.id_column:
            raise ValueError(f"id_column is missing for party '{self.name}': rows are joined by PSI on an "
                             f"id column; add id_column = \"{data.ID_COLUMN}\"")
        if self.id_column != data.ID_COLUMN:
            raise ValueError(f"id_column = {self.id_column!r} (party '{self.name}') is not a column of the "
                             f"data set; its id column is \"{data.ID_COLUMN}\"")
        if not column_list(self.columns):
            raise ValueError(f"party '{self.name}' has no columns: give it some, e.g. columns = \"0-9\", "
                             "or remove the party")


@dataclass(frozen=True, kw_only=True)
class LrConfig:
    learning_rate: float = 0.15
    l2: float = 0.01
    scale_bits: int = 20
    key_bits: int = 1024  # Paillier modulus; 1,024 keeps runs quick, real deployments use >= 2,048
    hide_gradients: bool = False  # paillier_lr: weights only encrypted, no party sees a plaintext gradient

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        at_least("l2", self.l2, 0.0)
        if not 8 <= self.scale_bits <= 40:
            raise ValueError(f"scale_bits must be in [8, 40], got {self.scale_bits}")
        if not 512 <= self.key_bits <= 4096 or self.key_bits % 8:
            raise ValueError(f"key_bits must be a multiple of 8 in [512, 4096], got {self.key_bits}")

    def settings(self) -> LrSettings:
        return LrSettings(learning_rate=self.learning_rate, l2=self.l2, scale_bits=self.scale_bits,
                          key_bits=self.key_bits, hide_gradients=self.hide_gradients)


@dataclass(frozen=True, kw_only=True)
class VerticalNetworkConfig:
    bandwidth_mbps: float = 100.0
    latency_s: float = 0.01

    def __post_init__(self) -> None:  # the ranges every link has (network/limits.py)
        check_mbps("bandwidth_mbps", self.bandwidth_mbps)
        check_latency("latency_s", self.latency_s)


@dataclass(frozen=True, kw_only=True)
class HeCostConfig:
    """Simulated seconds per Paillier operation (defaults: ``sim/bridges/vertical.py:HeCost``)."""

    encrypt_s: float = HeCost.encrypt_s
    decrypt_s: float = HeCost.decrypt_s
    mul_s: float = HeCost.mul_s
    add_s: float = HeCost.add_s
    rerandomise_s: float = HeCost.rerandomise_s

    def __post_init__(self) -> None:
        for name in ("encrypt_s", "decrypt_s", "mul_s", "add_s", "rerandomise_s"):
            at_least(name, getattr(self, name), 0.0)


@dataclass(frozen=True, kw_only=True)
class VerticalConfig:
    dataset: Literal["breast", "fashion_mnist", "synthetic"]
    trainer: Literal["paillier_lr", "plain_lr", "splitnn"]
    parties: tuple[PartyConfig, ...] = ()
    batch_size: int = 64  # 0 = full batch
    overlap: float = 1.0  # share of the people every party holds; the rest are at one party only
    test_fraction: float = 0.25  # held-out share (breast, synthetic; Fashion-MNIST has its test set)
    max_train: int = 0  # keep a seeded subset of the training rows (0 = all)
    max_test: int = 0
    rows: int = 1000  # synthetic only
    columns: int = 20  # synthetic only
    root: str = ""  # Fashion-MNIST's IDX folder, if not in the usual places
    lr: LrConfig = field(default_factory=LrConfig)
    splitnn: netshape.NetShape = field(default_factory=netshape.NetShape)
    network: VerticalNetworkConfig = field(default_factory=VerticalNetworkConfig)
    he: HeCostConfig = field(default_factory=HeCostConfig)

    def __post_init__(self) -> None:
        self._check_parties()
        if self.trainer != "splitnn" and data.num_classes(self.dataset) != 2:
            raise ValueError(f"trainer = {self.trainer!r} needs two classes; {self.dataset} has "
                             f"{data.num_classes(self.dataset)}: use trainer = 'splitnn'")
        if self.lr.hide_gradients and self.trainer != "paillier_lr":
            raise ConfigError(f"vertical.lr.hide_gradients = true needs trainer = 'paillier_lr' (it keeps the "
                              f"weights encrypted), got {self.trainer!r}: remove it or change the trainer")
        if not 0 < self.overlap <= 1 or not 0 < self.test_fraction < 1:
            raise ValueError(f"overlap must be in (0, 1] and test_fraction in (0, 1), got {self.overlap} "
                             f"and {self.test_fraction}")
        for name in ("batch_size", "max_train", "max_test"):
            at_least(name, getattr(self, name), 0)
        at_least("rows", self.rows, 10)
        at_least("columns", self.columns, len(self.parties))
        if self.dataset == "synthetic" and self.rows * self.columns > MAX_SYNTHETIC_VALUES:
            raise ValueError(f"rows x columns = {self.rows * self.columns} synthetic values would not fit in memory: "
                             f"keep it at most {MAX_SYNTHETIC_VALUES}")

    def _check_parties(self) -> None:
        """Raises ConfigError naming ``vertical.parties`` (not the bare field name)."""
        key = "vertical.parties"
        if len(self.parties) < 2:
            raise ConfigError(f"{key}: a vertical run needs at least two [[vertical.parties]], one with label = true")
        names = [p.name for p in self.parties]
        if len(set(names)) < len(names):
            raise ConfigError(f"{key}: names must be distinct, got {names}")
        labelled = [p.name for p in self.parties if p.label]
        if not labelled:
            raise ConfigError(f"{key}: no party holds the label; set label = true on one of [[vertical.parties]]")
        if len(labelled) > 1:
            raise ConfigError(f"{key}: only one party can hold the label, got {labelled}; keep label = true on one")
        total = data.num_columns(self.dataset, self.columns)
        owner: dict[int, str] = {}
        for p in self.parties:
            for c in column_list(p.columns):
                if c >= total:
                    raise ConfigError(f"{key}: column {c} of party '{p.name}' does not exist; {self.dataset} has "
                                      f"columns 0-{total - 1}")
                if c in owner and owner[c] != p.name:
                    raise ConfigError(f"{key}: column {c} is assigned to both '{owner[c]}' and '{p.name}'; "
                                      "give each column to one party")
                owner[c] = p.name

    @property
    def ordered(self) -> list[PartyConfig]:
        """The label party first, the others in file order."""
        return sorted(self.parties, key=lambda p: not p.label)


@dataclass(frozen=True, kw_only=True)
class VerticalScenario:
    run: RunConfig
    vertical: VerticalConfig
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        defaults = RunConfig(name="x")
        for key in ("eval_every", "sim_time_limit", "checkpoint_every", "save_model_every"):
            if getattr(self.run, key) != getattr(defaults, key):
                raise ConfigError(f"run.{key} has no meaning in a vertical run (every epoch is scored, none is "
                                  "checkpointed): remove it; run.rounds counts epochs")

    @property
    def privacy(self) -> str:
        hidden = self.vertical.trainer == "paillier_lr" and self.vertical.lr.hide_gradients
        return TRAINERS["paillier_lr_hidden" if hidden else self.vertical.trainer]

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(to_table(self))


def parse_vertical(table: Mapping[str, Any], overrides: tuple[str, ...] = ()) -> VerticalScenario:
    table = copy.deepcopy(dict(table))
    for assignment in overrides:
        apply_override(table, assignment)
    if "run" not in table:
        raise ConfigError("missing section [run]")
    return build(VerticalScenario, table)


def load_any(path: str | Path, overrides: tuple[str, ...] = ()):
    """A scenario file as a ``Scenario``, or as a ``VerticalScenario`` when it has ``[vertical]``,
    or a ``FlowerScenario`` when it has ``[flower]``."""
    return parse_any(read_table(path), overrides)


def parse_any(table: Mapping[str, Any], overrides: tuple[str, ...] = ()):
    """A scenario's table as :func:`load_any` reads a file's: the kind chosen by its sections."""
    if "flower" in table:
        from raysim.scenario.flower import parse_flower

        return parse_flower(table, overrides)
    return parse_vertical(table, overrides) if "vertical" in table else parse_scenario(table, overrides)


@dataclass(frozen=True)
class PreparedVertical:
    """The parties' shares (label party first) and what the central reference needs."""

    names: list[str]
    shares: list[data.Share]
    table: data.Table
    people_ids: np.ndarray
    columns: list[list[int]]


def prepare_vertical(scenario: VerticalScenario) -> PreparedVertical:
    v, seed = scenario.vertical, scenario.run.seed
    table = data.load_table(v.dataset, seed=seed, root=v.root or None, rows=v.rows, columns=v.columns,
                            test_fraction=v.test_fraction, max_train=v.max_train, max_test=v.max_test)
    columns = [column_list(p.columns) for p in v.ordered]
    shares, ids = data.split(table, columns, label_party=0, overlap=v.overlap, seed=seed)
    check_aligned(v, shares)
    return PreparedVertical([p.name for p in v.ordered], shares, table, ids, columns)


def check_aligned(v: VerticalConfig, shares: list[data.Share]) -> None:
    """Refuses data that PSI would leave untrainable: no row every party holds, no aligned
    training or test row, or training rows of one class. Known before PSI runs (the rows every
    party holds are what it finds), so ``raysim validate`` refuses them too."""
    label = shares[0]
    common = np.ones(len(label.ids), dtype=bool)
    for other in shares[1:]:
        common &= np.isin(label.ids, other.ids)
    if not common.any():
        raise ConfigError(f"vertical.overlap = {v.overlap}: the parties have no row in common among "
                          f"{len(label.ids)} rows, so PSI leaves nothing to train on; raise vertical.overlap "
                          "(or the rows: vertical.rows, max_train, max_test)")
    train, test = common & ~label.held_out, common & label.held_out
    if not test.any():
        raise ConfigError(f"vertical.test_fraction = {v.test_fraction}, max_test = {v.max_test}: none of the "
                          f"{int(common.sum())} aligned rows is held out for testing; raise vertical.test_fraction "
                          "or max_test (or vertical.overlap)")
    classes = np.unique(label.labels[train])
    if len(classes) < 2:
        found = f"one class only ({int(classes[0])})" if len(classes) else "no row"
        raise ConfigError(f"vertical.max_train = {v.max_train}, overlap = {v.overlap}: the {int(train.sum())} "
                          f"aligned training rows hold {found}; training needs two classes: raise "
                          "vertical.max_train or vertical.overlap")


def central_reference(scenario: VerticalScenario, prepared: PreparedVertical, aligned_ids: np.ndarray,
                      train: np.ndarray, test: np.ndarray, batch_order: list[list[np.ndarray]]) -> list[dict]:
    """The same model on all columns, on the rows PSI aligned, in the same train/test split:
    sklearn's LogisticRegression for the LR trainers (one result), the SplitNN network trained
    centrally for SplitNN (one result per epoch)."""
    from raysim.vertical import reference  # torch: only this process's reference needs it

    person = {int(i): n for n, i in enumerate(prepared.people_ids)}
    rows = np.array([person[int(i)] for i in aligned_ids])
    t = prepared.table
    parts = [t.features[rows][:, cols].reshape(len(rows), -1) for cols in prepared.columns]
    y = t.labels[rows]
    if scenario.vertical.trainer != "splitnn":
        x = np.hstack(parts)
        return [reference.logistic(x[train], y[train], x[test], y[test])]
    seeds = [netshape.init_seed(scenario.run.seed, k) for k in range(len(parts) + 1)]
    curve = reference.split_network([p[train] for p in parts], y[train], [p[test] for p in parts], y[test],
                                    shape=scenario.vertical.splitnn, classes=t.num_classes, seeds=seeds,
                                    batches=batch_order)
    return [{f"test_{k}": v for k, v in epoch.items()} for epoch in curve]
