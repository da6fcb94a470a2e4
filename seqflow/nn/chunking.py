"""Chunked one-pass inference of causal sequence conditioners over long sequences.

A causal conditioner's output at ``t`` depends on its inputs at ``t`` and before, up to its
receptive field. At inference the one pass (MAF density, IAF sampling) therefore runs over time
in chunks: every causal layer carries the inputs it still needs from the previous chunk (the
last ``lookback`` columns of a dilated convolution, the state of an LSTM), so each chunk
computes exactly its own columns, no column is computed twice, and the result equals the
whole-sequence pass up to float rounding. The activations alive at once scale with
``batch x chunk``, not with ``batch x time``: peak memory is bounded by the chunk, the
working set stays near the caches, and no activation is large enough to be mapped and
faulted in afresh by the allocator on every call.

Chunking applies automatically when no gradient is recorded and the sequence is longer than
one chunk of :func:`get_chunk_values` ``// batch`` steps (never shorter than the model's
receptive field). Override it with :func:`set_chunk_values`, or temporarily with
:func:`chunk_values`; ``0`` turns chunking off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

DEFAULT_CHUNK_VALUES = 1 << 14  # batch x steps per chunk
MIN_CHUNK_STEPS = 256
_chunk_values = DEFAULT_CHUNK_VALUES


def set_chunk_values(values: int | None) -> None:
    """Batch x steps per chunk of later one passes (``0``: no chunking; ``None``: default)."""
    global _chunk_values
    if values is None:
        _chunk_values = DEFAULT_CHUNK_VALUES
        return
    if isinstance(values, bool) or not isinstance(values, int) or values < 0:
        raise ValueError(f"set_chunk_values: values must be an int >= 0 or None, got {values!r}")
    _chunk_values = values


def get_chunk_values() -> int:
    """Batch x steps per chunk of the one pass at inference (``0``: no chunking)."""
    return _chunk_values


@contextmanager
def chunk_values(values: int | None) -> Iterator[None]:
    """Use :func:`set_chunk_values` ``(values)`` inside the block, then restore the setting."""
    before = _chunk_values
    set_chunk_values(values)
    try:
        yield
    finally:
        set_chunk_values(before)


def chunk_steps(batch: int, length: int, receptive_field: int | None) -> int | None:
    """Steps per chunk for a one pass over ``(batch, ., length)``, or None for one piece.

    None while gradients are recorded (the chunks would all stay alive for backward), when
    chunking is off, or when the sequence fits in one chunk.
    """
    values = _chunk_values
    if values == 0 or torch.is_grad_enabled():
        return None
    steps = max(values // max(batch, 1), MIN_CHUNK_STEPS, receptive_field or 0)
    return steps if length > steps else None
