"""torch.func's gradient transforms without importing ``torch._dynamo``.

Every backward pass of ``torch.func.grad`` (and ``vjp``, ``jacrev``) runs inside
``torch._dynamo.compiled_autograd._disable()``: should ``torch.compile`` have switched compiled
autograd on, the transform's own backward must not be compiled. Merely reaching that attribute
imports the whole of ``torch._dynamo`` (its tracer, sympy and, where installed, triton): about
80 MB of memory and 1-1.5 s of CPU in every client actor that trains a batch of models, for a
context that does nothing unless compiled autograd was switched on, which only code that has
imported ``torch._dynamo`` can do.

:func:`install` puts a twin of functorch's helper (``eager_transforms._autograd_grad``) in its
place. While ``torch._dynamo`` is not loaded, the twin switches compiled autograd off through
torch's C binding directly (what ``_disable`` does underneath) around the same
``torch.autograd.grad`` call; once it is loaded (a user's ``torch.compile``), the twin hands over
to torch's own helper. Gradients are the same bits either way (tests/models).

A torch whose helper does not reach for dynamo (older ones) needs no twin; one whose helper no
longer has the signature the twin mirrors, or whose C binding takes other arguments, keeps its
own helper: correct, only heavier.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Callable, Sequence

import torch

_PARAMETERS = ("outputs", "inputs", "grad_outputs", "retain_graph", "create_graph")


@functools.cache
def install() -> bool:
    """Replaces functorch's backward helper by :func:`autograd_grad` (once per process); False
    where this torch's helper is not the one the twin mirrors, which is then left in place."""
    from torch._functorch import eager_transforms

    original = getattr(eager_transforms, "_autograd_grad", None)
    code = getattr(original, "__code__", None)
    if code is None or "_dynamo" not in code.co_names:
        return False  # no such helper, or one that never reaches for dynamo: nothing to replace
    if tuple(inspect.signature(original).parameters) != _PARAMETERS or not _compiler_switch_works():
        return False
    eager_transforms._autograd_grad = functools.partial(autograd_grad, original=original)
    return True


def _compiler_switch_works() -> bool:
    """Whether torch's C binding switches compiled autograd as the twin calls it (off, then
    back to what it was), tried once."""
    try:
        switch = torch._C._dynamo.compiled_autograd.set_autograd_compiler
        prior = switch(None, False)
    except (AttributeError, TypeError):
        return False
    switch(*prior)
    return True


def autograd_grad(
    outputs: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor],
    grad_outputs: Sequence[torch.Tensor] | None = None,
    retain_graph: bool = False,
    create_graph: bool = True,
    *,
    original: Callable[..., tuple[torch.Tensor, ...]],
) -> tuple[torch.Tensor, ...]:
    """functorch's helper in :func:`install`'s place: torch's own once ``torch._dynamo`` is
    loaded, :func:`grad_without_dynamo` until then."""
    helper = original if "torch._dynamo" in sys.modules else grad_without_dynamo
    return helper(outputs, inputs, grad_outputs, retain_graph, create_graph)


def grad_without_dynamo(
    outputs: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor],
    grad_outputs: Sequence[torch.Tensor] | None,
    retain_graph: bool,
    create_graph: bool,
) -> tuple[torch.Tensor, ...]:
    """Gradients of ``outputs`` with respect to ``inputs`` as functorch's helper computes them
    (outputs that need no gradient are skipped, an input nothing depends on gets zeros), with
    compiled autograd off for the call."""
    if grad_outputs is None:
        pairs = [(out, None) for out in outputs if out.requires_grad]
    else:
        pairs = [(out, grad) for out, grad in zip(outputs, grad_outputs) if out.requires_grad]
    if not pairs:
        return tuple(torch.zeros_like(inp) for inp in inputs)
    differentiable = [out for out, _ in pairs]
    seeds = None if grad_outputs is None else [grad for _, grad in pairs]
    compiled_autograd = torch._C._dynamo.compiled_autograd
    prior = compiled_autograd.set_autograd_compiler(None, False)
    try:
        grads = torch.autograd.grad(differentiable, inputs, seeds, retain_graph=retain_graph,
                                    create_graph=create_graph, allow_unused=True)
    finally:
        compiled_autograd.set_autograd_compiler(*prior)
    return tuple(torch.zeros_like(inp) if grad is None else grad for grad, inp in zip(grads, inputs))
