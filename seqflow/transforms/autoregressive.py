"""One autoregressive affine transform, two directions (MAF and IAF), one sequential driver.

An autoregressive conditioner maps ``y`` to per-element parameters ``(shift, raw_log_scale)``
where the parameters of element ``i`` depend only on elements before ``i`` in a fixed order.
The affine map between data ``x`` and noise ``z`` is

    z_i = (x_i - mu_i) * exp(-s_i),        x_i = z_i * exp(s_i) + mu_i,

with ``s = soft_clamp(raw_log_scale, log_scale_bound)``, or with an explicit lower floor
``s = floored_log_scale(raw_log_scale, log_scale_floor, log_scale_bound)`` when
``log_scale_floor`` is given (see :func:`~seqflow.transforms.elementwise.bound_log_scale`).

* MAF (``conditioner_side="data"``): ``(mu, s) = c(x)``. ``forward`` (density) is one
  conditioner pass; ``inverse`` (sampling) is sequential.
* IAF (``conditioner_side="noise"``): ``(mu, s) = c(z)``. ``inverse`` (sampling) is one pass;
  ``forward`` (density of arbitrary data) is sequential.

The sequential direction runs :func:`sequential`, the one driver of the stream-state protocol
(:mod:`seqflow.nn.streaming`): vectors are one time step whose groups are the features; a
sequence layer or a stack of layers goes through its layers in turn at every time step; a
history primes the states first. :meth:`AutoregressiveAffine.naive_sequential` is the reference
it is tested against: one full conditioner pass per element.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.checks import check_context, check_input, describe_nonfinite
from seqflow.nn.context import Context
from seqflow.nn.streaming import progress_hook
from seqflow.nn.threads import streaming_threads
from seqflow.transforms.base import Transform, sum_except_batch
from seqflow.transforms.elementwise import LOG_SCALE_BOUND, bound_log_scale


def affine(y: Tensor, shift: Tensor, log_scale: Tensor, inverse: bool) -> Tensor:
    """The elementwise map of every autoregressive affine layer, any shape.

    ``inverse=True``: noise -> data, ``x = z * exp(s) + mu``; ``False``: data -> noise,
    ``z = (x - mu) * exp(-s)``. Its log|det| per element is ``s`` resp. ``-s``.
    """
    if inverse:
        return torch.addcmul(shift, y, torch.exp(log_scale))
    return (y - shift) * torch.exp(-log_scale)


class AutoregressiveAffine(Transform):
    """Affine autoregressive transform with a pluggable conditioner.

    Args:
        conditioner: module with ``forward(y, context) -> (shift, raw_log_scale)``, both shaped
            like ``y``, respecting an autoregressive order, and ``start_stream(batch, context,
            length, history)`` returning a stream state (:mod:`seqflow.nn.streaming`);
            optionally ``num_sequential_steps(y_like)`` for :meth:`naive_sequential`.
        features: size of axis 1 (features or channels).
        conditioner_side: ``"data"`` for MAF, ``"noise"`` for IAF.
        log_scale_bound: ``s`` is bounded to ``(-bound, bound)`` by
            :func:`~seqflow.transforms.soft_clamp`, or from above when a floor is given;
            default :data:`~seqflow.transforms.elementwise.LOG_SCALE_BOUND` (6).
        log_scale_floor: None (symmetric bound), or a negative lower limit of ``s``
            (:func:`~seqflow.transforms.elementwise.floored_log_scale`).
        context_features: size of axis 1 of a vector context, or None (sequence conditioners
            validate their own context).
        sequence: inputs are ``(batch, channels, time)`` instead of ``(batch, features)``.
    """

    def __init__(
        self,
        conditioner: nn.Module,
        features: int,
        conditioner_side: Literal["data", "noise"],
        log_scale_bound: float = LOG_SCALE_BOUND,
        context_features: int | None = None,
        sequence: bool = False,
        log_scale_floor: float | None = None,
    ):
        super().__init__()
        if conditioner_side not in ("data", "noise"):
            raise ValueError(
                f"conditioner_side must be 'data' or 'noise', got {conditioner_side!r}"
            )
        if not log_scale_bound > 0:
            raise ValueError(f"log_scale_bound must be > 0, got {log_scale_bound}")
        if log_scale_floor is not None and not log_scale_floor < 0:
            raise ValueError(f"log_scale_floor must be < 0 (or None), got {log_scale_floor}")
        self.conditioner = conditioner
        self.features = features
        self.conditioner_side = conditioner_side
        self.log_scale_bound = log_scale_bound
        self.log_scale_floor = log_scale_floor
        self.context_features = context_features
        self.sequence = sequence

    def validate(self, y: Tensor, context: Context, direction: str) -> None:
        """Raise a one-line error when ``y`` (or a vector context) does not fit this layer."""
        name = f"{type(self).__name__}.{direction}"
        if self.sequence:
            if not isinstance(y, Tensor) or y.dim() != 3 or y.shape[1] != self.features:
                shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                raise ValueError(f"{name}: expected (batch, {self.features}, time), got {shape}")
            check_input(y, self.features, name, allow_sequence=True)
            if y.shape[0] == 0 or y.shape[-1] == 0:
                raise ValueError(f"{name}: got an empty sequence batch of shape {tuple(y.shape)}")
            return
        check_input(y, self.features, name)
        if y.shape[0] == 0:
            raise ValueError(f"{name}: got an empty batch of shape {tuple(y.shape)}")
        check_context(context, self.context_features, y.shape[0], name)

    def params(self, y: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """``(shift, log_scale)`` of every element from the conditioner-side values ``y``.

        For a MAF ``y`` is data, for an IAF noise; ``log_scale`` is already bounded. Shapes
        follow ``y``. This is the per-element Gaussian that density distillation needs.
        """
        shift, raw = self.conditioner(y, context)
        return shift, self.bound_log_scale(raw)

    def bound_log_scale(self, raw: Tensor) -> Tensor:
        """The bounded log-scale ``s`` of raw conditioner outputs (any shape)."""
        return bound_log_scale(raw, self.log_scale_bound, self.log_scale_floor)

    @property
    def element_order(self) -> Tensor:
        """The autoregressive degree of each feature or channel (earlier degrees first)."""
        net = self.conditioner
        degrees = getattr(net, "degrees", None)
        return degrees if degrees is not None else net.input_degrees

    def check_step_affine(self, inverse: bool) -> None:
        if (self.conditioner_side == "noise") != inverse:
            direction = "inverse (generative)" if inverse else "forward (normalizing)"
            raise ValueError(f"{type(self).__name__}: its conditioner reads the output side in "
                             f"the {direction} direction, which is sequential; the one-pass "
                             "per-step Gaussian needs IAF layers in the inverse direction and "
                             "MAF layers in the forward direction")

    def step_affine(self, u: Tensor, context: Context, inverse: bool
                    ) -> tuple[Tensor, Tensor, Tensor]:
        self.check_step_affine(inverse)
        self.validate(u, context, "per-step Gaussian")
        shift, log_scale = self.params(u, context)
        if not inverse:  # z = (x - mu) exp(-s) = x exp(-s) - mu exp(-s)
            shift, log_scale = -shift * torch.exp(-log_scale), -log_scale
        return torch.addcmul(shift, u, torch.exp(log_scale)), shift, log_scale

    # --- one-pass directions -------------------------------------------------------------
    def _one_pass(self, y: Tensor, context: Context, inverse: bool) -> tuple[Tensor, Tensor]:
        shift, log_scale = self.params(y, context)
        logdet = sum_except_batch(log_scale)
        return affine(y, shift, log_scale, inverse), (logdet if inverse else -logdet)

    # --- sequential directions -----------------------------------------------------------
    def naive_sequential(self, inputs: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """The sequential direction by brute force: one full conditioner pass per element.

        After pass ``k`` the first ``k`` elements in the order are exact, so ``n`` passes
        (``n`` = number of elements per sample, or the conditioner's
        ``num_sequential_steps``) give the exact result. The reference for :func:`sequential`.
        """
        inverse = self.conditioner_side == "data"
        self.validate(inputs, context, "naive_sequential")
        steps_fn = getattr(self.conditioner, "num_sequential_steps", None)
        steps = steps_fn(inputs) if steps_fn is not None else inputs[0].numel()
        outputs = torch.zeros_like(inputs)
        for _ in range(steps):
            shift, log_scale = self.params(outputs, context)
            outputs = affine(inputs, shift, log_scale, inverse)
        total = sum_except_batch(log_scale)
        return outputs, (total if inverse else -total)

    def sequential(
        self, inputs: Tensor, context: Context = None, history: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The sequential direction, optionally continuing after ``history`` (see
        :func:`sequential`)."""
        return sequential([self], inputs, context, history)

    # --- the contract --------------------------------------------------------------------
    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """Data -> noise. One pass for MAF, sequential for IAF."""
        if self.conditioner_side == "noise":
            return sequential([self], x, context)
        self.validate(x, context, "forward")
        return self._one_pass(x, context, inverse=False)

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """Noise -> data. One pass for IAF, sequential for MAF."""
        if self.conditioner_side == "data":
            return sequential([self], z, context)
        self.validate(z, context, "inverse")
        return self._one_pass(z, context, inverse=True)


