"""MAF and IAF over sequences ``(batch, channels, time)`` with WaveNet or LSTM conditioners.

Both are :class:`~seqflow.transforms.autoregressive.AutoregressiveAffine` with a sequence
conditioner; the order is time-major, then channel.

* :class:`SequenceMAF` (conditioner reads the data): ``forward`` (density) is one pass;
  ``inverse`` (sampling) is sequential and streams in O(1) conditioner work per step.
* :class:`SequenceIAF` (conditioner reads the noise): ``inverse`` (sampling) is one pass;
  ``forward`` (density of given data) is sequential and streams.

:class:`SequenceStack` chains layers of one kind in one time order and streams them jointly:
at each time step it goes through the layers in turn, so step ``t`` of the output is final
before step ``t + 1`` of the input is read (live streaming, forecasting). It owns the one
upsampler of the local features, so a deep stack upsamples a mel spectrogram once. Every
sequential path can be primed with a history and then continued (:meth:`SequenceStack.sequential`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from torch import Tensor, nn

from seqflow.checks import check_positive
from seqflow.nn.conditioner import SequenceConditioner
from seqflow.nn.context import Context, SequenceContext, split_context
from seqflow.nn.lstm import CausalLSTM
from seqflow.nn.upsampling import ConditionUpsampler
from seqflow.nn.wavenet import WaveNet
from seqflow.transforms.autoregressive import AutoregressiveAffine, sequential
from seqflow.transforms.base import Compose
from seqflow.transforms.elementwise import LOG_SCALE_BOUND

WAVENET_OPTIONS = ("residual_channels", "skip_channels", "kernel_size", "cycles")
LSTM_OPTIONS = ("hidden_features", "head_features")


class _SequenceAutoregressive(AutoregressiveAffine):
    side: Literal["data", "noise"]

    def __init__(
        self,
        channels: int,
        conditioner: str | SequenceConditioner = "wavenet",
        blocks: int | None = None,
        residual_channels: int | None = None,
        skip_channels: int | None = None,
        kernel_size: int | None = None,
        cycles: int | None = None,
        hidden_features: int | None = None,
        head_features: int | None = None,
        cond_channels: int | None = None,
        upsample_factor: int = 1,
        num_global_ids: int | None = None,
        order: str | Sequence[int] = "natural",
        log_scale_bound: float = LOG_SCALE_BOUND,
        log_scale_floor: float | None = None,
    ):
        name = type(self).__name__
        check_positive(name, channels=channels)
        options = dict(residual_channels=residual_channels, skip_channels=skip_channels,
                       kernel_size=kernel_size, cycles=cycles, hidden_features=hidden_features,
                       head_features=head_features)
        given = {k: v for k, v in options.items() if v is not None}
        if isinstance(conditioner, nn.Module):
            extra = sorted(given) + (["blocks"] if blocks is not None else [])
            if extra:
                raise ValueError(f"{name}: conditioner options {extra} given with a ready module")
            net = conditioner
        elif conditioner == "wavenet":
            _refuse(name, conditioner, given, LSTM_OPTIONS)
            net = WaveNet(channels, blocks=10 if blocks is None else blocks,
                          cond_channels=cond_channels, num_global_ids=num_global_ids,
                          upsample_factor=upsample_factor, order=order, **given)
        elif conditioner == "lstm":
            _refuse(name, conditioner, given, WAVENET_OPTIONS)
            net = CausalLSTM(channels, blocks=1 if blocks is None else blocks,
                             cond_channels=cond_channels, num_global_ids=num_global_ids,
                             upsample_factor=upsample_factor, order=order, **given)
        else:
            raise ValueError(f"{name}: conditioner must be 'wavenet', 'lstm' or a sequence "
                             f"conditioner module, got {conditioner!r}")
        if net.channels != channels:
            raise ValueError(f"{name}: channels={channels} but the conditioner models "
                             f"{net.channels} channels")
        super().__init__(net, channels, self.side, log_scale_bound, sequence=True,
                         log_scale_floor=log_scale_floor)
        self.channels = channels

    @property
    def receptive_field(self) -> int | None:
        return self.conditioner.receptive_field

    def implied_length(self, context: Context) -> int | None:
        return self.conditioner.implied_length(context)

    def inverse_after(
        self, z: Tensor, context: Context = None, history: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Noise -> data after ``history`` (data, ``(batch, C, T0)``): a MAF streams on from
        the primed state. An IAF's conditioner reads noise, which a data history does not
        give."""
        if history is None:
            return self.inverse(z, context)
        if self.side != "data":
            raise ValueError(f"{type(self).__name__}: continues a data history only as a MAF "
                             "(an IAF's conditioner reads the noise of the history)")
        return sequential([self], z, context, history)


