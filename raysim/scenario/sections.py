"""The scenario file: TOML in, one frozen ``Scenario`` tree out, validated once at load.

Every section is a keyword-only frozen dataclass; ``config.build`` rejects unknown keys and
wrong types, each ``__post_init__`` checks ranges, and ``combinations.py`` checks the
rules that span sections (a cohort no larger than the population, FedSGD's full-batch step, ...).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from raysim.algorithms.attacks import ATTACKS
from raysim.algorithms.personal import PersonalConfig
from raysim.algorithms.robust import ROBUST_AGGREGATORS
from raysim.algorithms.server_opt import SERVER_OPTIMIZERS, make_server_optimizer
from raysim.compression.config import CompressionConfig
from raysim.contribution import ContributionConfig
from raysim.data import DATASETS, IID, PARTITIONS
from raysim.incentives.config import IncentiveConfig
from raysim.inputs import ConfigError, at_least, is_file
from raysim.models.learning_task import TASK_KINDS
from raysim.network.config import NetworkConfig
from raysim.privacy.stage import PrivacyConfig
from raysim.runtime.resources import RayConfig, ResourcesConfig
from raysim.scenario.combinations import check_combinations
from raysim.scenario.config import apply_override, build, to_table
from raysim.sim.cost.devices import SystemConfig
from raysim.sim.kernel.evaluation import EvaluationConfig
from raysim.sim.policies import POLICIES, SyncPolicy
from raysim.sim.selection import SELECTORS, UniformSelection

STRATEGIES = {
    "fedavg": "FedAvg: clients train locally, the server averages their deltas (server.optimizer on the mean)",
    "fedsgd": "FedSGD: one full-batch gradient per client, averaged and applied with server.lr",
    "fednova": "FedNova: deltas normalised by each client's local steps before averaging",
    "scaffold": "SCAFFOLD (option II): client and server control variates correct client drift",
}
WEIGHTINGS = ("samples", "uniform")
# the user's own data, by data.dataset, and the keys that apply to each ("function": a user's
# "package.module:function")
USER_DATA = {"table": "Parquet or CSV file", "leaf": "LEAF folder holding train/ and test/"}
USER_DATA_KEYS = {"path": ("table", "leaf"), "label": ("table",), "features": ("table",), "client": ("table",),
                  "test_path": ("table",), "options": ("function",)}
MAX_SYNTHETIC_DEVICES = 100_000  # Synthetic devices average ~400 x 60 floats: ~10 GB at this bound
AGGREGATORS = ("mean", *ROBUST_AGGREGATORS)
# run.name is the run's folder under --results: no separator, no '.' or '..', nothing a shell,
# a terminal or a plot title reads as more than text
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    name: str
    seed: int = 0
    rounds: int = 10
    eval_every: int = 1
    executor: Literal["ray", "local"] = "ray"
    sim_time_limit: float = 0.0  # stop once simulated time passes this (0 = only ``rounds``)
    checkpoint_every: int = 1  # rounds between checkpoints for ``raysim run --resume`` (0 = never)
    # rounds between kept global models, models/round-<N>.safetensors (0 = the final model only); written
    # to scenario.toml only when set, so the checkpoints of scenarios without it still fit (config.to_table)
    save_model_every: int = field(default=0, metadata={"written_when_set": True})

    def __post_init__(self) -> None:
        if not RUN_NAME.fullmatch(self.name):
            raise ValueError(f"name = {self.name[:120]!r} must be a folder name: 1 to 100 ASCII letters, digits, "
                             "'_', '-' and '.', starting with a letter, digit or '_' (e.g. 'fmnist_fedavg')")
        at_least("seed", self.seed, 0)
        at_least("rounds", self.rounds, 1)
        at_least("eval_every", self.eval_every, 1)
        at_least("sim_time_limit", self.sim_time_limit, 0.0)
        at_least("checkpoint_every", self.checkpoint_every, 0)
        at_least("save_model_every", self.save_model_every, 0)


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """Parameters of FedProx's Synthetic(alpha, beta) generator (data.dataset = 'synthetic')."""

    alpha: float = 1.0
    beta: float = 1.0
    iid: bool = False

    def __post_init__(self) -> None:
        at_least("alpha", self.alpha, 0.0)
        at_least("beta", self.beta, 0.0)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    dataset: str
    num_clients: int = 100
    root: str = ""
    download: bool = False
    partition: Any = field(default_factory=IID, metadata={"registry": PARTITIONS})
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    # the data seed (synthetic devices, partition, held-out examples); absent: run.seed. Setting it
    # lets repeats over training seeds share one partition, or vary it on its own
    seed: int | None = None
    # the user's own data: dataset = "table" (a Parquet or CSV file at ``path``, data/table.py),
    # "leaf" (a LEAF folder at ``path``, data/leaf.py) or "package.module:function" (data/user_data.py,
    # called with ``options``)
    path: str = ""
    label: str = ""  # table: the label column
    features: tuple[str, ...] = ()  # table: the feature columns (empty: all but the label and client)
    client: str = ""  # table: the column naming each row's client (partition = "natural" groups by it)
    test_path: str = ""  # table: a test file with the same columns; else test_share of the rows
    test_share: float = 0.2
    standardize: bool = True  # table: features scaled by the training rows' mean and std
    options: dict = field(default_factory=dict)  # a user function's keyword arguments

    def __post_init__(self) -> None:
        if self.seed is not None:
            at_least("seed", self.seed, 0)
        if self.dataset not in (*DATASETS, *USER_DATA) and ":" not in self.dataset:
            raise ValueError(f"dataset = {self.dataset!r} is unknown; choose one of {sorted(DATASETS)}, "
                             f"'table' (a Parquet or CSV file), 'leaf' (a LEAF folder) or a function of yours "
                             f"as 'package.module:function'")
        self._check_user_data_keys()
        at_least("num_clients", self.num_clients, 1)
        if self.root:
            is_file("root", self.root)  # only for its error: a root that cannot be a path
        if self.dataset == "synthetic" and self.num_clients > MAX_SYNTHETIC_DEVICES:
            raise ValueError(f"num_clients = {self.num_clients} synthetic devices would need about "
                             f"{self.num_clients / 1e4:.3g} GB of memory: use at most {MAX_SYNTHETIC_DEVICES}")

    def _check_user_data_keys(self) -> None:
        """Each key of the user's own data applies to its kind only, and the needed ones are set."""
        kind = "function" if ":" in self.dataset else self.dataset
        for key in ("path", "label", "features", "client", "test_path", "options"):
            if getattr(self, key) and kind not in USER_DATA_KEYS[key]:
                raise ValueError(f"{key} is for dataset = {' or '.join(repr(k) for k in USER_DATA_KEYS[key])}, "
                                 f"not {self.dataset!r}: leave it out")
        if kind in ("table", "leaf") and not self.path:
            raise ValueError(f"dataset = {kind!r} needs path (the {USER_DATA[kind]})")
        if kind == "table" and not self.label:
            raise ValueError("dataset = 'table' needs label (the column to predict)")
        if not 0 < self.test_share < 1:
            raise ValueError(f"test_share must be in (0, 1), got {self.test_share}")
        for key in ("path", "test_path"):
            if getattr(self, key):
                is_file(key, getattr(self, key))  # only for its error: a value that cannot be a path


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """``[task]``: what the model learns (models/learning_task.py): ``kind`` is "classification",
    "regression", "next_token" or a task of yours as "package.module:Name", built with ``options``."""

    kind: str = "classification"
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS and ":" not in self.kind:
            raise ValueError(f"kind = {self.kind!r} is unknown; choose one of {sorted(TASK_KINDS)} "
                             "or name a class of yours as 'package.module:Name'")
        if self.options and ":" not in self.kind:
            raise ValueError("options are for a task of yours ('package.module:Name')")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    name: str = "logreg"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    epochs: int = 1
    batch_size: int = 10
    optimizer: Literal["sgd"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    proximal_mu: float = 0.0
    straggler_fraction: float = 0.0  # FedProx's systems heterogeneity: this share of each cohort
    # runs a random number of epochs in {1, ..., epochs - 1} (the authors' code)
    # the local update: "" (the strategy's own: SGD, SCAFFOLD's client for SCAFFOLD) or a user's
    # "package.module:Name" (models/algorithm.py's protocol), built with algorithm_options
    algorithm: str = ""
    algorithm_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.algorithm not in ("", "sgd") and ":" not in self.algorithm:
            raise ValueError(f"algorithm = {self.algorithm!r}: leave it out (the strategy's own local update), "
                             "or name a class of yours as 'package.module:Name'")
        if self.algorithm_options and ":" not in self.algorithm:
            raise ValueError("algorithm_options are for a user algorithm ('package.module:Name')")
        at_least("epochs", self.epochs, 1)
        if not 0 <= self.straggler_fraction <= 1:
            raise ValueError(f"straggler_fraction must be in [0, 1], got {self.straggler_fraction}")
        if self.straggler_fraction and self.epochs < 2:
            raise ValueError("straggler_fraction needs epochs >= 2 (stragglers run 1 to epochs - 1 epochs)")
        at_least("batch_size", self.batch_size, 0)
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        at_least("weight_decay", self.weight_decay, 0.0)
        at_least("proximal_mu", self.proximal_mu, 0.0)


@dataclass(frozen=True, kw_only=True)
class AlgorithmConfig:
    """``[algorithm]``: one user object for both halves of an algorithm, ``kind =
    "package.module:Name"`` built with ``options`` (algorithms/pair.py: ``client(self)`` returns
    the client algorithm, ``server(self)`` the server strategy), so an option both halves need is
    written once. It stands in for ``client.algorithm`` and ``server.strategy``, not beside them."""

    kind: str = ""
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind and ":" not in self.kind:
            raise ValueError(f"kind = {self.kind!r}: name a class of yours as 'package.module:Name' (with "
                             "client(self) and server(self)), or leave [algorithm] out")
        if self.options and not self.kind:
            raise ValueError("options are for the object algorithm.kind names: set kind = 'package.module:Name'")


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """How the server turns updates into a model: strategy, weighting, reducer, optimizer."""

    strategy: str = "fedavg"  # a name of STRATEGIES, or a user's "package.module:Name"
    strategy_options: dict = field(default_factory=dict)  # keyword arguments of a user strategy
    weighting: str = "samples"  # samples | uniform | package.module:function(client_id, samples)
    aggregator: str = "mean"
    trim: int = 1  # trimmed_mean: drop this many largest and smallest per coordinate
    num_byzantine: int = 1  # krum / multi_krum: f
    num_selected: int = 1  # multi_krum: m
    optimizer: str = "sgd"
    lr: float = 1.0
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    drop_stragglers: bool = False  # FedAvg drops stragglers' partial work; FedProx keeps it

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES and ":" not in self.strategy:
            raise ValueError(f"strategy = {self.strategy!r} is unknown; choose one of {sorted(STRATEGIES)} "
                             "or name a class of yours as 'package.module:Name'")
        if self.strategy_options and ":" not in self.strategy:
            raise ValueError("strategy_options are for a user strategy ('package.module:Name')")
        if self.weighting not in WEIGHTINGS and ":" not in self.weighting:
            raise ValueError(f"weighting = {self.weighting!r}: use one of {list(WEIGHTINGS)} or 'package.module:function'")
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator = {self.aggregator!r} is unknown; choose one of {sorted(AGGREGATORS)}")
        if self.optimizer not in SERVER_OPTIMIZERS:
            raise ValueError(f"optimizer = {self.optimizer!r} is unknown; choose one of {sorted(SERVER_OPTIMIZERS)}")
        if self.strategy == "fednova" and self.aggregator != "mean":
            raise ValueError("strategy = 'fednova' normalises the mean: it needs aggregator = 'mean'")
        make_server_optimizer(self.optimizer, lr=self.lr, momentum=self.momentum, beta1=self.beta1,
                              beta2=self.beta2, tau=self.tau)
        for name in ("trim", "num_byzantine", "num_selected"):
            at_least(name, getattr(self, name), 0 if name != "num_selected" else 1)


@dataclass(frozen=True, kw_only=True)
class AttackConfig:
    """``[attack]``: a fraction of clients (chosen from the seed) misbehave, to test robust rules."""

    kind: Literal["none", "sign_flip", "scaled", "gaussian", "label_flip", "free_rider"] = "none"
    fraction: float = 0.0
    scale: float = 1.0  # sign_flip: send -scale * delta
    factor: float = 10.0  # scaled: send factor * delta
    std: float = 1.0  # gaussian: add N(0, std^2) to the delta; free_rider: send N(0, std^2) (0: zeros)

    def __post_init__(self) -> None:
        if not 0 <= self.fraction < 1:
            raise ValueError(f"fraction must be in [0, 1), got {self.fraction}")
        if (self.kind == "none") != (self.fraction == 0):
            raise ValueError("set kind and a fraction > 0 together (kind = 'none' means fraction = 0)")

    def build(self, num_classes: int):
        """The attack object of attacks.py, or None."""
        options = {"sign_flip": {"scale": self.scale}, "scaled": {"factor": self.factor},
                   "gaussian": {"std": self.std}, "label_flip": {"num_classes": num_classes},
                   "free_rider": {"std": self.std}}
        return None if self.kind == "none" else ATTACKS[self.kind](**options[self.kind])


@dataclass(frozen=True, kw_only=True)
class SelectionConfig:
    """Clients per round: an absolute ``clients_per_round`` or a ``fraction`` C of the population;
    and who they are: ``selector`` (sim/selection/: uniform, power_of_choice, oort, or a user's
    ``package.module:Name``)."""

    clients_per_round: int = 0
    fraction: float = 0.0
    selector: Any = field(default_factory=UniformSelection,
                          metadata={"registry": SELECTORS, "user": True, "written_when_set": True})

    def __post_init__(self) -> None:
        if (self.clients_per_round > 0) == (self.fraction > 0):
            raise ValueError("set exactly one of clients_per_round (> 0) or fraction (in (0, 1])")
        at_least("clients_per_round", self.clients_per_round, 0)
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")

    def cohort(self, population: int) -> int:
        """m = max(C * K, 1) as in the FedAvg paper, or the absolute count.

        C * K is floored with a small tolerance: in binary floating point 0.29 * 100 is
        28.999999999999996, which a plain ``int`` turns into 28 clients instead of 29.
        """
        if self.clients_per_round:
            return self.clients_per_round
        return max(math.floor(self.fraction * population + 1e-9), 1)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    run: RunConfig
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    # written to scenario.toml only when set, so scenarios without it hash as before (config.to_table)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig, metadata={"written_when_set": True})
    selection: SelectionConfig = field(default_factory=lambda: SelectionConfig(clients_per_round=10))
    policy: Any = field(default_factory=SyncPolicy, metadata={"registry": POLICIES, "user": True})
    system: SystemConfig = field(default_factory=SystemConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    personal: PersonalConfig = field(default_factory=PersonalConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    contribution: ContributionConfig = field(default_factory=ContributionConfig)
    incentive: IncentiveConfig = field(default_factory=IncentiveConfig)

    def __post_init__(self) -> None:
        check_combinations(self)

    @property
    def data_seed(self) -> int:
        """What the data side draws from: ``data.seed``, else the run's seed."""
        return self.run.seed if self.data.seed is None else self.data.seed

    @property
    def clients_per_round(self) -> int:
        return self.selection.cohort(self.data.num_clients)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(to_table(self))


def parse_scenario(table: Mapping[str, Any], overrides: tuple[str, ...] = ()) -> Scenario:
    """Builds a Scenario from a parsed TOML table after applying ``section.key=value`` overrides."""
    table = _deep_copy(table)
    for assignment in overrides:
        apply_override(table, assignment)
    for section in ("run", "data"):
        if section not in table:
            raise ConfigError(f"missing section [{section}]")
    return build(Scenario, table)


def load_scenario(path: str | Path, overrides: tuple[str, ...] = ()) -> Scenario:
    """Reads and validates a scenario file; raises ConfigError with the key at fault."""
    return parse_scenario(read_table(path), overrides)


def read_table(path: str | Path) -> dict:
    """A scenario file's TOML table, not yet validated (``scenario/vertical.py`` reads it to choose
    the kind; a sweep takes its [sweep] out first)."""
    path = Path(path)
    try:
        exists = is_file("scenario file", str(path))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if not exists:
        raise ConfigError(f"scenario file '{path}' does not exist")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"scenario file '{path}' is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                          "save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"scenario file '{path}' cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario file '{path}' is not valid TOML: {exc}") from exc
    except RecursionError as exc:  # the parser recurses once per level of "[[[..." or "{a={a=..."
        raise ConfigError(f"scenario file '{path}' nests arrays or tables too deeply to be a scenario") from exc
    return table


def _deep_copy(table: Mapping[str, Any]) -> dict:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in table.items()}
