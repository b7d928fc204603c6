"""Local training on one client: plain SGD on a flat model, with the FedProx and SCAFFOLD terms.

The optimizer is written out on the flat parameter vector (one vector op per step) rather than
taken from ``torch.optim``: the extra gradient terms of FedProx, mu * (w - w_global) (Li et al.
2020, arXiv:1812.06127), and SCAFFOLD, c - c_i (Karimireddy et al. 2020, arXiv:1910.06378), are
then single vector additions, and FedNova's normaliser knows exactly which update rule ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import torch
import torch.nn.functional as F

from raysim.algorithms.sgd import SGDConfig
from raysim.models.params import FlatModel

if TYPE_CHECKING:
    from raysim.models.learning_task import LearningTask


# A functional client's whole per-step objective (models/functional.py): (trainable parameters as one
# flat vector, batch inputs, batch targets, the learning task's loss on them, the client's state
# tensors) -> the scalar minimised. The same function serves one client and, under torch.func.vmap,
# a batch of them, where the state arrives as each client's slice.
Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class LocalOutcome:
    """What one client's local training produced (the delta stays a torch tensor)."""

    delta: torch.Tensor
    steps: int
    mean_loss: float


def train_locally(
    model: FlatModel,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    base: torch.Tensor,
    epochs: int,
    batch_size: int,
    sgd: SGDConfig,
    generator: torch.Generator,
    correction: torch.Tensor | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    objective: Objective | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
) -> LocalOutcome:
    """Runs ``epochs`` passes of minibatch SGD from ``base`` and returns the model delta.

    Args:
        model: the actor's reusable model; its weights are overwritten with ``base``.
        x, y: the client's examples (already on the model's device).
        base: the flat global state the client starts from.
        epochs: full passes over the client's data (may be fewer than configured for stragglers).
        batch_size: minibatch size; 0 means the full local dataset (FedSGD).
        sgd: learning rate, momentum, weight decay and FedProx mu.
        generator: seeded per (run seed, round, client), so batch order is reproducible.
        correction: SCAFFOLD's c - c_i, added to every gradient; None for other algorithms.
        loss: the learning task's mean loss on (outputs, targets) (models/learning_task.py).
        objective: a functional client's objective, minimised in place of ``loss`` (whose value
            it receives and which is still the mean loss reported); None: ``loss`` alone.
        state: the client's state tensors, handed to ``objective``.
    """
    model.load(base)
    params, grad = model.params, model.grad
    anchor = base[: params.numel()]
    velocity = torch.zeros_like(params) if sgd.momentum else None
    n = x.shape[0]
    size = n if batch_size == 0 else min(batch_size, n)
    steps, loss_sum, seen = 0, 0.0, 0
    model.module.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(x.device)
        for start in range(0, n, size):
            idx = order[start : start + size]
            grad.zero_()
            value = loss(model.module(x[idx]), y[idx])
            if objective is None:
                value.backward()
            else:  # the flat parameters as one differentiable vector; backward reaches their views
                flat = torch.cat([p.reshape(-1) for p in model.module.parameters()])
                objective(flat, x[idx], y[idx], value, state or {}).backward()
            with torch.no_grad():
                _apply_step(params, grad, anchor, velocity, sgd, correction)
            steps += 1
            loss_sum += value.item() * len(idx)
            seen += len(idx)
    delta = model.flat.detach() - base
    return LocalOutcome(delta=delta, steps=steps, mean_loss=loss_sum / max(seen, 1))


def _apply_step(
    params: torch.Tensor,
    grad: torch.Tensor,
    anchor: torch.Tensor,
    velocity: torch.Tensor | None,
    sgd: SGDConfig,
    correction: torch.Tensor | None,
) -> None:
    if sgd.weight_decay:
        grad.add_(params, alpha=sgd.weight_decay)
    if sgd.proximal_mu:
        grad.add_(params - anchor, alpha=sgd.proximal_mu)
    if correction is not None:
        grad.add_(correction)
    if velocity is not None:
        velocity.mul_(sgd.momentum).add_(grad)
        params.add_(velocity, alpha=-sgd.lr)
    else:
        params.add_(grad, alpha=-sgd.lr)


