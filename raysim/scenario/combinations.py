"""Rules that span scenario sections: which combinations of options run, and which are refused.

Each section validates its own keys; this module holds every rule that needs two or more
sections at once (a cohort no larger than the population, FedSGD's full-batch step, what
secure aggregation hides from the server, ...). A refused combination raises ``ValueError``
naming the keys and the fix; the loader turns it into a ``ConfigError``.

The rule behind every refusal here: a scenario the loader accepts runs exactly the algorithm
its keys name, or it does not load. Where two options would silently turn into something
else (DP replacing a robust reducer by the mean, a server optimizer bending FedAsync's mixing
rule), or would crash part-way through a run, the loader says so up front.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from raysim.algorithms.robust import minimum_rows
from raysim.contribution import EXACT_MAX_PLAYERS
from raysim.data import Natural
from raysim.privacy.dp import adaptive_noise_multiplier
from raysim.privacy.ring import MODULUS_BITS, sum_fits
from raysim.sim.cost.devices import Population
from raysim.sim.policies.base import PolicyFacts, facts_of

if TYPE_CHECKING:
    from raysim.scenario.sections import Scenario



def policy_kind(policy: Any) -> str:
    """A policy's ``kind``; a user's policy (``package.module:Name``) is named by its class, and
    no rule for raysim's kinds applies to it."""
    cls = type(policy)
    if cls.__module__.partition(".")[0] != "raysim":
        return f"{cls.__module__}:{cls.__qualname__}"
    return policy.kind

def check_combinations(scenario: Scenario) -> None:
    """Raises ValueError for the first combination of sections that cannot run as named."""
    population = _check_population(scenario)
    _check_strategy(scenario)
    _check_user_code(scenario)
    _check_policy(scenario)
    _check_privacy(scenario, population)
    _check_evaluation(scenario)
    _check_compression(scenario)
    _check_network(scenario)
    check_contribution(scenario)
    _check_selection(scenario)


def _check_selection(scenario: Scenario) -> None:
    """A selector other than uniform chooses a star server's clients, and nothing else may."""
    selector = scenario.selection.selector
    kind = getattr(type(selector), "kind", None)
    if kind == "uniform":
        return
    name = f"selection.selector.kind = {kind or type(selector).__qualname__!r}"
    incentive = scenario.incentive
    others = {
        "incentive.price_per_compute_s or price_per_mb (clients decide whether they join)": incentive.active and incentive.priced,
        "incentive.scheme = 'reputation' (draws by reputation)": incentive.active and incentive.scheme == "reputation",
        f"network.topology = {scenario.network.topology!r} (no server selects)": scenario.network.topology in ("gossip", "hierarchical"),
        "[privacy] (its accountant assumes uniform sampling of clients)": scenario.privacy.active,
    }
    for other, present in others.items():
        if present:
            raise ValueError(f"{name} cannot be combined with {other}: remove one of the two")
    cohort = scenario.clients_per_round
    if kind == "power_of_choice" and selector.d < cohort:
        raise ValueError(f"selection.selector.d = {selector.d} is below the cohort of {cohort}: Power-of-Choice takes the "
                         f"{cohort} highest-loss of d candidates; set d >= {cohort}")


def _check_evaluation(scenario: Scenario) -> None:
    """Client evaluation scores each client's own held-out examples: they must exist."""
    evaluation = scenario.evaluation
    if evaluation.active and not scenario.personal.holdout:
        raise ValueError(f"evaluation.clients = {evaluation.clients!r} scores each client's held-out examples: "
                         "set personal.holdout > 0 (e.g. 0.2) to keep some")
    if evaluation.sample > scenario.data.num_clients:
        raise ValueError(f"evaluation.sample = {evaluation.sample} is more than data.num_clients = "
                         f"{scenario.data.num_clients}")


def policy_facts(scenario: Scenario) -> PolicyFacts:
    """What the scenario's policy says of itself (``sim/policies/base.py:PolicyFacts``): every
    rule below asks it rather than comparing kind strings, so a user's policy is held to what it
    declares."""
    return facts_of(scenario.policy, cohort=scenario.clients_per_round, population=scenario.data.num_clients)


def policy_name(policy) -> str:
    """How messages name a policy: its kind, and the async mode when it matters."""
    mode = f", policy.mode = {policy.mode!r}" if policy_kind(policy) == "async" else ""
    return f"policy.kind = {policy_kind(policy)!r}{mode}"


def max_updates_per_step(scenario: Scenario) -> int:
    """How many client updates a server step is built to combine (the policy's own count)."""
    return policy_facts(scenario).updates_per_step


