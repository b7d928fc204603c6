"""The client-algorithm protocol: one client's local update, as raysim's own algorithms and a
user's package write it (``[client] algorithm = "package.module:Name"``).

An algorithm is an object with ``train(task: LocalTask) -> LocalResult``. The task hands it the
model with the start weights loaded, the client's examples and a seeded batch order, the start
weights as one flat vector, the client's own state as its last finished task left it (named
numpy arrays, read-only, kept by the driver's per-client store, so it does not depend on which
worker trains the client), what the server broadcasts (SCAFFOLD's control variate), the round
and the client's settings. It returns the steps it took, its mean loss, and optionally the new
state, extra arrays for the server strategy and metrics; the update sent is the model's weights
minus the start unless it returns its own ``delta``.

raysim's client sides are algorithms of this protocol too: :class:`SGDClient` (SGD, momentum,
weight decay, FedProx's proximal term, FedSGD and FedNova's clients) and :class:`ScaffoldClient`
(SCAFFOLD's corrected gradient and control update, option II). They also have ``train_batch``,
the fast path that trains equal-sized clients as one batch of models (``resources.vectorize``);
an algorithm without it is trained client by client. An algorithm written in the functional form
(``raysim.models.functional:FunctionalClient``: its per-step objective and its state update as
functions) has both, from the same two functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raysim.algorithms.pair import ClientHalf, build_pair, half_of
from raysim.algorithms.scaffold import client_control_delta, correction
from raysim.algorithms.sgd import SGDConfig
from raysim.inputs import UserCodeError, build_user_object
from raysim.models.params import FlatModel
from raysim.models.training import train_group, train_locally

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class ClientSettings:
    """The ``[client]`` settings a task runs with: local ``epochs`` (fewer for a straggler),
    ``batch_size`` (0: the whole local data set) and the optimiser ``sgd`` (lr, momentum, weight
    decay, FedProx's mu)."""

    epochs: int
    batch_size: int
    sgd: SGDConfig


@dataclass(eq=False)
class LocalTask:
    """What one client's local update is given.

    ``model`` is an ``nn.Module`` whose weights are the start model; its parameters are views
    into ``flat.flat`` (the whole state as one float32 vector; ``flat.params`` is its trainable
    part, a view, and ``flat.grad`` the gradients of that part), so an update can be read or
    written either way. ``batches()`` covers every local epoch (``settings.epochs``): one loop
    over it is the whole local training, as the built-in SGD does it. ``x`` and ``y`` are the
    client's examples (model inputs and targets),
    ``start`` the start weights (flat, float32; do not change them), ``state`` the client's own
    arrays ({} the first time) and ``server`` the strategy's broadcast, both read-only (a new
    state is returned, never written in place), ``generator`` seeded by
    (run seed, dispatch, client), ``loss`` the learning task's mean loss on (outputs, targets)
    (``[task] kind``: cross-entropy for classification, MSE without a 1/2 for regression, so its
    gradient is twice that of the 1/2-MSE many derivations use; models/learning_task.py)
    and ``batched_loss`` the same loss as ``torch.func.vmap`` batches it (the built-in SGD's
    batched path; None: ``loss``).

    The parameters' gradients are views of ``flat.grad`` too, so a term added there reaches
    every parameter; ``optimizer.zero_grad()`` sets them to None by default, after which autograd
    fills new tensors and ``flat.grad`` is bypassed until the task ends: zero ``flat.grad``
    instead (or pass ``set_to_none=False``) when an algorithm works on the flat gradient. A
    copy of the task with other examples (``dataclasses.replace(task, x=..., y=...)``) trains
    the same model on them.
    """

    model: nn.Module
    flat: FlatModel
    x: torch.Tensor
    y: torch.Tensor
    start: torch.Tensor
    state: dict[str, np.ndarray]
    server: dict[str, np.ndarray]
    client_id: int
    round: int
    settings: ClientSettings
    generator: torch.Generator
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    batched_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Minibatches of ``settings.batch_size`` over ``settings.epochs`` epochs, each epoch in
        an order drawn from ``generator`` (the order the built-in SGD trains in)."""
        n = self.x.shape[0]
        size = n if self.settings.batch_size == 0 else min(self.settings.batch_size, n)
        for _ in range(self.settings.epochs):
            order = torch.randperm(n, generator=self.generator).to(self.x.device)
            for begin in range(0, n, size):
                rows = order[begin : begin + size]
                yield self.x[rows], self.y[rows]

    def trained_delta(self) -> np.ndarray:
        """The model's weights now minus the start: the update sent by default."""
        return (self.flat.flat.detach() - self.start).cpu().numpy()

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat vector of the model's size as named tensors shaped like the model's own."""
        layout = self.flat.layout
        sizes = [int(np.prod(shape)) for shape in layout.shapes]
        return {name: part.view(shape) for name, part, shape in
                zip(layout.names, torch.split(vector, sizes), layout.shapes)}


@dataclass(frozen=True)
class LocalResult:
    """What a local update returns: ``steps`` taken (FedNova and SCAFFOLD read them) and the
    mean training ``loss``; the ``examples`` it trained on (None: all of the client's), which
    the strategy receives as ``Update.num_samples``, the update's weight under ``[server]
    weighting = "samples"``; ``delta`` (None: :meth:`LocalTask.trained_delta`),
    the client's new ``state`` (None: unchanged; kept once the task finishes, whatever the server
    does with the update: sim/state/client_state.py),
    ``extras`` for the server strategy and numeric ``metrics`` (columns ``metric_<name>`` of
    clients.parquet)."""

    steps: int
    loss: float
    examples: int | None = None
    delta: np.ndarray | None = None
    state: Arrays | None = None
    extras: Arrays = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class ClientAlgorithm(Protocol):
    def train(self, task: LocalTask) -> LocalResult:
        """One client's local update."""


class SGDClient:
    """Minibatch SGD with the scenario's momentum, weight decay and FedProx term (FedAvg,
    FedProx, FedSGD, FedNova's clients); no state."""

    def train(self, task: LocalTask) -> LocalResult:
        outcome = train_locally(task.flat, task.x, task.y, base=task.start, epochs=task.settings.epochs,
                                batch_size=task.settings.batch_size, sgd=task.settings.sgd,
                                generator=task.generator, correction=self._correction(task), loss=task.loss)
        return self._result(task, outcome.delta, outcome.steps, outcome.mean_loss)

    def train_batch(self, tasks: list[LocalTask]) -> list[LocalResult]:
        """Equal-sized clients as one batch of models (``training.train_group``), the same math."""
        first = tasks[0]
        corrections = [self._correction(t) for t in tasks]
        outcomes = train_group(
            first.flat, torch.stack([t.x for t in tasks]), torch.stack([t.y for t in tasks]), base=first.start,
            epochs=first.settings.epochs, batch_size=first.settings.batch_size, sgd=first.settings.sgd,
            generators=[t.generator for t in tasks],
            corrections=None if corrections[0] is None else torch.stack(corrections),
            loss=first.batched_loss or first.loss,
        )
        return [self._result(t, o.delta, o.steps, o.mean_loss) for t, o in zip(tasks, outcomes)]

    def _correction(self, task: LocalTask) -> torch.Tensor | None:
        return None

    def _result(self, task: LocalTask, delta: torch.Tensor, steps: int, loss: float) -> LocalResult:
        return LocalResult(steps=steps, loss=loss, delta=delta.cpu().numpy())


class ScaffoldClient(SGDClient):
    """SCAFFOLD's client (option II, ``algorithms/scaffold.py``): every gradient corrected by
    c - c_i, the server's control (broadcast as ``control``) minus the client's own (state
    ``control``, zero at first); then c_i += dc_i. The server derives the same dc_i from the
    update it receives (``ScaffoldServer``), so dc_i is not sent: 6.7 MB less per client of the
    FedAvg CNN. c_i is in the model's dtype, as c is (``algorithms/scaffold.py``). Buffers past the
    trainable prefix (BatchNorm statistics) get no control."""

    def _correction(self, task: LocalTask) -> torch.Tensor:
        server = task.server["control"]
        own = task.state.get("control", np.zeros_like(server))
        trainable = task.flat.layout.num_trainable
        return torch.as_tensor(correction(server, own)[:trainable].astype(np.float32)).to(task.x.device)

    def _result(self, task: LocalTask, delta: torch.Tensor, steps: int, loss: float) -> LocalResult:
        sent = delta.cpu().numpy()
        server = task.server["control"]
        dc = client_control_delta(server_control=server, delta=sent, steps=steps, lr=task.settings.sgd.lr)
        dc[task.flat.layout.num_trainable:] = 0.0
        own = task.state.get("control", 0.0)
        return LocalResult(steps=steps, loss=loss, delta=sent, state={"control": own + dc})


CLIENT_ALGORITHMS: dict[str, type] = {"sgd": SGDClient, "scaffold": ScaffoldClient}


def build_algorithm(spec: Any, options: Mapping[str, Any]) -> ClientAlgorithm:
    """The algorithm ``client.algorithm`` names (a registry name or ``package.module:Name``), the
    class or object handed to ``raysim.api.run``, or the client half of the pair ``[algorithm]``
    names (:class:`~raysim.algorithms.pair.ClientHalf`: the pair is built here, in the worker,
    from its name and options): a user's is checked to define ``train(self, task)`` before its
    class is called with ``options`` (``inputs.build_user_object``). UserCodeError (a
    ConfigError) names the key and the fix."""
    if isinstance(spec, ClientHalf):
        return build_user_object(half_of(build_pair(spec.kind, spec.options), "client"), {},
                                 what=f"algorithm.kind '{spec.kind}': its client()", choices=[],
                                 methods={"train": ("self", "task")})
    if isinstance(spec, str) and spec in CLIENT_ALGORITHMS:
        if options:
            raise UserCodeError(f"client.algorithm_options are for a user algorithm; '{spec}' takes none")
        return CLIENT_ALGORITHMS[spec]()
    return build_user_object(spec, options, what="client.algorithm", choices=sorted(CLIENT_ALGORITHMS),
                             methods={"train": ("self", "task")})


def algorithm_name(algorithm: Any) -> str:
    """How errors name an algorithm: ``client.algorithm <module>:<class>``."""
    cls = algorithm if isinstance(algorithm, type) else type(algorithm)
    return f"client.algorithm {cls.__module__}:{cls.__qualname__}"


def checked(result: Any, task: LocalTask) -> LocalResult:
    """``result`` with its delta and examples filled in, once it is a well-formed LocalResult: a
    delta of the model's size, state and extras named numeric arrays, metrics numbers.
    ValueError says what is wrong (the worker names the algorithm and the client).

    A client that diverged (a non-finite delta, as plain SGD gives at too high a learning rate)
    is not an error here: the server's update hygiene rejects its update (status "rejected",
    ``privacy/hygiene.py``) and its state is not kept. Only with
    a finite delta is a non-finite state, extra, metric or loss the algorithm's fault."""
    if not isinstance(result, LocalResult):
        raise ValueError(f"train returned {type(result).__name__}, not a LocalResult")
    if isinstance(result.steps, bool) or not isinstance(result.steps, int) or result.steps < 0:
        raise ValueError(f"LocalResult.steps = {result.steps!r} is not a count of steps")
    examples = task.y.shape[0] if result.examples is None else result.examples
    if isinstance(examples, bool) or not isinstance(examples, int) or not 0 < examples <= task.y.shape[0]:
        raise ValueError(f"LocalResult.examples = {result.examples!r} is not a count of the client's "
                         f"{task.y.shape[0]} examples")
    delta = task.trained_delta() if result.delta is None else result.delta
    size = task.flat.layout.size
    if not isinstance(delta, np.ndarray) or delta.shape != (size,) or delta.dtype.kind != "f":
        shown = getattr(delta, "shape", type(delta).__name__)
        raise ValueError(f"LocalResult.delta must be a float array of shape ({size},), got {shown}")
    finite = bool(np.isfinite(delta).all())  # else the server rejects the update: nothing else is checked
    _number("LocalResult.loss", result.loss, finite=finite)
    for kind in ("state", "extras"):
        arrays = getattr(result, kind)
        for name, array in (arrays or {}).items():
            if not (isinstance(name, str) and name.isidentifier()):
                raise ValueError(f"LocalResult.{kind} key {name!r} is not an identifier")
            if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
                raise ValueError(f"LocalResult.{kind}[{name!r}] must be a numeric numpy array, "
                                 f"got {type(array).__name__}")
            if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError(f"LocalResult.{kind}[{name!r}] has NaN or infinite entries")
    for name, value in result.metrics.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"LocalResult.metrics key {name!r} is not an identifier")
        _number(f"LocalResult.metrics[{name!r}]", value, finite=finite)
    return replace(result, delta=delta.astype(np.float32, copy=False), examples=examples)


def _number(what: str, value: Any, *, finite: bool) -> None:
    """A number, and a finite one when ``finite``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or (finite and not np.isfinite(value)):
        raise ValueError(f"{what} = {value!r} is not a {'finite ' if finite else ''}number")
