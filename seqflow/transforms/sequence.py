"""MAF and IAF over sequences ``(batch, channels, time)`` with WaveNet or LSTM conditioners.

Both are :class:`~seqflow.transforms.autoregressive.AutoregressiveAffine` with a sequence
conditioner; the order is time-major, then channel.

* :class:`SequenceMAF` (conditioner reads the data): ``forward`` (density) is one pass;
  ``inverse`` (sampling) is sequential and streams in O(1) conditioner work per step.
* :class:`SequenceIAF` (conditioner reads the noise): ``inverse`` (sampling) is one pass;
  ``forward`` (density of given data) is sequential and streams.

:class:`SequenceStack` chains layers of one kind in one time order and streams them jointly:
at each time step it goes through the layers in turn, so step ``t`` of the output is final
before step ``t + 1`` of the input is read (live streaming, forecasting). Every sequential
path can be primed with a history and then continued (:meth:`SequenceStack.sequential`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.nn.context import SequenceContext
from seqflow.nn.lstm import CausalLSTM
from seqflow.nn.wavenet import WaveNet
from seqflow.transforms.autoregressive import AutoregressiveAffine, affine
from seqflow.transforms.base import Transform
from seqflow.transforms.elementwise import soft_clamp

Context = Tensor | SequenceContext | None


def build_conditioner(
    channels: int, conditioner: str | nn.Module = "wavenet", **kwargs
) -> nn.Module:
    """``"wavenet"`` -> :class:`WaveNet`, ``"lstm"`` -> :class:`CausalLSTM`, or a module as is."""
    if isinstance(conditioner, nn.Module):
        if kwargs:
            raise ValueError(f"conditioner options {sorted(kwargs)} given with a ready module")
        return conditioner
    if conditioner == "wavenet":
        return WaveNet(channels, **kwargs)
    if conditioner == "lstm":
        return CausalLSTM(channels, **kwargs)
    raise ValueError(f"conditioner must be 'wavenet', 'lstm' or an nn.Module, got {conditioner!r}")


class _SequenceAutoregressive(AutoregressiveAffine):
    side: Literal["data", "noise"]

    def __init__(
        self,
        channels: int,
        conditioner: str | nn.Module = "wavenet",
        log_scale_bound: float = 6.0,
        **conditioner_kwargs,
    ):
        net = build_conditioner(channels, conditioner, **conditioner_kwargs)
        super().__init__(net, channels, self.side, log_scale_bound, allow_sequence=True)
        self.channels = channels

    def _validate(self, y: Tensor, context: Context, direction: str) -> None:
        # The conditioner validates the context (local features, global ids, lengths).
        if y.dim() != 3 or y.shape[1] != self.channels:
            raise ValueError(
                f"{type(self).__name__}.{direction}: expected (batch, {self.channels}, time), "
                f"got {tuple(y.shape)}"
            )

    @property
    def receptive_field(self) -> int | None:
        return self.conditioner.receptive_field

    def implied_length(self, context: Context) -> int | None:
        return self.conditioner.implied_length(context)

    def sequential(
        self, inputs: Tensor, context: Context = None, history: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The sequential direction, optionally continuing after ``history``.

        See :meth:`SequenceStack.sequential`.
        """
        return stream_layers([self], inputs, context, history)


class SequenceMAF(_SequenceAutoregressive):
    """Masked autoregressive flow on ``(batch, channels, time)``.

    ``z[t, c] = (x[t, c] - mu) * exp(-s)`` with ``(mu, raw) = conditioner(x)`` read from data
    before ``(t, c)`` and ``s = soft_clamp(raw, log_scale_bound)`` (``a / (1 + |a| / bound)``).
    ``forward`` (data -> noise, density) is one pass; ``inverse`` (noise -> data, sampling) is
    sequential and streams (set ``use_streaming = False`` for the naive reference path).

    Args:
        channels: ``C``.
        conditioner: ``"wavenet"`` (default), ``"lstm"`` or a module with the same interface.
        log_scale_bound: bound of the log-scale.
        **conditioner_kwargs: e.g. ``residual_channels``, ``layers``, ``cond_channels``,
            ``global_cond``, ``upsample_factor``, ``channel_order``.

    >>> import torch
    >>> maf = SequenceMAF(1, residual_channels=8, skip_channels=8, layers=3)
    >>> z, logdet = maf(torch.randn(2, 1, 40))
    >>> z.shape, logdet.shape
    (torch.Size([2, 1, 40]), torch.Size([2]))
    """

    side = "data"


class SequenceIAF(_SequenceAutoregressive):
    """Inverse autoregressive flow on ``(batch, channels, time)``.

    ``x[t, c] = z[t, c] * exp(s) + mu`` with ``(mu, raw) = conditioner(z)`` read from noise
    before ``(t, c)``. ``inverse`` (noise -> data, sampling) is one pass; ``forward`` (data ->
    noise, density of given data) is sequential and streams. Arguments as :class:`SequenceMAF`.

    >>> import torch
    >>> iaf = SequenceIAF(2, conditioner="lstm", hidden_size=8, head_features=8)
    >>> x, logdet = iaf.inverse(torch.randn(3, 2, 10))
    >>> x.shape
    torch.Size([3, 2, 10])
    """

    side = "noise"