def max_clients_per_round(scenario: Scenario) -> int:
    """The most clients a round dispatches (the policy's own count)."""
    return policy_facts(scenario).tasks_per_round


def _check_population(scenario: Scenario) -> Population | None:
    """Returns the population read from ``system.trace`` (None without a trace), read once here
    so a bad trace stops the run before anything starts and later rules reuse it."""
    cohort = scenario.selection.cohort(scenario.data.num_clients)
    if cohort > scenario.data.num_clients:
        raise ValueError(
            f"selection.clients_per_round = {cohort} exceeds data.num_clients = {scenario.data.num_clients}"
        )
    natural = isinstance(scenario.data.partition, Natural)
    if scenario.data.dataset == "synthetic" and not natural:
        raise ValueError("data.dataset = 'synthetic' has one client per device: set data.partition = 'natural'")
    data = scenario.data
    if natural and data.dataset in ("mnist", "fashion_mnist", "cifar10"):
        raise ValueError(f"data.partition = 'natural' needs data with its own clients (synthetic's devices, a "
                         f"LEAF folder's users, a table's data.client column), not {data.dataset!r}")
    if natural and data.dataset == "table" and not data.client:
        raise ValueError("data.partition = 'natural' groups a table's rows by data.client: name the client column")
    if not scenario.system.trace:
        return None
    return Population(scenario.system, scenario.data.num_clients, scenario.run.seed)


def _check_user_code(scenario: Scenario) -> None:
    """Where a user's client algorithm or server strategy (or ``[algorithm]``, both) can run: with
    every policy and selection, compression, attacks and contribution; not under [privacy] (DP
    and secure sums reduce the updates themselves) nor on a topology without a server (gossip,
    hierarchical), and SCAFFOLD keeps its own client."""
    server, client, pair = scenario.server, scenario.client, scenario.algorithm.kind
    _check_pair(scenario)
    for key, value in (("server.strategy", server.strategy), ("algorithm.kind", pair)):
        if ":" in value and scenario.privacy.active:
            raise ValueError(f"{key} = {value!r} is a user strategy, which the [privacy] options cannot run (they "
                             "reduce the updates themselves): use a built-in strategy or no [privacy]")
    if ":" in client.algorithm and server.strategy == "scaffold":
        raise ValueError(f"client.algorithm = {client.algorithm!r} with server.strategy = 'scaffold': SCAFFOLD "
                         "runs its own client; remove client.algorithm or use a strategy of yours")
    serverless = scenario.network.topology in ("gossip", "hierarchical")
    for key, value in (("client.algorithm", client.algorithm), ("server.strategy", server.strategy),
                       ("algorithm.kind", pair)):
        if ":" in value and serverless:
            raise ValueError(f"{key} = {value!r} needs the server's rounds: network.topology = "
                             f"{scenario.network.topology!r} runs its own; use topology 'star', 'broker' or 'ledger'")


def _check_pair(scenario: Scenario) -> None:
    """``[algorithm]`` provides both halves: a scenario naming a half again (a user's or one of
    raysim's: SCAFFOLD's, FedSGD's or FedNova's server, whose client raysim would change to
    match) would run two algorithms at once."""
    pair = scenario.algorithm.kind
    if not pair:
        return
    named = {"client.algorithm": (scenario.client.algorithm, ""),
             "server.strategy": (scenario.server.strategy, "fedavg")}
    for key, (value, default) in named.items():
        if value != default:
            raise ValueError(f"algorithm.kind = {pair!r} provides both the client and the server half, and "
                             f"{key} = {value!r} names another: remove {key} (or remove [algorithm] and name "
                             "both halves as client.algorithm and server.strategy)")


def _check_strategy(scenario: Scenario) -> None:
    server, client = scenario.server, scenario.client
    if server.strategy == "scaffold" and (not policy_facts(scenario).synchronous or client.momentum):
        raise ValueError("server.strategy = 'scaffold' needs policy.kind = 'sync' and client.momentum = 0")
    if server.strategy == "scaffold" and server.aggregator != "mean":
        raise ValueError(
            f"server.strategy = 'scaffold' moves its server control variate by the mean of the clients' "
            f"control deltas, which server.aggregator = {server.aggregator!r} would not match: "
            "set server.aggregator = 'mean'"
        )
    if scenario.personal.local_layers and (policy_facts(scenario).client_decides_sending
                                            or server.strategy == "scaffold"):
        raise ValueError("personal.local_layers cannot be combined with policy 'event' or strategy 'scaffold'")
    if server.strategy == "fedsgd" and (client.epochs != 1 or client.batch_size != 0):
        raise ValueError(
            "server.strategy = 'fedsgd' sends one full-batch gradient per client: "
            "set client.epochs = 1 and client.batch_size = 0"
        )
    if server.strategy == "fednova":
        _check_fednova(scenario)


