"""What a scenario's names become: the client optimiser, the attackers, the server strategy,
and the driver's parts (``driver_parts``).

Kept apart from the driver, which only runs them, and from sections.py, which only validates.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from raysim.algorithms.attacks import choose_attackers
from raysim.algorithms.pair import ClientHalf, build_pair, half_of
from raysim.algorithms.personal import PersonalLayers, local_mask
from raysim.algorithms.server_opt import make_server_optimizer
from raysim.algorithms.sgd import SGDConfig
from raysim.algorithms.scaffold import ScaffoldServer
from raysim.algorithms.strategy import RunFacts, ServerStrategy, Strategy
from raysim.inputs import (ConfigError, build_user_object, check_method, import_function, parameter_names,
                           refuse_script_code)
from raysim.models.layout import ParamLayout
from raysim.models.learning_task import LearningTask, build_task
from raysim.privacy.stage import PrivacyStage
from raysim.scenario.combinations import max_clients_per_round, policy_kind
from raysim.scenario.config import to_table, toml_value
from raysim.scenario.sections import STRATEGIES, WEIGHTINGS, AlgorithmConfig, Scenario
from raysim.compression.channel import Channel
from raysim.sim.stages.chain import Chain
from raysim.sim.cost.devices import Population
from raysim.sim.cost.links import NetworkLinks
from raysim.sim.cost.payload import payload
from raysim.sim.kernel.parts import ClientSchedule, DriverParts, RunLimits
from raysim.sim.stages.attack import AttackStage
from raysim.sim.stages.compression import CompressionStage
from raysim.sim.stages.contribution import ContributionStage
from raysim.sim.stages.evaluation import EvaluationStage
from raysim.sim.stages.incentives import IncentiveStage
from raysim.sim.stages.ledger import ChainStage, CommitteeStage
from raysim.sim.stages.links import LinksStage
from raysim.sim.stages.privacy import PrivacyBudgetStage
from raysim.sim.stages.stage import Stage
from raysim.sim.kernel.tasks import ClientIndices


def client_sgd(scenario: Scenario) -> SGDConfig:
    """The client optimiser a scenario asks for. FedSGD: one step with lr 1, so the delta is minus
    the gradient of the client's loss, weight decay included (momentum and the proximal term
    vanish at the first step from the global model)."""
    client = scenario.client
    if scenario.server.strategy == "fedsgd":
        return SGDConfig(lr=1.0, weight_decay=client.weight_decay)
    return SGDConfig(lr=client.lr, momentum=client.momentum, weight_decay=client.weight_decay,
                     proximal_mu=client.proximal_mu)


def attackers(scenario: Scenario) -> list[int]:
    """The misbehaving clients, a function of the seed alone."""
    if scenario.attack.kind == "none":
        return []
    return [int(c) for c in choose_attackers(scenario.data.num_clients, scenario.attack.fraction, scenario.run.seed)]


WEIGHTING_PARAMETERS = ("client_id", "samples")  # a user weighting's documented signature


def user_weighting(spec: str) -> Callable[[int, int], float]:
    """The user function ``server.weighting`` names, checked to be a ``def`` taking exactly
    (client_id, samples) before anything calls it (``inputs.import_function``)."""
    return import_function(spec, what="server.weighting", choices=list(WEIGHTINGS),
                           parameters=WEIGHTING_PARAMETERS)


@dataclass(frozen=True)
class UserObjects:
    """Objects handed to ``raysim.api.run`` from a notebook or script in place of names: a client
    algorithm (class or object), a server strategy (class or object), an algorithm providing
    both halves (class or object, ``[algorithm]``) and a policy (the settings dataclass's
    object). They are checked as the names would be; the scenario records each as its class's
    ``package.module:Name`` and its options (:func:`handed_options`), so that a run of objects
    from a module is resumed from its folder as the same run."""

    client_algorithm: Any = None
    strategy: Any = None
    policy: Any = None
    algorithm: Any = None

    def named(self, scenario: Scenario) -> Scenario:
        """``scenario`` with these objects in place (its record names their classes and options);
        ConfigError when it names a class of a script that no object here stands for (a run
        folder's ``scenario.toml`` loaded again without the object), or when the objects do not
        combine with its keys (``[algorithm]`` and a client algorithm), before anything starts."""
        try:
            return self._named(scenario)
        except ConfigError:
            raise
        except ValueError as exc:  # a rule across sections (scenario/combinations.py)
            raise ConfigError(f"raysim.api.run: {exc}") from exc

    def _named(self, scenario: Scenario) -> Scenario:
        handed = []
        if self.client_algorithm is not None:
            options = handed_options(self.client_algorithm, "client_algorithm")
            scenario = replace(scenario, client=replace(scenario.client, algorithm=_class_name(self.client_algorithm),
                                                        algorithm_options=options))
            handed.append("client.algorithm")
        if self.strategy is not None:
            options = handed_options(self.strategy, "strategy")
            scenario = replace(scenario, server=replace(scenario.server, strategy=_class_name(self.strategy),
                                                        strategy_options=options))
            handed.append("server.strategy")
        if self.algorithm is not None:
            recorded = AlgorithmConfig(kind=_class_name(self.algorithm),
                                       options=handed_options(self.algorithm, "algorithm"))
            scenario = replace(scenario, algorithm=recorded)
            handed.append("algorithm.kind")
        if self.policy is not None:
            check_method(type(self.policy), "build", ("self",), what=f"policy {_class_name(self.policy)}")
            scenario = replace(scenario, policy=self.policy)
            handed.append("policy.kind")
        refuse_script_code(to_table(scenario), handed=handed, where="raysim.api.run")
        return scenario


def _class_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def handed_options(obj: Any, what: str) -> dict[str, Any]:
    """The options an object handed to ``raysim.api.run`` was built with, as the run folder
    records them: its constructor's parameters, read back from its attributes of the same names
    (the convention scikit-learn's ``get_params`` reads; a dataclass keeps it by itself). A class
    handed in is built with none. ConfigError when a parameter is not kept so, or its value is no
    TOML value: the folder could not say how to build the object again."""
    if isinstance(obj, type):
        return {}
    init = type(obj).__init__
    names = parameter_names(init)[1:] if init is not object.__init__ else ()
    missing = [name for name in names if not hasattr(obj, name)]
    if missing or (names and init.__code__.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)):
        raise ConfigError(f"{what} {_class_name(obj)}: its options cannot be recorded, since "
                          + (f"its constructor's parameter {missing[0]!r} is not kept as self.{missing[0]}"
                             if missing else "its constructor takes *args or **kwargs")
                          + ": keep each parameter as an attribute of the same name (a dataclass does), or hand "
                          "in the class, so that the run folder says how to build it again")
    return toml_value({name: getattr(obj, name) for name in names}, f"{what} {_class_name(obj)}: its option")


def client_algorithm(scenario: Scenario, objects: UserObjects | None = None) -> tuple[Any, dict]:
    """What the workers build their client algorithm from (``models/algorithm.py:build_algorithm``):
    the object handed in (or the client half of the algorithm handed in), the client half of
    ``[algorithm]`` (its name and options: each worker builds it), the user's name, or raysim's
    own for the strategy (SCAFFOLD's client, else SGD); and its options."""
    if objects is not None and objects.client_algorithm is not None:
        return objects.client_algorithm, {}
    if objects is not None and objects.algorithm is not None:
        return half_of(build_pair(objects.algorithm, {}), "client"), {}
    if scenario.algorithm.kind:
        return ClientHalf(scenario.algorithm.kind, dict(scenario.algorithm.options)), {}
    if scenario.client.algorithm not in ("", "sgd"):
        return scenario.client.algorithm, dict(scenario.client.algorithm_options)
    return ("scaffold" if scenario.server.strategy == "scaffold" else "sgd"), {}


def run_facts(scenario: Scenario) -> RunFacts:
    """What a strategy may be told of the run (``init(self, params, run)``)."""
    return RunFacts(population=scenario.data.num_clients, cohort=scenario.clients_per_round, seed=scenario.run.seed)


def make_strategy(scenario: Scenario, objects: UserObjects | None = None,
                  client_sizes: Sequence[int] | None = None, trainable: int = 0) -> ServerStrategy:
    """The server strategy: a user's (handed in, or named ``package.module:Name`` and built with
    ``server.strategy_options``, or the server half of ``[algorithm]``), else the composition of
    the scenario's weighting, reducer and server optimizer, inside SCAFFOLD's server for SCAFFOLD
    (``client_sizes`` give its shares, ``trainable`` the model's parameters that have a control)."""
    if objects is not None and objects.strategy is not None:
        return user_strategy(objects.strategy, {}, run_facts(scenario))
    pair = user_pair(scenario, objects)
    if pair is not None:
        return user_strategy(half_of(pair, "server"), {}, run_facts(scenario),
                             what=f"algorithm.kind '{scenario.algorithm.kind}': its server()")
    if ":" in scenario.server.strategy:
        return user_strategy(scenario.server.strategy, scenario.server.strategy_options, run_facts(scenario))
    strategy = composed_strategy(scenario)
    if scenario.server.strategy != "scaffold":
        return strategy
    if client_sizes is None:
        raise ValueError("SCAFFOLD's server needs the clients' sizes for its shares")
    weights = strategy.weights_of(range(len(client_sizes)), client_sizes)
    return ScaffoldServer(inner=strategy, shares=weights / weights.sum(), lr=strategy.client_sgd.lr,
                          trainable=trainable)


TAKES_RUN = ("self", "params", "run")  # the init of a strategy that is handed the run's facts


def user_pair(scenario: Scenario, objects: UserObjects | None = None) -> Any:
    """The algorithm object providing both halves (algorithms/pair.py), handed in or named by
    ``[algorithm]`` and built with its options; None when there is none."""
    if objects is not None and objects.algorithm is not None:
        return build_pair(objects.algorithm, {})
    return build_pair(scenario.algorithm.kind, scenario.algorithm.options) if scenario.algorithm.kind else None


def user_strategy(spec: Any, options: dict, run: RunFacts, *, what: str = "server.strategy") -> ServerStrategy:
    """A user's strategy: its class checked to define ``init(self, params)`` or ``init(self,
    params, run)`` and ``aggregate(self, params, state, updates)`` (and ``broadcast(self, state)``
    if any) before it is built with ``options`` (``inputs.build_user_object``, which imports it,
    once); one whose ``init`` takes ``run`` is handed the run's facts through :class:`GivenRunFacts`.
    Errors name ``what``: the key, or the ``[algorithm]`` whose server half it is."""
    strategy = build_user_object(spec, options, what=what, choices=sorted(STRATEGIES),
                                 methods={"init": [("self", "params"), TAKES_RUN],
                                          "aggregate": ("self", "params", "state", "updates")},
                                 optional={"broadcast": ("self", "state")})
    return GivenRunFacts(strategy, run) if parameter_names(type(strategy).init) == TAKES_RUN else strategy


class GivenRunFacts:
    """A user's strategy whose ``init`` takes the run's facts: the driver calls ``init(params)``
    as on any strategy, and this hands the facts on; every other method is the strategy's own."""

    def __init__(self, strategy: Any, run: RunFacts):
        self.strategy, self.run = strategy, run

    def init(self, params):
        return self.strategy.init(params, self.run)

    def __getattr__(self, name: str):  # aggregate, and broadcast where the strategy has one
        if name.startswith("__") or "strategy" not in self.__dict__:  # pickling looks up dunders early
            raise AttributeError(name)
        return getattr(self.__dict__["strategy"], name)


def composed_strategy(scenario: Scenario) -> Strategy:
    """Composes the scenario's weighting, reducer and server optimizer."""
    server = scenario.server
    weighting = server.weighting
    if ":" in weighting:
        weighting = user_weighting(weighting)
    reducer = "fednova" if server.strategy == "fednova" else server.aggregator
    params = {"trimmed_mean": {"trim": server.trim}, "krum": {"num_byzantine": server.num_byzantine},
              "multi_krum": {"num_byzantine": server.num_byzantine, "num_selected": server.num_selected}}
    optimizer = make_server_optimizer(server.optimizer, lr=server.lr, momentum=server.momentum,
                                      beta1=server.beta1, beta2=server.beta2, tau=server.tau)
    return Strategy(server_optimizer=optimizer, weighting=weighting, reducer=reducer,
                    reducer_params=params.get(reducer, {}), client_sgd=client_sgd(scenario))


def driver_parts(scenario: Scenario, *, layout: ParamLayout, num_classes: int, num_clients: int,
                 client_sizes: Sequence[int] | None = None, objects: UserObjects | None = None,
                 test_size: int = 0, holdout: ClientIndices | None = None,
                 validation: np.ndarray | None = None) -> DriverParts:
    """The one place a scenario becomes the driver's parts: its policy, strategy, population,
    personal layers, privacy, limits, client schedule and its stages (``stages``).
    ``test_size``, ``holdout`` and ``validation``: the prepared data's test-set size, clients'
    held-out rows and the server's validation rows, which the evaluating stages score on."""
    prefixes = scenario.personal.local_layers
    personal = PersonalLayers(local_mask(layout, prefixes)) if prefixes else None
    # what crosses the (simulated) network: the body only, when heads stay on the clients
    exchange_bytes = round(layout.nbytes * (personal.body_fraction if personal else 1.0))
    population = Population(scenario.system, num_clients, scenario.run.seed)
    privacy = (PrivacyStage(scenario.privacy, seed=scenario.run.seed, population=num_clients,
                            cohort=scenario.clients_per_round, drawn=max_clients_per_round(scenario),
                            link=population.link, update_bytes=exchange_bytes, num_params=layout.size)
               if scenario.privacy.active else None)
    run, client, network = scenario.run, scenario.client, scenario.network
    channel = scenario.compression.channel(layout.tensor_sizes)
    built = Built(population=population, privacy=privacy, channel=channel, exchange_bytes=exchange_bytes,
                  task=learning_task(scenario), attackers=frozenset(attackers(scenario)), num_classes=num_classes,
                  num_clients=num_clients, test_size=test_size, holdout=holdout, validation=validation)
    return DriverParts(
        policy=built_policy(scenario), strategy=make_strategy(scenario, objects, client_sizes, layout.num_trainable),
        population=population,
        clients_per_round=scenario.clients_per_round,
        limits=RunLimits(rounds=run.rounds, sim_time_limit=run.sim_time_limit, eval_every=run.eval_every,
                         save_model_every=run.save_model_every),
        schedule=ClientSchedule(epochs=client.epochs, straggler_fraction=client.straggler_fraction,
                                drop_stragglers=scenario.server.drop_stragglers),
        seed=run.seed, exchange_bytes=exchange_bytes, attackers=built.attackers, personal=personal,
        privacy=privacy, client_state_bytes=round(scenario.resources.client_state_mb * 2**20), channel=channel,
        network=network if network.topology != "star" else None, task=built.task,
        stages=stages(scenario, built), selector=built_selector(scenario),
    )


@dataclass(frozen=True)
class Built:
    """The parts the stages share with the driver, built once by ``driver_parts`` (a user's
    task is built once: its constructor runs once), and the data the evaluating stages score on."""

    population: Population
    privacy: PrivacyStage | None
    channel: Channel | None
    exchange_bytes: int
    task: LearningTask
    attackers: frozenset[int]
    num_classes: int
    num_clients: int
    test_size: int
    holdout: ClientIndices | None
    validation: np.ndarray | None


def stages(scenario: Scenario, built: Built) -> tuple[Stage, ...]:
    """The run's optional features, in the one order the kernel calls their hooks in: the
    privacy budget gates a step before anything of it happens; an attacker tampers with its
    update before the codec encodes it; broker and ledger links time every transfer; the
    committee votes on the updates before the step and the chain mines its block after it; the
    contribution stage values the step before the incentive stage pays by those values; client
    evaluation scores the model the step made."""
    run, network, seed = scenario.run, scenario.network, scenario.run.seed
    listed: list[Stage] = []
    if built.privacy is not None:
        listed.append(PrivacyBudgetStage(built.privacy))
    if scenario.attack.kind != "none":
        listed.append(AttackStage(scenario.attack.build(built.num_classes), built.attackers))
    if built.channel is not None and built.channel.uplink is not None:
        listed.append(CompressionStage(built.channel, exchange_bytes=built.exchange_bytes))
    if network.topology in ("broker", "ledger"):
        listed.append(LinksStage(NetworkLinks(network, built.population)))
    if network.topology == "ledger":
        chain = Chain(network, seed=seed, num_clients=built.num_clients)
        if network.consensus == "committee":
            listed.append(CommitteeStage(chain, test_size=built.test_size))
        listed.append(ChainStage(chain))
    contribution = scenario.contribution
    if contribution.active:
        listed.append(ContributionStage(contribution, validation=built.validation, population=built.num_clients,
                                        seed=seed, task=built.task))
    incentive = scenario.incentive
    if incentive.active:
        traffic = payload(built.exchange_bytes, built.channel, built.privacy)
        listed.append(IncentiveStage(incentive, pay_by=incentive.method or contribution.methods[0],
                                     cohort=scenario.clients_per_round, population=built.population,
                                     epochs=scenario.client.epochs, model_bytes=built.exchange_bytes,
                                     update_bytes=traffic.upload_bytes))
    if scenario.evaluation.active or built.holdout is not None:
        listed.append(EvaluationStage(scenario.evaluation, built.holdout, eval_every=run.eval_every))
    return tuple(listed)


def learning_task(scenario: Scenario) -> LearningTask:
    """The learning task ``[task] kind`` names (models/learning_task.py), a user's built with
    ``options`` and checked (UserCodeError naming ``task.kind``)."""
    return build_task(scenario.task.kind, scenario.task.options)


def built_policy(scenario: Scenario) -> Any:
    """The object that answers the driver's events: ``policy.build()``, checked to have
    ``start(self, view)`` and ``on_event(self, event, view)`` when it is a user's."""
    policy = scenario.policy.build()
    if type(scenario.policy).__module__.partition(".")[0] != "raysim":
        what = f"policy.kind '{policy_kind(scenario.policy)}': the object its build() returns"
        check_method(type(policy), "start", ("self", "view"), what=what)
        check_method(type(policy), "on_event", ("self", "event", "view"), what=what)
    return policy


def built_selector(scenario: Scenario) -> Any:
    """The selector ``[selection.selector]`` names: ``build()``, checked to have
    ``select(self, count, view, draw)`` when it is a user's."""
    settings = scenario.selection.selector
    selector = settings.build()
    if type(settings).__module__.partition(".")[0] != "raysim":
        spec = f"{type(settings).__module__}:{type(settings).__qualname__}"
        check_method(type(selector), "select", ("self", "count", "view", "draw"),
                     what=f"selection.selector.kind '{spec}': the object its build() returns")
    return selector


def check_user_code(scenario: Scenario, objects: UserObjects | None = None) -> None:
    """Builds a user's strategy (or ``[algorithm]``'s server half) and policy once at load, so a
    wrong signature or a failing constructor is a ConfigError before anything runs (a user's
    client algorithm is built by the workers, which import torch: ``preparation.initial_model``;
    the task by ``prepare``, which needs it for the data)."""
    handed = objects is not None and (objects.strategy is not None or objects.algorithm is not None)
    if handed or ":" in scenario.server.strategy or scenario.algorithm.kind:
        make_strategy(scenario, objects)
    built_policy(scenario)
    built_selector(scenario)
