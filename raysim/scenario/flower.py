"""``[flower]``: an unmodified Flower app on raysim's clock (the ``raysim[flower]`` extra).

A scenario with a top-level ``[flower]`` table names a Flower ``ServerApp`` and ``ClientApp`` as
``"package.module:attribute"``, the number of nodes, and the run config both apps read from their
``Context`` (Flower's ``[tool.flwr.app.config]``); ``[system]`` gives the nodes' devices (speed,
links, dropout, availability), ``[resources]`` and ``[ray]`` the actors, as in any run. Each node
gets ``partition-id`` and ``num-partitions`` in its ``node_config``, as Flower's simulation gives
them. The rounds are the ServerApp's to decide (``num-server-rounds`` in its run config, by
Flower's convention); raysim records them as they happen (runs/flower.py).

Nothing here imports flwr until a Flower scenario is checked: without the extra, a Flower
scenario is one line, "pip install 'raysim[flower]'", and exit 2.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Mapping

from raysim.inputs import ConfigError, at_least, import_object
from raysim.runtime.resources import RayConfig, ResourcesConfig
from raysim.scenario.config import apply_override, build, to_table
from raysim.scenario.sections import RunConfig
from raysim.sim.cost.devices import SystemConfig

FLWR_RANGE = ">=1.42,<1.43"  # the flwr versions the Grid here is written and tested against


@dataclass(frozen=True, kw_only=True)
class FlowerConfig:
    """``server_app``, ``client_app``: the app objects; ``num_nodes``: the simulated population;
    ``run_config``: the Context's run config. What a node computes is charged by the examples its
    reply reports: ``examples_key`` in a Message-API reply's MetricRecord (the key the strategy
    weights by, Flower's ``weighted_by_key``), a NumPyClient's ``num_examples``; a train or
    evaluate reply reporting none ends the run. ``local_epochs``: the run-config key whose value
    multiplies a train reply's examples into the examples its device computed (1 when the key is
    absent); ``forward_fraction``: what an evaluated (or queried) example costs as a fraction of a
    trained one, forward passes only (a backward pass costs about two forward ones: 1/3; raysim's
    own client evaluation charges no simulated time). ``metric`` and ``loss``: the evaluate
    replies' metric that judges the run (``test_<metric>`` in rounds.parquet) and their loss,
    examples-weighted as Flower averages them; ``lower_is_better`` when the metric is an error."""

    server_app: str
    client_app: str
    num_nodes: int = 10
    run_config: dict = field(default_factory=dict)
    local_epochs: str = "local-epochs"
    examples_key: str = "num-examples"
    forward_fraction: float = 1 / 3
    metric: str = "accuracy"
    loss: str = "loss"
    lower_is_better: bool = False

    def __post_init__(self) -> None:
        for key in ("server_app", "client_app"):
            if ":" not in getattr(self, key):
                raise ValueError(f"{key} = {getattr(self, key)!r}: name the app object as 'package.module:attribute'")
        at_least("num_nodes", self.num_nodes, 1)
        for key, value in self.run_config.items():
            if not isinstance(value, (bool, int, float, str)):
                raise ValueError(f"run_config.{key} is a {type(value).__name__}: Flower's run config holds "
                                 "numbers, booleans and strings only")
        if not 0 <= self.forward_fraction <= 1:
            raise ValueError(f"forward_fraction = {self.forward_fraction} must be in [0, 1]: an evaluated example's "
                             "compute as a fraction of a trained example's")
        if not self.examples_key:
            raise ValueError("examples_key must name the reply metric that counts a node's examples (e.g. 'num-examples')")
        if not self.metric.isidentifier():
            raise ValueError(f"metric = {self.metric!r} must be a name (a key of the evaluate replies' metrics)")


@dataclass(frozen=True, kw_only=True)
class FlowerScenario:
    run: RunConfig
    flower: FlowerConfig
    system: SystemConfig = field(default_factory=SystemConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        defaults = RunConfig(name="x")
        for key in ("rounds", "eval_every", "sim_time_limit", "checkpoint_every", "save_model_every"):
            if getattr(self.run, key) != getattr(defaults, key):
                raise ConfigError(f"run.{key} has no meaning in a Flower run (the ServerApp decides its rounds, "
                                  "e.g. flower.run_config.num-server-rounds, and a Flower run keeps no checkpoint): "
                                  "remove it")

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(to_table(self))


def parse_flower(table: Mapping[str, Any], overrides: tuple[str, ...] = ()) -> FlowerScenario:
    table = copy.deepcopy(dict(table))
    for assignment in overrides:
        apply_override(table, assignment)
    for section in ("run", "flower"):
        if section not in table:
            raise ConfigError(f"missing section [{section}]")
    return build(FlowerScenario, table)


def check_flower_installed() -> None:
    """The extra's one line when flwr is missing (checked before anything imports it)."""
    if importlib.util.find_spec("flwr") is None:
        raise ConfigError(f"[flower] needs Flower: pip install 'raysim[flower]' (flwr {FLWR_RANGE})")


@dataclass(frozen=True)
class FlowerApps:
    server: Any  # flwr.serverapp.ServerApp
    client: Any  # flwr.clientapp.ClientApp


def load_apps(config: FlowerConfig) -> FlowerApps:
    """Imports both apps and checks what they are, so a wrong name or an object that is not a
    Flower app is one line at load (exit 2), before Ray starts or a folder is written."""
    check_flower_installed()
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    apps = {}
    for key, kind in (("server_app", ServerApp), ("client_app", ClientApp)):
        spec = getattr(config, key)
        obj = import_object(spec, what=f"flower.{key}", choices=[])
        if not isinstance(obj, kind):
            raise ConfigError(f"flower.{key} = {spec!r} is a {type(obj).__name__}, not a Flower {kind.__name__}: "
                              f"name the {kind.__name__}() object the app module defines (e.g. 'app_module:app')")
        apps[key] = obj
    return FlowerApps(server=apps["server_app"], client=apps["client_app"])
