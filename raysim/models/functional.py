"""The functional form of the client protocol: a local update written as pure functions, which
raysim trains client by client or, vectorised, as one batch of models.

An algorithm written against :class:`~raysim.models.algorithm.ClientAlgorithm` owns its training
loop, so raysim can only call it once per client. One that subclasses :class:`FunctionalClient`
says instead what each step minimises and how the client's state moves once training ends:

- ``objective(params, batch, context) -> loss``: the whole per-step objective, as a function of the
  trainable parameters (one flat vector), the batch (its examples and the learning task's loss of
  the model at ``params`` on them) and the client's context (the start weights, its own state and
  the server's broadcast). raysim minimises exactly what it returns, with the scenario's SGD (lr,
  momentum, weight decay, as ``torch.optim.SGD`` applies them); ``client.proximal_mu`` belongs to the
  built-in client and is not added here: FedProx writes its term in its objective (:class:`FedProx`).
  A term linear in ``params``, <v, params>, is a gradient correction of exactly v (:class:`Scaffold`).
- ``init_state(start, server)``: the state of a client that has none yet ({} by default).
- ``new_state(context, delta, steps, lr)``: the state after local training, from the update of the
  trainable parameters (None by default: unchanged).

The class supplies ``train`` (one client: plain autograd on the actor's model, the reference) and
``train_batch`` (a group of equal-sized clients: the same objective under ``torch.func.vmap``, each
client's state its own slice and the start and broadcast shared), so the SAME object runs on both
paths: batched with ``resources.vectorize`` on a model without buffers, one by one otherwise. The
two agree within float32 rounding (only the summation order inside batched kernels differs;
tests/models/test_functional.py).

The objective runs inside ``torch.func`` transforms: write it with torch operations on its
arguments, without in-place changes to them, ``.item()`` on them or Python branches on their
values (``context.server`` is shared by every client of a group, so reading a number from it to
check it is fine). The tensors have the numpy arrays' dtypes (SCAFFOLD's controls are in the
model's dtype, float32 for a float32 model: ``algorithms/scaffold.py``), on the model's device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np
import torch

from raysim.algorithms.scaffold import client_control_delta
from raysim.algorithms.sgd import SGDConfig
from raysim.models.algorithm import LocalResult, LocalTask
from raysim.models.training import LocalOutcome, Objective, train_group, train_locally

Tensors = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Batch:
    """One step's minibatch: inputs ``x``, targets ``y``, and ``loss``, the learning task's mean
    loss (``[task] kind``) of the model at the step's parameters on them, differentiable in the
    parameters. It is computed by raysim so that an objective never re-writes the task's loss,
    and it is the training loss reported for the client (``clients.parquet``), whatever terms the
    objective adds."""

    x: torch.Tensor
    y: torch.Tensor
    loss: torch.Tensor


@dataclass(frozen=True)
class Context:
    """What a client's objective and state update are given besides its parameters, fixed for the
    whole local training: ``start``, the trainable part of the model it starts from (the global
    model: FedProx's and FedDyn's anchor); ``state``, its own state (from ``init_state`` the first
    time); ``server``, the strategy's broadcast. All read-only."""

    start: torch.Tensor
    state: Tensors
    server: Tensors


class FunctionalClient:
    """Base class of a client algorithm in functional form (module docstring). Subclasses
    override :meth:`objective`, and :meth:`init_state` and :meth:`new_state` when the client keeps
    state; they inherit ``train`` and ``train_batch``. Options are constructor arguments kept as
    attributes of the same names, as for any client algorithm; nothing that changes may be kept
    on ``self`` (each actor builds its own copy)."""

    def objective(self, params: torch.Tensor, batch: Batch, context: Context) -> torch.Tensor:
        """The scalar each step minimises; by default the learning task's loss (plain SGD)."""
        return batch.loss

    def init_state(self, start: torch.Tensor, server: Tensors) -> dict[str, torch.Tensor]:
        """The state a client has before its first task: the objective then reads the same keys
        on every client, which a batch of clients needs (their states are stacked)."""
        return {}

    def new_state(self, context: Context, delta: torch.Tensor, steps: int, lr: float) -> Tensors | None:
        """The client's state after local training: ``delta`` is the trained minus the start
        trainable parameters (what is sent), ``steps`` the steps taken at learning rate ``lr``.
        None leaves the state as it was."""
        return None

    def train(self, task: LocalTask) -> LocalResult:
        """One client, on the actor's model (``training.train_locally``): the per-client path."""
        start, server = _trainable(task), _tensors(task.server, task.x.device)
        state = self._state(task, start, server)
        outcome = train_locally(task.flat, task.x, task.y, base=task.start, epochs=task.settings.epochs,
                                batch_size=task.settings.batch_size, sgd=_optimiser(task), generator=task.generator,
                                loss=task.loss, objective=self._step(start, server), state=state)
        return self._result(Context(start, state, server), outcome, task)

    def train_batch(self, tasks: list[LocalTask]) -> list[LocalResult]:
        """Equal-sized clients as one batch of models (``training.train_group``). The tasks of a
        group come from one dispatch, so they share the start model and the broadcast
        (``sim/kernel/dispatch.py``); each has its own data, batch order and state."""
        first = tasks[0]
        start, server = _trainable(first), _tensors(first.server, first.x.device)
        states = [self._state(t, start, server) for t in tasks]
        outcomes = train_group(
            first.flat, torch.stack([t.x for t in tasks]), torch.stack([t.y for t in tasks]), base=first.start,
            epochs=first.settings.epochs, batch_size=first.settings.batch_size, sgd=_optimiser(first),
            generators=[t.generator for t in tasks], loss=first.batched_loss or first.loss,
            objective=self._step(start, server), states=_stacked(states, tasks),
        )
        return [self._result(Context(start, s, server), o, t) for s, o, t in zip(states, outcomes, tasks)]

    def _state(self, task: LocalTask, start: torch.Tensor, server: Tensors) -> Tensors:
        return _tensors(task.state, task.x.device) if task.state else self.init_state(start, server)

    def _step(self, start: torch.Tensor, server: Tensors) -> Objective:
        """The objective as training calls it: (params, x, y, task loss, state) -> scalar."""
        def step(params: torch.Tensor, x: torch.Tensor, y: torch.Tensor, loss: torch.Tensor,
                 state: Tensors) -> torch.Tensor:
            return self.objective(params, Batch(x, y, loss), Context(start, state, server))
        return step

    def _result(self, context: Context, outcome: LocalOutcome, task: LocalTask) -> LocalResult:
        delta = outcome.delta
        state = self.new_state(context, delta[: context.start.numel()], outcome.steps, task.settings.sgd.lr)
        kept = None if state is None else {name: value.detach().cpu().numpy() for name, value in state.items()}
        return LocalResult(steps=outcome.steps, loss=outcome.mean_loss, delta=delta.cpu().numpy(), state=kept)