def _check_fednova(scenario: Scenario) -> None:
    """FedNova's closed forms for ||a_i||_1 (fednova.local_step_norm) exist for momentum or a
    proximal term, not both, and the proximal one needs lr * mu < 1 (else the pull diverges)."""
    client = scenario.client
    if client.momentum and client.proximal_mu:
        raise ValueError(
            "server.strategy = 'fednova' normalises by a closed form that covers client.momentum or "
            "client.proximal_mu, not both: set one of them to 0"
        )
    if client.proximal_mu and client.lr * client.proximal_mu >= 1:
        raise ValueError(
            f"server.strategy = 'fednova' with client.proximal_mu needs client.lr * client.proximal_mu < 1, "
            f"got {client.lr} * {client.proximal_mu} = {client.lr * client.proximal_mu:g}: lower one of them"
        )


def _check_policy(scenario: Scenario) -> None:
    """Policies that mix one update at a time cannot feed robust rules or a stateful server
    optimizer; the robust rules need enough rows per step to be defined at all."""
    server, policy = scenario.server, scenario.policy
    if policy_facts(scenario).mixes_one_update:
        if server.aggregator != "mean":
            raise ValueError(
                f"server.aggregator = {server.aggregator!r} compares several updates, but {policy_name(policy)} "
                "applies each update on its own: use server.aggregator = 'mean', or policy.kind = 'async' "
                "with policy.mode = 'fedbuff' (or a synchronous policy)"
            )
        if server.optimizer != "sgd" or server.lr != 1.0:
            raise ValueError(
                f"{policy_name(policy)} mixes each update in with rate alpha * s(staleness), which is a plain "
                f"step of size 1: server.optimizer = {server.optimizer!r} with server.lr = {server.lr} would "
                "turn it into another algorithm; set server.optimizer = 'sgd' and server.lr = 1"
            )
    _check_robust_rows(scenario)


def _check_robust_rows(scenario: Scenario) -> None:
    """A robust rule is defined only from some number of rows (Krum: K > f + 2, the trimmed
    mean: K > 2 * trim, Multi-Krum: K >= m): refused when no server step could ever have that
    many (a step that falls short at run time is skipped and counted, see strategy.py)."""
    server = scenario.server
    if server.aggregator == "mean":
        return
    rows = max_updates_per_step(scenario)
    need = minimum_rows(server.aggregator, trim=server.trim, num_byzantine=server.num_byzantine,
                        num_selected=server.num_selected)
    if rows < need:
        raise ValueError(
            f"server.aggregator = {server.aggregator!r} (server.trim = {server.trim}, server.num_byzantine = "
            f"{server.num_byzantine}, server.num_selected = {server.num_selected}) needs at least {need} updates "
            f"per server step, but {policy_name(scenario.policy)} combines at most {rows} "
            "(selection.clients_per_round, or policy.buffer_size for FedBuff): lower the rule's parameters "
            "or raise the count"
        )


def _check_privacy(scenario: Scenario, traced: Population | None) -> None:
    """Refuses combinations that cannot work when the server must not see single updates."""
    privacy, server = scenario.privacy, scenario.server
    hidden = privacy.secure_aggregation != "none" or privacy.homomorphic != "none"
    protected = "secure aggregation" if privacy.secure_aggregation != "none" else "homomorphic encryption"
    if hidden and server.aggregator != "mean":
        raise ValueError(f"server.aggregator = {server.aggregator!r} needs individual updates, which "
                         f"{protected} hides from the server: use aggregator = 'mean'")
    if hidden and server.strategy in ("fednova", "scaffold"):
        raise ValueError(f"server.strategy = {server.strategy!r} needs per-client values the server "
                         f"cannot see under {protected}")
    if privacy.active and not policy_facts(scenario).synchronous:
        raise ValueError("the [privacy] options run with policy.kind = 'sync' (accounting and masking "
                         "assume one cohort per round)")
    if privacy.dp != "none":
        _check_dp(scenario, traced)
    if (privacy.dp != "none" or privacy.secure_aggregation != "none") and server.weighting != "uniform":
        raise ValueError("differential privacy and secure aggregation average with a fixed, uniform "
                         "weighting: set server.weighting = 'uniform'")
    if privacy.secure_aggregation != "none":
        _check_ring(scenario)


