"""Torch's intra-op thread count: one context manager, and the count of the streaming loops.

:class:`intra_op_threads` ``(n)`` runs a block on ``n`` intra-op threads (``None``: keep the
caller's count) and restores the caller's count afterwards, whatever happens inside. Every
place in seqflow that changes the count for a while goes through it: the streaming loops, the
vocoder and the ONNX export timing (``threads``), and the engine (``train.cpu_threads``).

One streaming step is a few dozen operations on ``(batch, width)`` tensors with ``width`` in the
tens: far too little work to split. With more than one intra-op thread each of them pays a
thread wake-up and a barrier, which on a busy machine costs more than the arithmetic (measured
in ``docs/benchmarks.md``). :func:`streaming_threads` therefore runs the sequential direction
on :func:`get_streaming_threads` threads (1 unless overridden).

Override, in order of precedence:

* :func:`set_streaming_threads` ``(n)`` in the process (``None`` returns to the default);
* the environment variable ``SEQFLOW_STREAM_THREADS`` (a positive integer, or ``0`` to keep
  the process setting, i.e. ``torch.get_num_threads()``).
"""

from __future__ import annotations

import os

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


class intra_op_threads:  # lower case: used like a function, `with intra_op_threads(n): ...`
    """Run the block on ``threads`` torch intra-op threads (``None``: keep the caller's count).

    Entering returns the count in effect inside the block; leaving restores the caller's count
    (also after an exception). The count is only set where it changes. A plain class rather
    than a generator, so that one held open across calls (the engine's, from construction to
    :meth:`~seqflow.train.Trainer.close`) never restores anything when garbage-collected.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with intra_op_threads(1) as used:
    ...     used, torch.get_num_threads()
    (1, 1)
    >>> torch.get_num_threads() == before
    True
    """

    def __init__(self, threads: int | None) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        self.threads = threads
        self._before: int | None = None

    def __enter__(self) -> int:
        self._before = torch.get_num_threads()
        if self.threads is not None and self.threads != self._before:
            torch.set_num_threads(self.threads)
        return torch.get_num_threads()

    def __exit__(self, *exc: object) -> None:
        if self._before is not None and torch.get_num_threads() != self._before:
            torch.set_num_threads(self._before)


def streaming_threads() -> intra_op_threads:
    """Run the block on :func:`get_streaming_threads` threads; restore the caller's count.

    Entering returns the thread count in effect inside the block.
    """
    return intra_op_threads(get_streaming_threads() or None)
