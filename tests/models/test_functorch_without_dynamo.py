"""Batched training loads neither torch._dynamo nor sympy, and computes the same bits as torch's
own helper and loss would."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch
import torch.nn.functional as F

from raysim.models import functorch_without_dynamo
from raysim.models.training import _mean_cross_entropy


def test_a_fresh_process_trains_a_batch_of_models_without_dynamo_or_sympy():
    script = textwrap.dedent("""
        import sys, torch
        from raysim.algorithms.sgd import SGDConfig
        from raysim.models.models import build_model
        from raysim.models.params import FlatModel
        from raysim.models.training import train_group
        model = FlatModel(build_model("cnn", input_shape=(1, 28, 28), num_classes=10))
        xs, ys = torch.randn(3, 16, 1, 28, 28), torch.randint(0, 10, (3, 16))
        out = train_group(model, xs, ys, base=model.flat.clone(), epochs=1, batch_size=8, sgd=SGDConfig(lr=0.1),
                          generators=[torch.Generator().manual_seed(i) for i in range(3)])
        assert len(out) == 3 and all(o.steps == 2 and torch.isfinite(o.delta).all() for o in out)
        print(sorted(name for name in ("torch._dynamo", "sympy", "triton") if name in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_install_puts_the_twin_in_functorchs_place():
    """Fails on a torch whose helper the twin does not mirror: runs would still be right, but
    each client actor would load dynamo again (benchmarks/README.md, "Footprint"); update the
    twin to that torch's helper."""
    from torch._functorch import eager_transforms

    assert functorch_without_dynamo.install()  # this torch's helper is the one the twin mirrors
    assert eager_transforms._autograd_grad.func is functorch_without_dynamo.autograd_grad


def test_a_helper_the_twin_does_not_mirror_is_left_in_place(monkeypatch):
    from torch._functorch import eager_transforms

    def never_reaches_for_dynamo(outputs, inputs, grad_outputs=None, retain_graph=False, create_graph=True):
        return ()

    def other_signature(outputs, inputs, *, create_graph=True):
        return torch._dynamo

    for helper in (never_reaches_for_dynamo, other_signature):
        monkeypatch.setattr(eager_transforms, "_autograd_grad", helper)
        assert functorch_without_dynamo.install.__wrapped__() is False  # uncached
        assert eager_transforms._autograd_grad is helper


def test_the_twin_gives_torchs_gradients_for_every_branch():
    from torch._functorch import eager_transforms

    functorch_without_dynamo.install()
    original = eager_transforms._autograd_grad.keywords["original"]
    w = torch.randn(4, requires_grad=True)
    unused = torch.randn(3, requires_grad=True)
    constant = torch.randn(2)
    cases = [
        ([(w**2).sum(), constant.sum()], [w, unused], None),
        ([w * 3, constant], [w], [torch.ones(4), torch.ones(2)]),
        ([constant.sum()], [w], None),  # nothing to differentiate: zeros
    ]
    for outputs, inputs, seeds in cases:
        ours = functorch_without_dynamo.grad_without_dynamo(outputs, inputs, seeds, True, True)
        theirs = original(outputs, inputs, seeds, True, True)  # imports torch._dynamo in this process
        assert len(ours) == len(theirs) and all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_the_twin_hands_over_to_torch_once_dynamo_is_loaded(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "torch._dynamo", object())
    functorch_without_dynamo.autograd_grad([torch.ones(1)], [torch.ones(1)],
                                           original=lambda *args: calls.append(args) or ())
    assert len(calls) == 1


def test_the_gathered_cross_entropy_is_torchs_in_value_and_gradient():
    torch.manual_seed(0)
    logits = torch.randn(32, 10, requires_grad=True)
    labels = torch.randint(0, 10, (32,))
    ours, theirs = _mean_cross_entropy(logits, labels), F.cross_entropy(logits, labels)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    (g_ours,), (g_theirs,) = torch.autograd.grad(ours, logits), torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=1e-7)