def _refuse(name: str, conditioner: str, given: dict, others: tuple[str, ...]) -> None:
    wrong = sorted(set(given) & set(others))
    if wrong:
        raise ValueError(f"{name}: {wrong} are not options of the {conditioner!r} conditioner")


_ARGS_DOC = """
    Args:
        channels: ``C``.
        conditioner: ``"wavenet"`` (default), ``"lstm"`` or a ready
            :class:`~seqflow.nn.conditioner.SequenceConditioner` (then give no size options).
        blocks: WaveNet gated residual blocks (default 10) or LSTM layers (default 1).
        residual_channels, skip_channels, kernel_size, cycles: WaveNet sizes (defaults 64, 64,
            2, 1; see :class:`~seqflow.nn.WaveNet`).
        hidden_features, head_features: LSTM width and head width (defaults 64, 64).
        cond_channels: width of local features ``(batch, cond_channels, frames)``, or None.
        upsample_factor: samples per frame of the local features.
        num_global_ids: number of global ids (e.g. speakers), or None.
        order: channel order within a time step.
        log_scale_bound: ``s = soft_clamp(raw, bound)`` (``a / (1 + |a| / bound)``), default
            :data:`~seqflow.transforms.elementwise.LOG_SCALE_BOUND` (6).
        log_scale_floor: None, or a negative floor: then ``s`` lies in ``(floor, bound)``
            (:func:`~seqflow.transforms.elementwise.floored_log_scale`; audio teachers use
            about -9, since the symmetric bound keeps ``s`` well above ``-bound``).
"""


class SequenceMAF(_SequenceAutoregressive):
    """Masked autoregressive flow on ``(batch, channels, time)``.

    ``z[t, c] = (x[t, c] - mu) * exp(-s)`` with ``(mu, raw) = conditioner(x)`` read from data
    before ``(t, c)``. ``forward`` (data -> noise, density) is one pass; ``inverse`` (noise ->
    data, sampling) is sequential and streams (``naive_sequential`` is the reference path).
    {args}
    >>> import torch
    >>> maf = SequenceMAF(1, residual_channels=8, skip_channels=8, blocks=3)
    >>> z, logdet = maf(torch.randn(2, 1, 40))
    >>> z.shape, logdet.shape
    (torch.Size([2, 1, 40]), torch.Size([2]))
    """

    side = "data"


class SequenceIAF(_SequenceAutoregressive):
    """Inverse autoregressive flow on ``(batch, channels, time)``.

    ``x[t, c] = z[t, c] * exp(s) + mu`` with ``(mu, raw) = conditioner(z)`` read from noise
    before ``(t, c)``. ``inverse`` (noise -> data, sampling) is one pass; ``forward`` (data ->
    noise, density of given data) is sequential and streams.
    {args}
    >>> import torch
    >>> iaf = SequenceIAF(2, conditioner="lstm", hidden_features=8, head_features=8)
    >>> x, logdet = iaf.inverse(torch.randn(3, 2, 10))
    >>> x.shape
    torch.Size([3, 2, 10])
    """

    side = "noise"


SequenceMAF.__doc__ = SequenceMAF.__doc__.replace("{args}", _ARGS_DOC)
SequenceIAF.__doc__ = SequenceIAF.__doc__.replace("{args}", _ARGS_DOC)


