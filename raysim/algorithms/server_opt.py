"""Server-side optimisers that treat the averaged client delta as a pseudo-gradient.

FedAvg moves the global model to the (weighted) average of the client models,
which is the same as adding the averaged delta ``D_t = avg_k(w^k - w_t)`` with a
server learning rate of 1. Reddi et al. observed that ``D_t`` can be fed to any
first-order optimiser on the server, which decouples the client and server
learning rates and lets adaptivity fix slow progress on heterogeneous data:

* Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for
  Federated Visual Classification", 2019, arXiv:1909.06335 (FedAvgM).
* Reddi et al., "Adaptive Federated Optimization", ICLR 2021, arXiv:2003.00295
  (FedAdagrad, FedYogi, FedAdam; Algorithm 2).

Sign convention: ``D_t`` points in the direction the model should move, i.e. it
is the *negative* of a gradient, so every rule here *adds* its step. FedSGD fits
the same interface: pass the averaged negative client gradient as ``delta``.

The optimisers are optax-shaped: a frozen dataclass holds hyper-parameters,
``init`` builds a state value and ``apply`` returns ``(new_params, new_state)``
without mutating anything, so the runtime can checkpoint the state by pickling.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np

__all__ = [
    "SERVER_OPTIMIZERS",
    "FedAdagrad",
    "FedAdam",
    "FedYogi",
    "Momentum",
    "SGD",
    "ServerOptState",
    "ServerOptimizer",
    "make_server_optimizer",
]


@dataclass(frozen=True, eq=False)
class ServerOptState:
    """Optimiser state carried between rounds; small, immutable and picklable.

    Attributes:
        step: Number of ``apply`` calls so far (kept for logging/checkpoints;
            no rule here uses bias correction, following Reddi et al.).
        first_moment: Momentum buffer / first moment ``m`` (float64), or
            ``None`` for optimisers without one.
        second_moment: Per-coordinate second moment ``v`` (float64), or
            ``None`` for optimisers without one.
    """

    step: int
    first_moment: np.ndarray | None = None
    second_moment: np.ndarray | None = None


class ServerOptimizer(Protocol):
    """Interface every server optimiser implements."""

    def init(self, params: np.ndarray) -> ServerOptState:
        """Return the state before the first round for ``params``."""
        ...

    def apply(
        self, params: np.ndarray, delta: np.ndarray, state: ServerOptState
    ) -> tuple[np.ndarray, ServerOptState]:
        """Return the new global params (same dtype as ``params``) and state."""
        ...


def _check_range(name: str, value: float, low: float, high: float, *, closed_low: bool) -> None:
    ok = (low <= value if closed_low else low < value) and value < high
    if not ok:
        left = "[" if closed_low else "("
        raise ValueError(f"{name} must be in {left}{low}, {high}), got {value!r}")


def _readonly(array: np.ndarray) -> np.ndarray:
    """Freeze a state array so a frozen state cannot be changed behind our back."""
    array.flags.writeable = False
    return array


def as_update(params: np.ndarray, other: np.ndarray, *, name: str = "delta") -> np.ndarray:
    """Checks that ``params`` is a 1-D floating vector and ``other`` (a delta, or a client's
    model) has its shape; returns ``other`` as float64. Shared by the server rules that move
    the global model (here and in ``staleness.fedasync_mix``)."""
    params = np.asarray(params)
    if params.ndim != 1 or not np.issubdtype(params.dtype, np.floating):
        raise ValueError(
            f"params must be a 1-D floating array, got shape {params.shape} dtype {params.dtype}"
        )
    other = np.asarray(other, dtype=np.float64)
    if other.shape != params.shape:
        raise ValueError(f"{name} must have the shape of params {params.shape}, got {other.shape}")
    return other


def _step(params: np.ndarray, update: np.ndarray) -> np.ndarray:
    """Add a float64 update to params and cast back, so callers keep their dtype."""
    return (params.astype(np.float64) + update).astype(params.dtype)


@dataclass(frozen=True, kw_only=True)
class SGD:
    """Plain server SGD: ``w <- w + lr * D``; FedAvg is ``lr = 1``.

    Attributes:
        lr: Server learning rate, > 0.
    """

    lr: float

    def __post_init__(self) -> None:
        _check_range("lr", self.lr, 0.0, np.inf, closed_low=False)

    def init(self, params: np.ndarray) -> ServerOptState:
        """Return a state with only a step counter; SGD needs nothing else."""
        return ServerOptState(step=0)

    def apply(
        self, params: np.ndarray, delta: np.ndarray, state: ServerOptState
    ) -> tuple[np.ndarray, ServerOptState]:
        """Take one server step along ``delta``."""
        delta = as_update(params, delta)
        return _step(params, self.lr * delta), ServerOptState(step=state.step + 1)


@dataclass(frozen=True, kw_only=True)
class Momentum:
    """FedAvgM (Hsu et al. 2019): ``v <- beta v + D; w <- w + lr v`` with ``v_0 = 0``.

    Server momentum smooths the round-to-round drift that non-IID client
    sampling causes, which is why it helps most on skewed partitions.

    Attributes:
        lr: Server learning rate, > 0.
        momentum: Momentum coefficient ``beta`` in [0, 1).
    """

    lr: float
    momentum: float = 0.9

    def __post_init__(self) -> None:
        _check_range("lr", self.lr, 0.0, np.inf, closed_low=False)
        _check_range("momentum", self.momentum, 0.0, 1.0, closed_low=True)

    def init(self, params: np.ndarray) -> ServerOptState:
        """Start with a zero velocity."""
        zeros = np.zeros(np.shape(params), dtype=np.float64)
        return ServerOptState(step=0, first_moment=_readonly(zeros))

    def apply(
        self, params: np.ndarray, delta: np.ndarray, state: ServerOptState
    ) -> tuple[np.ndarray, ServerOptState]:
        """Accumulate ``delta`` into the velocity and step along the velocity."""
        delta = as_update(params, delta)
        velocity = self.momentum * state.first_moment + delta
        new_state = ServerOptState(step=state.step + 1, first_moment=_readonly(velocity))
        return _step(params, self.lr * velocity), new_state


@dataclass(frozen=True, kw_only=True)
class _Adaptive:
    """Shared FedAdagrad/FedYogi/FedAdam step (Reddi et al. 2021, Algorithm 2).

    ``m_t = b1 m_{t-1} + (1 - b1) D_t`` and
    ``w_{t+1} = w_t + lr m_t / (sqrt(v_t) + tau)`` with ``m_{-1} = 0``,
    ``v_{-1} = tau^2`` and no bias correction, as in the paper. Subclasses only
    choose how ``v_t`` follows from ``v_{-1}`` and ``D_t^2``.

    Attributes:
        lr: Server learning rate, > 0.
        beta1: First-moment decay in [0, 1).
        tau: Adaptivity floor, > 0; larger values make the rule closer to
            momentum SGD with learning rate ``lr / tau``.
    """

    lr: float
    beta1: float = 0.9
    tau: float = 1e-3

    def __post_init__(self) -> None:
        _check_range("lr", self.lr, 0.0, np.inf, closed_low=False)
        _check_range("beta1", self.beta1, 0.0, 1.0, closed_low=True)
        _check_range("tau", self.tau, 0.0, np.inf, closed_low=False)

    def _second_moment(self, previous: np.ndarray, delta_sq: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def init(self, params: np.ndarray) -> ServerOptState:
        """Start with ``m = 0`` and ``v = tau^2`` per coordinate."""
        shape = np.shape(params)
        return ServerOptState(
            step=0,
            first_moment=_readonly(np.zeros(shape, dtype=np.float64)),
            second_moment=_readonly(np.full(shape, self.tau**2, dtype=np.float64)),
        )

    def apply(
        self, params: np.ndarray, delta: np.ndarray, state: ServerOptState
    ) -> tuple[np.ndarray, ServerOptState]:
        """Update both moments and take one adaptive step."""
        delta = as_update(params, delta)
        m = self.beta1 * state.first_moment + (1.0 - self.beta1) * delta
        v = self._second_moment(state.second_moment, delta * delta)
        new_state = ServerOptState(
            step=state.step + 1, first_moment=_readonly(m), second_moment=_readonly(v)
        )
        return _step(params, self.lr * m / (np.sqrt(v) + self.tau)), new_state


@dataclass(frozen=True, kw_only=True)
class FedAdagrad(_Adaptive):
    """FedAdagrad: ``v_t = v_{t-1} + D_t^2`` (step sizes only ever shrink)."""

    def _second_moment(self, previous: np.ndarray, delta_sq: np.ndarray) -> np.ndarray:
        return previous + delta_sq


@dataclass(frozen=True, kw_only=True)
class FedYogi(_Adaptive):
    """FedYogi: ``v_t = v_{t-1} - (1 - b2) D_t^2 sign(v_{t-1} - D_t^2)``.

    The additive, sign-controlled update changes ``v`` more slowly than Adam's
    exponential average, which keeps the step size from blowing up when rare
    large deltas stop arriving.

    Attributes:
        beta2: Second-moment rate in [0, 1).
    """

    beta2: float = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("beta2", self.beta2, 0.0, 1.0, closed_low=True)

    def _second_moment(self, previous: np.ndarray, delta_sq: np.ndarray) -> np.ndarray:
        return previous - (1.0 - self.beta2) * delta_sq * np.sign(previous - delta_sq)


@dataclass(frozen=True, kw_only=True)
class FedAdam(_Adaptive):
    """FedAdam: ``v_t = b2 v_{t-1} + (1 - b2) D_t^2``.

    Attributes:
        beta2: Second-moment decay in [0, 1).
    """

    beta2: float = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range("beta2", self.beta2, 0.0, 1.0, closed_low=True)

    def _second_moment(self, previous: np.ndarray, delta_sq: np.ndarray) -> np.ndarray:
        return self.beta2 * previous + (1.0 - self.beta2) * delta_sq


SERVER_OPTIMIZERS: dict[str, type[ServerOptimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "adam": FedAdam,
    "yogi": FedYogi,
    "adagrad": FedAdagrad,
}


def make_server_optimizer(
    name: str,
    *,
    lr: float,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
) -> ServerOptimizer:
    """Build a server optimiser from flat scenario settings.

    Scenario files carry one flat set of keys whatever the optimiser, so the
    keys an optimiser does not use are accepted and ignored here.

    Args:
        name: One of ``SERVER_OPTIMIZERS``.
        lr: Server learning rate.
        momentum: FedAvgM coefficient (``"momentum"`` only).
        beta1: First-moment decay (adaptive rules only).
        beta2: Second-moment decay (``"adam"`` and ``"yogi"`` only).
        tau: Adaptivity floor (adaptive rules only).

    Returns:
        The configured optimiser.

    Raises:
        ValueError: If ``name`` is unknown or a used setting is out of range.
    """
    if name not in SERVER_OPTIMIZERS:
        raise ValueError(f"name must be one of {sorted(SERVER_OPTIMIZERS)}, got {name!r}")
    cls = SERVER_OPTIMIZERS[name]
    settings = {"lr": lr, "momentum": momentum, "beta1": beta1, "beta2": beta2, "tau": tau}
    accepted = {field.name for field in fields(cls)}
    return cls(**{key: value for key, value in settings.items() if key in accepted})
