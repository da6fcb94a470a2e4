"""The number of intra-op threads of the streaming loops.

One streaming step is a few dozen operations on ``(batch, width)`` tensors with ``width`` in the
tens: far too little work to split. With more than one intra-op thread each of them pays a
thread wake-up and a barrier, which on a busy machine costs more than the arithmetic (measured
in ``docs/benchmarks.md``). :func:`streaming_threads` therefore runs the sequential direction
on :func:`get_streaming_threads` threads (1 unless overridden) and restores the caller's
setting afterwards, whatever happens inside.

Override, in order of precedence:

* :func:`set_streaming_threads` ``(n)`` in the process (``None`` returns to the default);
* the environment variable ``SEQFLOW_STREAM_THREADS`` (a positive integer, or ``0`` to keep
  the process setting, i.e. ``torch.get_num_threads()``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

ENV_VAR = "SEQFLOW_STREAM_THREADS"
DEFAULT_THREADS = 1
_override: int | None = None


def set_streaming_threads(threads: int | None) -> None:
    """Threads of every later streaming loop: a positive number, ``0`` for the process
    setting, or ``None`` for the default (the environment variable, else 1)."""
    global _override
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 0):
        raise ValueError(f"set_streaming_threads: threads must be an int >= 0 or None, "
                         f"got {threads!r}")
    _override = threads


def get_streaming_threads() -> int:
    """The intra-op threads a streaming loop runs on (``0``: keep the process setting)."""
    if _override is not None:
        return _override
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return DEFAULT_THREADS
    if not value.isdigit():
        raise ValueError(f"{ENV_VAR} must be a non-negative integer, got {value!r}")
    return int(value)


@contextmanager
def streaming_threads() -> Iterator[int]:
    """Run the block on :func:`get_streaming_threads` threads; restore the caller's count.

    Yields the thread count in effect inside the block.
    """
    wanted = get_streaming_threads()
    before = torch.get_num_threads()
    if wanted == 0 or wanted == before:
        yield before
        return
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)
