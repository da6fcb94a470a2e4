"""One contract over every public transform: classic, MAF/IAF, sequence MAF/IAF/stack, WaveGlow.

For each: both directions invert each other, ``logabsdet`` has shape ``(batch,)``, the inverse's
log-determinant is the negative of the forward's, and both equal ``log|det J|`` of an autograd
Jacobian in float64. A last test fails when a transform is exported without a case here.
"""

from __future__ import annotations

import pytest
import torch

import seqflow.transforms as T
from seqflow.data.features import LogMel, MelConfig
from seqflow.data.linear_prediction import LinearPredictionConfig
from seqflow.nn import MADE, SequenceContext

SMALL = dict(residual_channels=4, skip_channels=4, blocks=2)
LP_MEL = MelConfig(n_fft=32, hop_length=4, win_length=32, n_mels=4)


def _vector(cls, **kw):
    return lambda: cls(3, **kw)


CASES = {
    "Planar": (_vector(T.Planar), "vector"),
    "Radial": (_vector(T.Radial), "vector"),
    "Planar[context]": (_vector(T.Planar, context_features=2), "vector-context"),
    "Radial[context]": (_vector(T.Radial, context_features=2), "vector-context"),
    "AdditiveCoupling": (_vector(T.AdditiveCoupling), "vector"),
    "AffineCoupling": (_vector(T.AffineCoupling), "vector"),
    "Scaling": (_vector(T.Scaling), "vector"),
    "ActNorm": (_vector(T.ActNorm), "vector"),
    "InvertibleLinear": (_vector(T.InvertibleLinear), "vector"),
    "BatchNormFlow": (_vector(T.BatchNormFlow), "vector"),
    "Reverse": (_vector(T.Reverse), "vector"),
    "RandomPermutation": (_vector(T.RandomPermutation), "vector"),
    "MAF": (_vector(T.MAF, hidden_features=6, order="random", seed=1), "vector"),
    "IAF": (_vector(T.IAF, hidden_features=6, context_features=2), "vector-context"),
    "AutoregressiveAffine": (lambda: T.AutoregressiveAffine(MADE(3, 6), 3, "noise"), "vector"),
    "Compose": (lambda: T.Compose([T.MAF(3, hidden_features=6), T.Reverse(3)]), "vector"),
    "Inverse": (lambda: T.Inverse(T.IAF(3, hidden_features=6)), "vector"),
    "SequenceMAF": (lambda: T.SequenceMAF(2, **SMALL, cond_channels=2, upsample_factor=2,
                                          num_global_ids=3), "sequence-context"),
    "SequenceIAF": (lambda: T.SequenceIAF(2, conditioner="lstm", hidden_features=4,
                                          head_features=4), "sequence"),
    "SequenceStack": (lambda: T.SequenceStack(
        [T.SequenceMAF(2, **SMALL, cond_channels=2, num_global_ids=3, order=o)
         for o in ("natural", "reversed")], cond_channels=2, upsample_factor=2),
        "sequence-context"),
    "LinearPrediction": (lambda: T.LinearPrediction(
        LP_MEL, LinearPredictionConfig(order=3, interpolation="reflection")), "mono-mel"),
    "WaveGlow": (lambda: T.WaveGlow(1, squeeze_factor=2, steps=2, residual_channels=4,
                                    blocks=2), "waveglow"),
}


def _inputs(kind: str):
    g = torch.Generator().manual_seed(3)
    if kind.startswith("vector"):
        x = torch.randn(2, 3, generator=g, dtype=torch.float64)
        return x, (torch.randn(2, 2, generator=g, dtype=torch.float64)
                   if kind == "vector-context" else None)
    if kind == "waveglow":
        return torch.randn(2, 1, 8, generator=g, dtype=torch.float64), None
    if kind == "mono-mel":  # mono audio and its log-mel, the filter's context
        x = torch.randn(2, 1, 16, generator=g, dtype=torch.float64)
        return x, LogMel(LP_MEL)(x[:, 0]).double()
    x = torch.randn(2, 2, 6, generator=g, dtype=torch.float64)
    if kind == "sequence-context":
        return x, SequenceContext(torch.randn(2, 2, 3, generator=g, dtype=torch.float64),
                                  torch.tensor([0, 2]))
    return x, None


def _built(name: str):
    build, kind = CASES[name]
    torch.manual_seed(0)
    transform = build().double()
    x, context = _inputs(kind)
    transform.train()
    transform(x * 2 + 1, context)  # data-dependent layers initialize (ActNorm, BatchNorm)
    with torch.no_grad():
        for p in transform.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return transform.eval(), x, context


def _logdet_by_autograd(fn, one: torch.Tensor) -> torch.Tensor:
    """``log|det d fn(one) / d one|`` for a single sample ``one`` ``(1, ...)``."""
    jac = torch.autograd.functional.jacobian(lambda v: fn(v.view_as(one)).flatten(),
                                             one.flatten())
    return torch.linalg.slogdet(jac).logabsdet


@pytest.mark.parametrize("name", sorted(CASES))
def test_inverse_logdet_and_jacobian(name):
    transform, x, context = _built(name)
    z, logdet = transform(x, context)
    assert z.shape == x.shape and logdet.shape == (x.shape[0],)
    back, logdet_inv = transform.inverse(z, context)
    torch.testing.assert_close(back, x, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(logdet_inv, -logdet, rtol=1e-8, atol=1e-8)
    for i in range(x.shape[0]):
        ctx = context
        if isinstance(context, SequenceContext):
            ctx = SequenceContext(context.local[i:i + 1], context.global_ids[i:i + 1])
        elif context is not None:
            ctx = context[i:i + 1]
        expected = _logdet_by_autograd(lambda v: transform(v, ctx)[0], x[i:i + 1])  # noqa: B023
        torch.testing.assert_close(logdet[i], expected, rtol=1e-7, atol=1e-7)


def test_every_public_transform_has_a_contract_case():
    exported = {name for name in T.__all__
                if isinstance(getattr(T, name), type) and issubclass(getattr(T, name),
                                                                     T.Transform)}
    exported.discard("Transform")  # the abstract base
    assert exported <= set(CASES), f"no contract case for {sorted(exported - set(CASES))}"