class SequenceStack(Transform):
    """Sequence MAF (or IAF) layers in one time order that stream jointly.

    ``forward`` applies the layers in order, ``inverse`` in reverse. The one-pass direction
    (MAF ``forward``, IAF ``inverse``) runs layer after layer. The sequential direction goes
    through the layers at every time step, so each step costs O(1) work per layer.

    >>> import torch
    >>> stack = SequenceStack([SequenceMAF(1, residual_channels=4, skip_channels=4, layers=2)
    ...                        for _ in range(2)])
    >>> x, _ = stack.inverse(torch.randn(1, 1, 8))
    >>> x.shape
    torch.Size([1, 1, 8])
    """

    def __init__(self, layers: Iterable[_SequenceAutoregressive]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        sides = {layer.conditioner_side for layer in self.layers}
        if len(self.layers) == 0 or len(sides) != 1:
            raise ValueError(
                "SequenceStack: needs one or more layers of a single kind (all SequenceMAF or "
                f"all SequenceIAF), got conditioner sides {sorted(sides)}"
            )
        self.side = sides.pop()

    @property
    def receptive_field(self) -> int | None:
        fields = [layer.receptive_field for layer in self.layers]
        return None if None in fields else 1 + sum(f - 1 for f in fields)

    def implied_length(self, context: Context) -> int | None:
        return self.layers[0].implied_length(context)

    def _one_pass(self, y: Tensor, context: Context, forward: bool) -> tuple[Tensor, Tensor]:
        total = y.new_zeros(y.shape[0])
        layers = self.layers if forward else reversed(self.layers)
        for layer in layers:
            y, logdet = layer(y, context) if forward else layer.inverse(y, context)
            total = total + logdet
        return y, total

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """Data -> noise: one pass per layer for MAF, joint streaming for IAF."""
        if self.side == "data":
            return self._one_pass(x, context, forward=True)
        return self.sequential(x, context)

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """Noise -> data: joint streaming for MAF, one pass per layer for IAF."""
        if self.side == "noise":
            return self._one_pass(z, context, forward=False)
        return self.sequential(z, context)

    def sequential(
        self, inputs: Tensor, context: Context = None, history: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run the sequential direction over ``inputs`` ``(batch, C, T)``, after ``history``.

        For MAF layers this is sampling: ``inputs`` is noise, the result data. For IAF layers
        it is density evaluation: ``inputs`` is data, the result noise. ``history``
        ``(batch, C, T0)`` holds what the conditioners read, i.e. the *result side* of the
        earlier steps (data for MAF, noise for IAF); with it the call continues that sequence,
        and a local context must cover ``T0 + T`` samples. Returns the result ``(batch, C, T)``
        and the log-determinant of the map from ``inputs`` to it, ``(batch,)``.
        """
        return stream_layers(list(self.layers), inputs, context, history)


def stream_layers(
    layers: list[_SequenceAutoregressive],
    inputs: Tensor,
    context: Context = None,
    history: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Joint streaming of layers of one kind (see :meth:`SequenceStack.sequential`).

    ``layers`` are in ``forward`` order; at each time step they are visited in the order the
    sequential direction applies them, one channel at a time in each layer's channel order.
    """
    layers[0]._validate(inputs, context, "sequential")
    if history is not None and (history.dim() != 3 or history.shape[:2] != inputs.shape[:2]):
        raise ValueError(
            f"sequential: history must be (batch, channels, steps) matching inputs "
            f"{tuple(inputs.shape)}, got {tuple(history.shape)}"
        )
    generate = layers[0].conditioner_side == "data"
    # Layers in the order this direction applies them.
    order = list(reversed(layers)) if generate else list(layers)
    histories = _layer_histories(layers, history, context, generate, inputs.shape[-1])
    batch, channels, length = inputs.shape
    states = [
        layer.conditioner.start_stream(batch, context, length, h)
        for layer, h in zip(order, histories, strict=True)
    ]
    logdet = inputs.new_zeros(batch)
    columns = []
    for t in range(length):
        u = inputs[:, :, t]
        for layer, state in zip(order, states, strict=True):
            values = [u[:, 0]] * channels
            for c in state.order:
                shift, raw = state.params(c)
                log_scale = soft_clamp(raw, layer.log_scale_bound)
                values[c] = affine(u[:, c], shift, log_scale, generate)
                logdet = logdet + log_scale
                state.feed(c, values[c])
            state.advance()
            u = values[0].unsqueeze(1) if channels == 1 else torch.stack(values, dim=1)
        columns.append(u)
    outputs = torch.stack(columns, dim=-1)
    return outputs, (logdet if generate else -logdet)


def _layer_histories(
    layers: Iterable[_SequenceAutoregressive],
    history: Tensor | None,
    context: Context,
    generate: bool,
    length: int,
) -> list[Tensor | None]:
    """What each layer's conditioner read during ``history``, in the streaming order.

    One-pass directions give these (MAF forward from data, IAF inverse from noise). The history
    is zero-padded to the full length so that the full-length context applies unchanged;
    causality makes the padding irrelevant to the first ``T0`` steps.
    """
    layers = list(layers)
    if history is None:
        return [None] * len(layers)
    steps = history.shape[-1]
    y = F.pad(history, (0, length))
    seen = []
    for layer in layers if generate else reversed(layers):
        seen.append(y[..., :steps])
        y = layer(y, context)[0] if generate else layer.inverse(y, context)[0]
    return list(reversed(seen))  # both loops above run against the streaming order

