"""Shared helpers for the sequence-flow tests (WaveNet, streaming, SequenceMAF/IAF, WaveGlow)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqflow.nn.context import SequenceContext


def perturb(module: nn.Module, scale: float = 0.3, seed: int = 0) -> nn.Module:
    """Add Gaussian noise to every parameter, including zero-initialized output layers.

    Fresh flows start as the identity, which would let gradient and streaming tests pass
    trivially; masked-out weights get noise too, so only the masks can keep them silent.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            p.add_(scale * noise.to(p))
    return module


def conditioning_kwargs(cond: bool) -> dict:
    """Local features (2 channels, 4 samples per frame) and 3 global ids, or nothing."""
    return dict(cond_channels=2, upsample_factor=4, num_global_ids=3) if cond else {}


def make_context(cond: bool, batch: int, length: int, device=None, dtype=torch.float32):
    """A :class:`SequenceContext` matching :func:`conditioning_kwargs`, or None."""
    if not cond:
        return None
    generator = torch.Generator().manual_seed(123)
    local = torch.randn(batch, 2, length // 4, generator=generator, dtype=dtype)
    ids = torch.arange(batch) % 3
    return SequenceContext(local, ids).to(device) if device is not None else SequenceContext(
        local, ids
    )


def jacobian_logabsdet(fn, x: torch.Tensor) -> torch.Tensor:
    """``log|det d fn(x) / dx|`` for one sample ``x`` ``(1, ...)`` by autograd (use float64)."""
    jac = torch.autograd.functional.jacobian(lambda v: fn(v.view_as(x)).flatten(), x.flatten())
    return torch.linalg.slogdet(jac).logabsdet


@pytest.fixture(autouse=True)
def single_thread():
    """Run on one intra-op thread: these tensors are tiny, and on a shared 2-core machine
    OpenMP barrier waits under oversubscription cost far more than the second thread gains."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