def _check_dp(scenario: Scenario, traced: Population | None) -> None:
    """DP-FedAvg is one algorithm: clip, noise and average with a fixed denominator, accounted
    with q = (clients drawn) / N over a population where every client can be drawn."""
    privacy, server = scenario.privacy, scenario.server
    if server.aggregator != "mean" or server.strategy not in ("fedavg", "fedsgd"):
        raise ValueError(
            f"privacy.dp = {privacy.dp!r} is DP-FedAvg: it clips, noises and averages the updates itself, so "
            f"server.aggregator = {server.aggregator!r} and server.strategy = {server.strategy!r} would not run; "
            "set server.aggregator = 'mean' and server.strategy = 'fedavg' or 'fedsgd'"
        )
    if privacy.adaptive_clipping:
        adaptive_noise_multiplier(privacy.noise_multiplier, scenario.clients_per_round / 20.0)
    _check_everyone_eligible(scenario, traced)


def _check_everyone_eligible(scenario: Scenario, traced: Population | None) -> None:
    """The accountant's q assumes every one of the N clients can be drawn each round; when only
    the online ones can, the true inclusion probability is higher and unknown in general."""
    system = scenario.system
    if system.availability != "always" and not system.trace:
        raise ValueError(
            f"privacy.dp with system.availability = {system.availability!r} draws only online clients, so "
            "the accountant's sampling rate m / N would understate epsilon: set system.availability = 'always'"
        )
    if traced is not None:
        always = ((0.0, math.inf),)
        if any(traced.profile(c).availability.intervals != always for c in range(scenario.data.num_clients)):
            raise ValueError(
                f"privacy.dp with system.trace = '{system.trace}', whose availability column limits when "
                "clients are online, draws only online clients, so the accountant's sampling rate would "
                "understate epsilon: use a trace without availability intervals"
            )


def _check_ring(scenario: Scenario) -> None:
    """The masked sum lives in Z_(2**MODULUS_BITS): n clients of (2**bits - 1) levels must not wrap it."""
    bits = scenario.privacy.quantization_bits
    clients = max_clients_per_round(scenario)
    if not sum_fits(clients, bits):
        most = next((b for b in range(bits - 1, 0, -1) if sum_fits(clients, b)), 0)
        raise ValueError(
            f"privacy.quantization_bits = {bits} with up to {clients} clients per round (selection.clients_per_round "
            f"times policy.over_selection) can overflow secure aggregation's {MODULUS_BITS}-bit ring: "
            f"set privacy.quantization_bits <= {most} or select fewer clients"
        )


def _check_compression(scenario: Scenario) -> None:
    """Compression acts on the update a client sends, so it composes with every policy, robust
    rule, attack and central DP (the server clips what it decodes); refused where the update is
    not the client's plain delta or where another encoding already applies."""
    compression, privacy = scenario.compression, scenario.privacy
    if compression.active and scenario.personal.local_layers:
        raise ValueError("[compression] with personal.local_layers: the heads never travel, and the codecs "
                         "here encode the whole model; remove one of the two")
    if compression.uplink == "none":
        return
    codec = f"compression.uplink = {compression.uplink!r}"
    if privacy.secure_aggregation != "none" or privacy.homomorphic != "none":
        raise ValueError(f"{codec} cannot be combined with privacy.secure_aggregation or privacy.homomorphic: "
                         "those encode the update themselves (secure aggregation already quantises it to "
                         "privacy.quantization_bits); set compression.uplink = 'none'")
    if privacy.dp == "local":
        raise ValueError(f"{codec} with privacy.dp = 'local': a client must add its noise before it encodes, "
                         "and the privacy stage adds it on the server's side; use privacy.dp = 'central' "
                         "or compression.uplink = 'none'")
    if scenario.server.strategy == "scaffold":
        raise ValueError(f"{codec} with server.strategy = 'scaffold': SCAFFOLD's control variates are derived "
                         "from the uncompressed delta, so compressing the model delta alone is another "
                         "algorithm; set compression.uplink = 'none'")


def _check_network(scenario: Scenario) -> None:
    """``[network]``: its population rules, then what each topology's round loop cannot carry.
    Gossip and hierarchical run their own synchronous loop (sim/loops/gossip.py) in which every node
    trains every round from its own model and the mixing (or the edge average) is the only
    aggregation: options that belong to a server, a policy or a sampled cohort are refused."""
    network = scenario.network
    network.check_population(scenario.data.num_clients)
    topology = f"network.topology = {network.topology!r}"
    if network.topology in ("gossip", "hierarchical"):
        _check_node_rounds(scenario, topology)
    if network.topology in ("broker", "ledger") and policy_facts(scenario).client_decides_sending:
        raise ValueError(f"{topology} routes every dispatched task's download and upload through the network, but "
                         f"{policy_name(scenario.policy)} decides later whether an update is sent: use another policy")
    hidden = scenario.privacy.secure_aggregation != "none" or scenario.privacy.homomorphic != "none"
    if network.topology == "ledger" and network.consensus == "committee" and hidden:
        raise ValueError("network.consensus = 'committee' scores each update, which privacy.secure_aggregation and "
                         "privacy.homomorphic hide: use consensus = 'pow' or remove the privacy option")