def sequential(
    layers: Sequence[AutoregressiveAffine],
    inputs: Tensor,
    context: Context = None,
    history: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Run the sequential direction of autoregressive layers of one kind, jointly.

    ``layers`` are in ``forward`` order (all MAF or all IAF). For MAF layers this is sampling:
    ``inputs`` is noise and the result data; for IAF layers it is density evaluation: ``inputs``
    is data and the result noise. At each time step the layers are visited in the order this
    direction applies them, one group at a time in each conditioner's order, so step ``t`` of
    the output is final before step ``t + 1`` of the input is read (live streaming, forecasting).

    ``inputs`` is ``(batch, features)`` (one step) or ``(batch, channels, time)``. ``history``
    ``(batch, channels, T0)`` holds what the conditioners read during earlier steps, i.e. the
    *result side* (data for MAF, noise for IAF); the call then continues that sequence and a
    local context must cover ``T0 + time`` samples. Returns the result shaped like ``inputs``
    and the log-determinant of the map from ``inputs`` to it, ``(batch,)``.

    When every stream state offers ``run_sequence`` (``runs_sequences`` true: the MADE
    program and the compiled WaveNet kernels, all without gradient recording),
    each layer runs all its steps in one call, layer after layer; the result is the same,
    since nothing is returned before every step is done. The loop runs on the intra-op thread
    count of :mod:`seqflow.nn.threads` (1 unless overridden) and restores the caller's.
    """
    first = layers[0]
    first.validate(inputs, context, "sequential")
    if len({layer.conditioner_side for layer in layers}) != 1:
        raise ValueError("sequential: layers must all be MAF or all IAF")
    vector = inputs.dim() == 2
    if history is not None:
        if vector:
            raise ValueError("sequential: a history only applies to sequences")
        if (history.dim() != 3 or history.shape[:2] != inputs.shape[:2]
                or history.shape[-1] == 0):
            raise ValueError(
                f"sequential: history must be a non-empty (batch, channels, steps) matching "
                f"inputs {tuple(inputs.shape)}, got {tuple(history.shape)}"
            )
        first.validate(history, None, "sequential history")
        problem = describe_nonfinite(history)
        if problem is not None:
            raise ValueError(f"sequential: history has {problem}")
    inverse = first.conditioner_side == "data"
    order = list(reversed(layers)) if inverse else list(layers)
    u_all = inputs.unsqueeze(-1) if vector else inputs
    batch, channels, length = u_all.shape
    with streaming_threads():
        histories = _layer_histories(layers, history, context, inverse, length)
        states = [
            layer.conditioner.start_stream(batch, context, length, h)
            for layer, h in zip(order, histories, strict=True)
        ]
        # Every prepared whole-sequence run computes soft_clamp(raw, bound); those with
        # ``runs_floored`` also the floored log-scale. Other layers step below.
        compiled = all(getattr(state, "runs_sequences", False)
                       and (layer.log_scale_floor is None or getattr(state, "runs_floored", False))
                       for layer, state in zip(order, states, strict=True))
        hook = progress_hook()
        span = length if hook is None else hook.chunk
        if compiled:
            # Whole chunks, layer after layer: the same result as visiting the layers at every
            # step, since every layer is causal and each state continues across chunks.
            pieces, logdet = [], inputs.new_zeros(batch)
            for start in range(0, length, span):
                u = inputs if vector else u_all[..., start:start + span]  # a vector is one step
                for layer, state in zip(order, states, strict=True):
                    floor = ({} if layer.log_scale_floor is None
                             else {"floor": layer.log_scale_floor})
                    u, layer_logdet = state.run_sequence(u, layer.log_scale_bound, inverse,
                                                         **floor)
                    logdet = logdet + layer_logdet
                pieces.append(u)
                if hook is not None:
                    hook.report(u.shape[-1])
            outputs = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)
            return outputs, (logdet if inverse else -logdet)
        plan = [(state, state.order, layer.bound_log_scale)
                for layer, state in zip(order, states, strict=True)]
        step = _step_one_channel if channels == 1 else _step_channels
        log_scales: list[Tensor] = []  # summed once at the end: fewer ops, pairwise accuracy
        columns = []
        for t, u in enumerate(u_all.unbind(-1)):
            for state, groups, bound in plan:
                u = step(state, groups, u, bound, inverse, log_scales)
            columns.append(u)
            if hook is not None and ((t + 1) % span == 0 or t + 1 == length):
                hook.report((t % span) + 1)
        outputs = columns[0] if vector else torch.stack(columns, dim=-1)
        logdet = torch.stack(log_scales).sum(0).view(batch, -1).sum(1)
    return outputs, (logdet if inverse else -logdet)


def _step_one_channel(state, groups: list[int], u: Tensor, bound: Callable[[Tensor], Tensor],
                      inverse: bool, log_scales: list[Tensor]) -> Tensor:
    """One time step of one layer on a single channel: ``u`` ``(batch, 1)`` -> ``(batch, 1)``."""
    for c in groups:  # [0], or [] for a conditioner without groups
        shift, raw = state.params(c).split(1, dim=1)
        log_scale = bound(raw)
        u = affine(u, shift, log_scale, inverse)
        log_scales.append(log_scale)
        state.feed(c, u)
    state.advance()
    return u


def _step_channels(state, groups: list[int], u: Tensor, bound: Callable[[Tensor], Tensor],
                   inverse: bool, log_scales: list[Tensor]) -> Tensor:
    """One time step of one layer, one channel group at a time: ``(batch, C) -> (batch, C)``."""
    values = list(u.unbind(1))
    for c in groups:
        p = state.params(c)
        log_scale = bound(p[:, 1])
        values[c] = affine(values[c], p[:, 0], log_scale, inverse)
        log_scales.append(log_scale)
        state.feed(c, values[c])
    state.advance()
    return torch.stack(values, dim=1)


def _layer_histories(
    layers: Sequence[AutoregressiveAffine],
    history: Tensor | None,
    context: Context,
    inverse: bool,
    length: int,
) -> list[Tensor | None]:
    """What each layer's conditioner read during ``history``, in the streaming order.

    One-pass directions give these (MAF forward from data, IAF inverse from noise). The history
    is zero-padded to the full length so that the full-length context applies unchanged;
    causality makes the padding irrelevant to the first ``T0`` steps.
    """
    if history is None:
        return [None] * len(layers)
    steps = history.shape[-1]
    y = F.pad(history, (0, length))
    seen = []
    for layer in layers if inverse else reversed(layers):
        seen.append(y[..., :steps])
        y = layer._one_pass(y, context, inverse=not inverse)[0]
    return list(reversed(seen))  # both loops above run against the streaming order