@torch.no_grad()
def evaluate(model: FlatModel, x: torch.Tensor, y: torch.Tensor, *, task: LearningTask, batch_size: int = 256,
             inputs: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """The learning task's sums (``task.sums``: for classification the number correct and the
    summed cross-entropy) for the model's current weights on (x, y): sums, so parts of a data
    set evaluated on different workers add up to the whole.

    In batches of 256: the FedAvg CNN's first activations take 0.4 GB for 2,000 examples, a
    transient that set the whole run's peak memory, and 256 scored 5,000 examples faster too
    (2.2 s against 3.3 s on one core). ``inputs`` turns a batch of stored rows into model inputs
    (a worker's pixel standardisation), one batch at a time for the same reason: 5,000
    Fashion-MNIST rows as floats and their lookup indices are 31 MB per worker at once.
    """
    model.module.eval()
    totals: dict[str, float] = {}
    for start in range(0, x.shape[0], batch_size):
        rows = x[start : start + batch_size]
        outputs = model.module(rows if inputs is None else inputs(rows))
        for name, value in task.sums(outputs, y[start : start + batch_size]).items():
            totals[name] = totals.get(name, 0) + value
    return totals


def train_group(
    model: FlatModel,
    xs: torch.Tensor,
    ys: torch.Tensor,
    *,
    base: torch.Tensor,
    epochs: int,
    batch_size: int,
    sgd: SGDConfig,
    generators: list[torch.Generator],
    corrections: torch.Tensor | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    objective: Objective | None = None,
    states: Mapping[str, torch.Tensor] | None = None,
) -> list[LocalOutcome]:
    """Trains G clients of equal data size at once as a batch of models (torch.func.vmap).

    The same math as G calls of :func:`train_locally`: each client draws its batch order from its
    own generator, and the step (momentum, weight decay, prox, SCAFFOLD correction) is applied to
    the stacked parameters. Only the floating-point summation order inside the batched kernels
    differs, so results agree with the one-by-one path within float tolerance.

    The transform runs without ``torch._dynamo`` (``functorch_without_dynamo``) and each client's
    loss is :func:`_mean_cross_entropy`, so a worker that trains batches loads neither dynamo nor
    sympy: 76 MB less per client actor at W2's peak and over 1 s less CPU on its first call
    (benchmarks/README.md, "Footprint"). Differentiating the vmapped losses with plain autograd
    would avoid the transform altogether but measured 35-50% slower per step on the 2NN (copies
    in the batched backward).

    Args:
        xs, ys: [G, n, ...] examples and [G, n] labels of the G clients.
        generators: one per client, seeded as for :func:`train_locally`.
        corrections: [G, num_trainable] SCAFFOLD corrections, or None.
        loss: the learning task's mean loss as ``vmap`` batches it (``batched_loss`` of
            models/learning_task.py's tasks); None: :func:`_mean_cross_entropy`.
        objective: as for :func:`train_locally`, run under ``vmap``: each client's call sees its
            own parameters, batch, loss and slice of ``states``.
        states: [G, ...] stacked state tensors of the G clients, by name.
    """
    from torch.func import functional_call, grad_and_value, vmap

    from raysim.models import functorch_without_dynamo

    functorch_without_dynamo.install()
    layout = model.layout
    if layout.num_trainable != layout.size:
        raise ValueError("batched training needs a model without buffers (e.g. no BatchNorm)")
    names, shapes = layout.names, layout.shapes
    sizes = [int(torch.Size(s).numel()) for s in shapes]

    task_loss = loss or _mean_cross_entropy

    def client_loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                    state: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(flat, sizes), shapes)}
        value = task_loss(functional_call(model.module, params, (x,)), y)
        return (value if objective is None else objective(flat, x, y, value, state)), value

    step_fn = vmap(grad_and_value(client_loss, has_aux=True))
    group, n = xs.shape[0], xs.shape[1]
    size = n if batch_size == 0 else min(batch_size, n)
    anchor = base[: layout.num_trainable]
    params = anchor.unsqueeze(0).repeat(group, 1)
    velocity = torch.zeros_like(params) if sgd.momentum else None
    rows = torch.arange(group, device=xs.device).unsqueeze(1)
    steps, loss_sum, seen = 0, torch.zeros(group, dtype=torch.float64), 0
    model.module.train()
    for _ in range(epochs):
        orders = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(xs.device)
        for start in range(0, n, size):
            idx = orders[:, start : start + size]
            grads, (_, losses) = step_fn(params, xs[rows, idx], ys[rows, idx], states or {})
            _apply_step(params, grads, anchor, velocity, sgd, corrections)
            steps += 1
            loss_sum += losses.detach().double().cpu() * idx.shape[1]
            seen += idx.shape[1]
    deltas = params - anchor
    return [LocalOutcome(delta=deltas[i], steps=steps, mean_loss=float(loss_sum[i] / max(seen, 1)))
            for i in range(group)]


def _mean_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(logits, labels)`` spelt with log_softmax and gather, the same values.

    Under ``vmap`` the fused cross-entropy runs through ``nll_loss``'s Python decomposition,
    whose shape check (``torch._check``) imports torch.fx's symbolic shapes and with them sympy
    (34 MB per worker); log_softmax and gather have batching rules of their own."""
    return -F.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).mean()