class SequenceStack(Compose):
    """Sequence MAF (or IAF) layers in one time order that stream jointly.

    ``forward`` applies the layers in order, ``inverse`` in reverse (a :class:`Compose`). The
    one-pass direction (MAF ``forward``, IAF ``inverse``) runs layer after layer; the sequential
    direction goes through the layers at every time step, so each step costs O(1) work per
    layer.

    Args:
        layers: one or more :class:`SequenceMAF` or one or more :class:`SequenceIAF`, all with
            the same ``channels``.
        cond_channels, upsample_factor: when given, the stack owns the one learned upsampler of
            the local features and hands every layer features at the sample rate (build the
            layers with ``cond_channels`` and ``upsample_factor=1``).

    >>> import torch
    >>> stack = SequenceStack([SequenceMAF(1, residual_channels=4, skip_channels=4, blocks=2)
    ...                        for _ in range(2)])
    >>> x, _ = stack.inverse(torch.randn(1, 1, 8))
    >>> x.shape
    torch.Size([1, 1, 8])
    """

    def __init__(
        self,
        layers: Iterable[_SequenceAutoregressive],
        cond_channels: int | None = None,
        upsample_factor: int = 1,
    ):
        super().__init__(layers)
        sides = {getattr(layer, "conditioner_side", None) for layer in self.transforms}
        if len(self.transforms) == 0 or len(sides) != 1 or None in sides:
            raise ValueError(
                "SequenceStack: needs one or more layers of a single kind (all SequenceMAF or "
                f"all SequenceIAF), got {[type(t).__name__ for t in self.transforms]}"
            )
        channels = {layer.channels for layer in self.transforms}
        if len(channels) != 1:
            raise ValueError(f"SequenceStack: layers model different channel counts "
                             f"{sorted(channels)}; all must be equal")
        self.side = sides.pop()
        self.channels = channels.pop()
        check_positive("SequenceStack", cond_channels=cond_channels,
                       upsample_factor=upsample_factor)
        self.upsampler = None
        if cond_channels is not None:
            for i, layer in enumerate(self.transforms):
                net = layer.conditioner
                factor = None if net.upsampler is None else net.upsampler.factor
                if net.cond_channels != cond_channels or factor != 1:
                    raise ValueError(
                        f"SequenceStack: layer {i} must take cond_channels={cond_channels} at "
                        f"the sample rate (upsample_factor=1), got cond_channels="
                        f"{net.cond_channels}, upsample_factor={factor}; build the layers "
                        f"with cond_channels={cond_channels}"
                    )
            self.upsampler = ConditionUpsampler(cond_channels, upsample_factor)
        elif upsample_factor != 1:
            raise ValueError(f"SequenceStack: upsample_factor={upsample_factor} needs "
                             "cond_channels")

    @property
    def layers(self) -> nn.ModuleList:
        return self.transforms

    @property
    def receptive_field(self) -> int | None:
        fields = [layer.receptive_field for layer in self.transforms]
        return None if None in fields else 1 + sum(f - 1 for f in fields)

    def implied_length(self, context: Context) -> int | None:
        if self.upsampler is None:
            return self.transforms[0].implied_length(context)
        local, _ = split_context(context)
        return None if local is None else self.upsampler.output_length(local.shape[-1])

    def _sample_rate_context(self, context: Context) -> Context:
        """Upsample local features once for every layer (identity without an upsampler)."""
        if self.upsampler is None or context is None:
            return context
        local, ids = split_context(context)
        if local is None:
            return context
        return SequenceContext(self.upsampler(local), ids)

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """Data -> noise: one pass per layer for MAF, joint streaming for IAF."""
        context = self._sample_rate_context(context)
        if self.side == "data":
            return super().forward(x, context)
        return sequential(list(self.transforms), x, context)

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """Noise -> data: joint streaming for MAF, one pass per layer for IAF."""
        context = self._sample_rate_context(context)
        if self.side == "noise":
            return super().inverse(z, context)
        return sequential(list(self.transforms), z, context)

    def inverse_after(
        self, z: Tensor, context: Context = None, history: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Noise -> data after a data ``history`` ``(batch, C, T0)``: MAF layers stream on from
        their primed states (see :meth:`Transform.inverse_after`)."""
        if history is None:
            return self.inverse(z, context)
        if self.side != "data":
            raise ValueError("SequenceStack: continues a data history only with SequenceMAF "
                             "layers (an IAF's conditioner reads the noise of the history)")
        return self.sequential(z, context, history)

    def step_affine(self, u: Tensor, context: Context, inverse: bool
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`Compose.step_affine` with the local features upsampled once."""
        return super().step_affine(u, self._sample_rate_context(context), inverse)

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
        context = self._sample_rate_context(context)
        return sequential(list(self.transforms), inputs, context, history)
