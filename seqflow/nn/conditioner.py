"""The base of every autoregressive sequence conditioner (WaveNet, CausalLSTM).

A sequence conditioner maps ``y`` ``(batch, channels, time)`` and a context to per-element
flow parameters ``(shift, raw_log_scale)``, each shaped like ``y``, in the time-major, then
channel order of DESIGN.md section 2. What every such network shares lives here: the channel
degrees, context validation and upsampling (:mod:`seqflow.nn.context`), the implied length,
the input check, and the masked output head with its streaming step. Subclasses provide
:meth:`SequenceConditioner.features` (the full pass up to the head's input) and a
:class:`SequenceStream` for the sequential direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.checks import check_floating, check_positive
from seqflow.nn.chunking import chunk_steps
from seqflow.nn.context import Context, prepare_conditioning, split_context
from seqflow.nn.conv import MaskedCausalConv1d
from seqflow.nn.masks import hidden_degrees, input_degrees
from seqflow.nn.upsampling import ConditionUpsampler


class SequenceConditioner(nn.Module):
    """Shared plumbing of the autoregressive sequence conditioners.

    Args:
        channels: ``C``, the number of signal channels.
        head_in_degrees: channel degrees of the head's input features (0 = sees no current
            input; ``1..C`` = the current step's channels).
        head_features: width of the masked head's hidden layer.
        cond_channels: width of local features ``(batch, cond_channels, frames)``, or None.
        num_global_ids: number of global ids (e.g. speakers), or None.
        upsample_factor: samples per frame of the local features (a learned upsampler; 1 when
            the features already come at the sample rate, e.g. upsampled once by a stack).
        order: order of the channels within a time step (see
            :func:`seqflow.nn.masks.input_degrees`).

    The head is ``out = W2 relu(W1 h + b1) + b2`` with MADE masks; ``W2`` starts at zero so a
    flow built on the conditioner starts as the identity.
    """

    receptive_field: int | None = None

    def __init__(
        self,
        channels: int,
        head_in_degrees: Tensor,
        head_features: int,
        cond_channels: int | None,
        num_global_ids: int | None,
        upsample_factor: int,
        order: str | Sequence[int],
    ):
        super().__init__()
        name = type(self).__name__
        check_positive(name, channels=channels, head_features=head_features,
                       cond_channels=cond_channels, num_global_ids=num_global_ids,
                       upsample_factor=upsample_factor)
        if upsample_factor != 1 and cond_channels is None:
            raise ValueError(f"{name}: upsample_factor={upsample_factor} needs cond_channels "
                             "(there are no local features to upsample)")
        self.channels = channels
        self.cond_channels = cond_channels
        self.num_global_ids = num_global_ids
        in_deg = input_degrees(channels, order)
        self.register_buffer("degrees", in_deg)
        head_deg = hidden_degrees(head_features, channels - 1, min_degree=0)
        self.head_hidden = MaskedCausalConv1d(head_in_degrees, head_deg, 1)
        self.head_out = MaskedCausalConv1d(head_deg, torch.cat([in_deg, in_deg]), 1, strict=True)
        nn.init.zeros_(self.head_out.weight)
        nn.init.zeros_(self.head_out.bias)
        self.upsampler = (
            ConditionUpsampler(cond_channels, upsample_factor) if cond_channels else None
        )

    # --- context -------------------------------------------------------------------------
    def implied_length(self, context: Context) -> int | None:
        """The sequence length implied by the local features, or None without them."""
        local, _ = split_context(context)
        if local is None or self.upsampler is None:
            return None
        return self.upsampler.output_length(local.shape[-1])

    def conditioning(
        self, context: Context, batch: int, length: int
    ) -> tuple[Tensor | None, Tensor | None]:
        """Validate ``context``; return upsampled features ``(batch, cond, length)`` and ids."""
        return prepare_conditioning(
            type(self).__name__, context, batch, length, self.cond_channels,
            self.num_global_ids, self.upsampler,
        )

    def check_input(self, y: Tensor) -> None:
        if not isinstance(y, Tensor) or y.dim() != 3 or y.shape[1] != self.channels:
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(
                f"{type(self).__name__}: expected (batch, {self.channels}, time), got {shape}"
            )
        check_floating(y, type(self).__name__)

    # --- full pass -----------------------------------------------------------------------
    def features(self, y: Tensor, cond: Tensor | None, ids: Tensor | None) -> Tensor:
        """The head's input ``(batch, head_in, time)`` for the whole sequence."""
        raise NotImplementedError

    def chunk_features(
        self, y: Tensor, cond: Tensor | None, ids: Tensor | None, carry: object | None
    ) -> tuple[Tensor, object]:
        """:meth:`features` of the chunk ``y`` ``(batch, C, n)`` that follows the chunks whose
        ``carry`` is given (None before the first chunk); returns the features and the carry
        of the next chunk (see :mod:`seqflow.nn.chunking`). Optional for subclasses."""
        raise NotImplementedError

    def forward(self, y: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """``(batch, C, time) -> (shift, raw_log_scale)``, both ``(batch, C, time)``.

        Without gradient recording a long sequence runs in chunks (:mod:`seqflow.nn.chunking`).
        """
        self.check_input(y)
        batch, _, length = y.shape
        cond, ids = self.conditioning(context, batch, length)
        steps = None
        if type(self).chunk_features is not SequenceConditioner.chunk_features:
            steps = chunk_steps(batch, length, self.receptive_field)
        if steps is None:
            out = self.apply_head(self.features(y, cond, ids))
        else:
            out = y.new_empty(batch, 2 * self.channels, length)
            carry = None
            for start in range(0, length, steps):
                end = min(start + steps, length)
                local = None if cond is None else cond[..., start:end]
                features, carry = self.chunk_features(y[..., start:end], local, ids, carry)
                out[..., start:end] = self.apply_head(features)
        return out[:, : self.channels], out[:, self.channels :]

    def apply_head(self, features: Tensor) -> Tensor:
        """The masked head: ``(batch, head_in, time) -> (batch, 2 C, time)``."""
        return self.head_out(F.relu(self.head_hidden(features)))

    def num_sequential_steps(self, y_like: Tensor) -> int:
        """Full passes the naive sequential path needs: one per (time, channel) element."""
        return y_like.shape[1] * y_like.shape[2]

    def head_weights(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """``((W1, b1), (W2, b2))`` of the masked head, transposed for ``h @ W``."""
        return (
            (self.head_hidden.tap_weights()[0], self.head_hidden.bias),
            (self.head_out.tap_weights()[0], self.head_out.bias),
        )

    def start_stream(
        self, batch: int, context: Context, length: int, history: Tensor | None = None
    ) -> SequenceStream:
        """A stream state for ``length`` new steps after an optional ``history``."""
        raise NotImplementedError


class SequenceStream:
    """Step-by-step evaluation shared by sequence conditioners (the stream-state protocol).

    Subclasses compute the head's input at the current step in :meth:`step_features` (or
    the head's hidden pre-activation directly in :meth:`head_hidden`) and commit the step in
    :meth:`close_step`. ``params(c)`` returns ``(batch, 2)``: the shift and
    raw log-scale of channel ``c``, a view into the head's output.
    """

    def __init__(self, net: SequenceConditioner, batch: int, like: Tensor, start: int):
        self.order: list[int] = net.degrees.argsort().tolist()
        self.channels = net.channels
        self.head = net.head_weights()
        self.x_now = like.new_zeros(batch, self.channels)
        self.t = start

    def step_features(self) -> Tensor:
        """The head's input ``(batch, head_in)`` at step ``t`` given ``x_now``."""
        raise NotImplementedError

    def close_step(self) -> None:
        """Push the finished step ``t`` (with ``x_now`` complete) into the recurrent state."""
        raise NotImplementedError

    def head_hidden(self) -> Tensor:
        """The head's hidden pre-activation ``(batch, head_features)`` at step ``t``."""
        (w1, b1), _ = self.head
        return torch.addmm(b1, self.step_features(), w1)

    def params(self, channel: int) -> Tensor:
        _, (w2, b2) = self.head
        out = torch.addmm(b2, F.relu(self.head_hidden()), w2)
        if self.channels == 1:
            return out
        return out.view(-1, 2, self.channels)[:, :, channel]

    def feed(self, channel: int, value: Tensor) -> None:
        if self.channels == 1:
            self.x_now = value.view(-1, 1)
        else:
            x = self.x_now.clone()
            x[:, channel] = value
            self.x_now = x

    def advance(self) -> None:
        self.close_step()
        if self.channels > 1:  # one channel: feed() replaces x_now whole
            self.x_now = torch.zeros_like(self.x_now)
        self.t += 1