def _check_node_rounds(scenario: Scenario, topology: str) -> None:
    """Gossip and HierFAVG: full participation, synchronous, plain SGD updates averaged by the
    topology (data-size weights at the edges and the cloud, Metropolis-Hastings weights in gossip)."""
    server, system = scenario.server, scenario.system
    if not policy_facts(scenario).synchronous or scenario.policy != type(scenario.policy)():
        raise ValueError(f"{topology} runs synchronous rounds of every node: use [policy] kind = 'sync' "
                         "without deadline_s, over_selection or partial_work (asynchronous policies have no "
                         "server to arrive at)")
    if scenario.clients_per_round != scenario.data.num_clients:
        raise ValueError(f"{topology} trains every node every round: set selection.fraction = 1 "
                         f"(selection picks {scenario.clients_per_round} of {scenario.data.num_clients})")
    refused = {
        "[privacy]": scenario.privacy.active, "[compression]": scenario.compression.active,
        "[attack]": scenario.attack.kind != "none", "[contribution]": scenario.contribution.active,
        "[personal] (local_layers, holdout)": bool(scenario.personal.local_layers or scenario.personal.holdout),
        "client.straggler_fraction": bool(scenario.client.straggler_fraction),
        f"server.strategy = {server.strategy!r}": server.strategy != "fedavg",
        f"server.aggregator = {server.aggregator!r}": server.aggregator != "mean",
        f"server.optimizer = {server.optimizer!r} with server.lr = {server.lr}": server.optimizer != "sgd" or server.lr != 1.0,
        f"server.weighting = {server.weighting!r}": server.weighting != "samples",
        "system.dropout or system.availability": system.dropout > 0 or system.availability != "always",
    }
    for option, present in refused.items():
        if present:
            raise ValueError(f"{option} cannot be combined with {topology}: its nodes average plain local models "
                             "with the topology's weights, every node every round; remove the option or use "
                             "topology = 'star'")
def check_contribution(scenario: Scenario) -> None:
    """[contribution] needs each client's update as the server applies it, and a budget that fits
    the closed-form methods' coalitions; [incentive] pays by one of its methods."""
    contribution, incentive = scenario.contribution, scenario.incentive
    if incentive.active and not contribution.active:
        raise ValueError(f"incentive.scheme = {incentive.scheme!r} pays by contribution: add a [contribution] "
                         "section with methods (e.g. methods = [\"gtg\"])")
    if incentive.active and incentive.method and incentive.method not in contribution.methods:
        raise ValueError(f"incentive.method = {incentive.method!r} is not computed: add it to contribution.methods "
                         f"{list(contribution.methods)} or leave incentive.method empty (the first of them)")
    if not contribution.active:
        return
    planted = contribution.plant.clients
    if planted > scenario.data.num_clients:
        raise ValueError(f"contribution.plant names client {planted - 1}, but data.num_clients = "
                         f"{scenario.data.num_clients}: shorten the lists or add clients")
    if scenario.privacy.active:
        raise ValueError("[contribution] rebuilds each step's model from single updates, which [privacy] clips, "
                         "noises or hides: remove one of the two sections")
    players = max_updates_per_step(scenario)
    budget = contribution.max_evaluations
    exact = [m for m in contribution.methods if m in ("exact", "fedsv")]
    if exact and players > EXACT_MAX_PLAYERS:
        raise ValueError(f"contribution.methods {exact} enumerate all 2^n coalitions, but {policy_name(scenario.policy)} "
                         f"combines up to {players} updates per step (at most {EXACT_MAX_PLAYERS} allowed): use "
                         "'gtg' or 'tmc', or lower selection.clients_per_round (policy.buffer_size for FedBuff)")
    if exact and 2 ** players > budget:
        raise ValueError(f"contribution.methods {exact} need 2^{players} = {2 ** players} utility evaluations per step, "
                         f"more than contribution.max_evaluations = {budget}: raise it to {2 ** players} or use 'gtg'")
    if "loo" in contribution.methods and players + 1 > budget:
        raise ValueError(f"contribution.methods 'loo' needs {players + 1} utility evaluations per step, more than "
                         f"contribution.max_evaluations = {budget}: raise it to {players + 1}")
