"""One autoregressive affine transform, two directions: MAF and IAF.

An autoregressive conditioner maps ``y`` to per-element parameters ``(shift, raw_log_scale)``
where the parameters of element ``i`` depend only on elements before ``i`` in a fixed order.
The affine map between data ``x`` and noise ``z`` is

    z_i = (x_i - mu_i) * exp(-s_i),        x_i = z_i * exp(s_i) + mu_i,

with ``s = soft_clamp(raw_log_scale, log_scale_bound)``.

* MAF (``conditioner_side="data"``): ``(mu, s) = c(x)``. ``forward`` (density) is one
  conditioner pass; ``inverse`` (sampling) is sequential.
* IAF (``conditioner_side="noise"``): ``(mu, s) = c(z)``. ``inverse`` (sampling) is one pass;
  ``forward`` (density of arbitrary data) is sequential.

The sequential direction asks the conditioner for a *stream*: a generator that yields
``(index, shift, raw_log_scale)`` for the next group of elements whose parameters are
computable and receives (via ``send``) the conditioner-side values of that group. A
conditioner that caches its intermediate state (degree-sliced MADE, ring-buffered WaveNet)
makes the whole sequential direction cost about one pass of arithmetic. Conditioners without
a stream fall back to the naive path: one full pass per element.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

import torch
from torch import Tensor, nn

from seqflow.transforms.base import Transform, check_context, check_input, sum_except_batch
from seqflow.transforms.elementwise import soft_clamp

StreamIndex = Any  # an index usable as ``tensor[index]``, e.g. ``(slice(None), [3, 5])``
ConditionerStream = Generator[tuple[StreamIndex, Tensor, Tensor], Tensor, None]


def affine(y: Tensor, shift: Tensor, log_scale: Tensor, generate: bool) -> Tensor:
    """The elementwise map of every autoregressive affine layer, any shape.

    ``generate=True``: noise -> data, ``x = z * exp(s) + mu``; ``False``: data -> noise,
    ``z = (x - mu) * exp(-s)``. Its log|det| per element is ``s`` resp. ``-s``.
    """
    if generate:
        return y * torch.exp(log_scale) + shift
    return (y - shift) * torch.exp(-log_scale)


class AutoregressiveAffine(Transform):
    """Affine autoregressive transform with a pluggable conditioner.

    Args:
        conditioner: module with ``forward(y, context) -> (shift, raw_log_scale)``, both shaped
            like ``y``, respecting an autoregressive order; optionally ``stream(y_like, context)``
            (see module docstring) and ``num_sequential_steps(y_like)``.
        features: size of axis 1 (features or channels).
        conditioner_side: ``"data"`` for MAF, ``"noise"`` for IAF.
        log_scale_bound: ``s`` is bounded to ``(-bound, bound)`` by :func:`soft_clamp`.
        context_features: size of axis 1 of the context, or None.
        allow_sequence: accept ``(batch, channels, time)`` inputs.
    """

    def __init__(
        self,
        conditioner: nn.Module,
        features: int,
        conditioner_side: Literal["data", "noise"],
        log_scale_bound: float = 6.0,
        context_features: int | None = None,
        allow_sequence: bool = False,
    ):
        super().__init__()
        if conditioner_side not in ("data", "noise"):
            raise ValueError(
                f"conditioner_side must be 'data' or 'noise', got {conditioner_side!r}"
            )
        self.conditioner = conditioner
        self.features = features
        self.conditioner_side = conditioner_side
        self.log_scale_bound = log_scale_bound
        self.context_features = context_features
        self.allow_sequence = allow_sequence
        self.use_streaming = True  # False forces the naive reference path (tests, benchmarks)

    def _validate(self, y: Tensor, context: Tensor | None, direction: str) -> None:
        name = f"{type(self).__name__}.{direction}"
        check_input(y, self.features, name, allow_sequence=self.allow_sequence)
        check_context(context, self.context_features, y.shape[0], name)

    def _params(self, y: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        shift, raw = self.conditioner(y, context)
        return shift, soft_clamp(raw, self.log_scale_bound)

    # --- one-pass directions -------------------------------------------------------------
    def _normalize_one_pass(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._params(x, context)
        return affine(x, shift, log_scale, generate=False), -sum_except_batch(log_scale)

    def _generate_one_pass(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._params(z, context)
        return affine(z, shift, log_scale, generate=True), sum_except_batch(log_scale)

    # --- sequential directions -----------------------------------------------------------
    def _sequential(
        self, inputs: Tensor, context: Tensor | None, generate: bool
    ) -> tuple[Tensor, Tensor]:
        """Solve the direction whose conditioner input is the *output* we are computing.

        ``generate=True``: MAF inverse (inputs are z, outputs x, conditioner reads x).
        ``generate=False``: IAF forward (inputs are x, outputs z, conditioner reads z).
        """
        stream = getattr(self.conditioner, "stream", None)
        if stream is None or not self.use_streaming:
            return self._sequential_naive(inputs, context, generate)
        outputs = torch.zeros_like(inputs)
        logabsdet = inputs.new_zeros(inputs.shape[0])
        gen: ConditionerStream = stream(inputs, context)
        try:
            index, shift, raw = next(gen)
            while True:
                log_scale = soft_clamp(raw, self.log_scale_bound)
                out = affine(inputs[index], shift, log_scale, generate)
                outputs[index] = out
                logabsdet = logabsdet + sum_except_batch(log_scale)
                index, shift, raw = gen.send(out)
        except StopIteration:
            pass
        return outputs, (logabsdet if generate else -logabsdet)

    def _sequential_naive(
        self, inputs: Tensor, context: Tensor | None, generate: bool
    ) -> tuple[Tensor, Tensor]:
        """Reference path: one full conditioner pass per element of the order.

        After pass ``k`` the first ``k`` elements in the order are exact, so ``n`` passes
        (``n`` = number of elements per sample, or the conditioner's
        ``num_sequential_steps``) give the exact result.
        """
        steps_fn = getattr(self.conditioner, "num_sequential_steps", None)
        steps = steps_fn(inputs) if steps_fn is not None else inputs[0].numel()
        outputs = torch.zeros_like(inputs)
        for _ in range(steps):
            shift, log_scale = self._params(outputs, context)
            outputs = affine(inputs, shift, log_scale, generate)
        total = sum_except_batch(log_scale)
        return outputs, (total if generate else -total)

    # --- the contract --------------------------------------------------------------------
    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data -> noise. One pass for MAF, sequential for IAF."""
        self._validate(x, context, "forward")
        if self.conditioner_side == "data":
            return self._normalize_one_pass(x, context)
        return self._sequential(x, context, generate=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Noise -> data. One pass for IAF, sequential for MAF."""
        self._validate(z, context, "inverse")
        if self.conditioner_side == "noise":
            return self._generate_one_pass(z, context)
        return self._sequential(z, context, generate=True)