def _trainable(task: LocalTask) -> torch.Tensor:
    return task.start[: task.flat.layout.num_trainable]


def _optimiser(task: LocalTask) -> SGDConfig:
    """The scenario's SGD without the built-in client's proximal term: the objective is all."""
    return replace(task.settings.sgd, proximal_mu=0.0)


def _tensors(arrays: Mapping[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Copies of named arrays as tensors of their own dtype (the task's are read-only views)."""
    return {name: torch.tensor(np.asarray(array), device=device) for name, array in arrays.items()}


def _stacked(states: list[Tensors], tasks: list[LocalTask]) -> dict[str, torch.Tensor]:
    """The clients' states stacked by name; ValueError names the clients whose keys or shapes
    differ from the first's (``init_state`` must give a newcomer the keys ``new_state`` keeps)."""
    first = states[0]
    for state, task in zip(states[1:], tasks[1:]):
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            shapes = {k: tuple(v.shape) for k, v in state.items()}
            raise ValueError(f"client {task.client_id}'s state {shapes} is not shaped as client "
                             f"{tasks[0].client_id}'s {({k: tuple(v.shape) for k, v in first.items()})}: "
                             "init_state must return the keys and shapes that new_state keeps")
    return {name: torch.stack([state[name] for state in states]) for name in first}


class FedProx(FunctionalClient):
    """FedProx's local objective (Li et al. 2020, arXiv:1812.06127): the task's loss plus
    mu/2 ||w - w_global||^2; the same steps as the built-in client with ``client.proximal_mu = mu``."""

    def __init__(self, mu: float = 0.01):
        if not mu >= 0:
            raise ValueError(f"mu must be >= 0, got {mu}")
        self.mu = mu

    def objective(self, params: torch.Tensor, batch: Batch, context: Context) -> torch.Tensor:
        return batch.loss + self.mu / 2 * (params - context.start).square().sum()


class Scaffold(FunctionalClient):
    """SCAFFOLD's client, option II (``algorithms/scaffold.py``), as the built-in
    ``ScaffoldClient`` runs it: the objective's linear term <c - c_i, w> corrects every gradient by
    exactly c - c_i (the server's ``control`` broadcast minus the client's state ``control``, zero
    at first); then c_i += dc_i, with no control past the trainable prefix."""

    def objective(self, params: torch.Tensor, batch: Batch, context: Context) -> torch.Tensor:
        trainable = params.shape[0]
        server, own = context.server["control"][:trainable], context.state["control"][:trainable]
        return batch.loss + ((server - own).to(params.dtype) * params).sum()

    def init_state(self, start: torch.Tensor, server: Tensors) -> dict[str, torch.Tensor]:
        return {"control": torch.zeros_like(server["control"])}

    def new_state(self, context: Context, delta: torch.Tensor, steps: int, lr: float) -> Tensors:
        server = context.server["control"]
        sent = np.zeros(server.shape[0], dtype=np.float32)
        sent[: delta.shape[0]] = delta.cpu().numpy()
        dc = client_control_delta(server_control=server.cpu().numpy(), delta=sent, steps=steps, lr=lr)
        dc[delta.shape[0]:] = 0.0
        return {"control": context.state["control"] + torch.as_tensor(dc, device=server.device)}
