"""CausalLSTM: a PixelRNN-style recurrent conditioner with the WaveNet interface.

An LSTM reads the signal shifted by one step (plus local features and a global embedding), so
its state at ``t`` summarizes ``y[:, :, :t]``; a MADE head reads that state (degree 0) together
with the current step's channels (degrees ``1..C``), giving the same time-major, then channel
order as :class:`~seqflow.nn.wavenet.WaveNet`. Its receptive field is unbounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from seqflow.nn.context import SequenceContext, prepare_conditioning, split_context
from seqflow.nn.conv import MaskedCausalConv1d
from seqflow.nn.masks import hidden_degrees, input_degrees
from seqflow.nn.upsampling import ConditionUpsampler
from seqflow.streaming import conditioner_stream

Context = Tensor | SequenceContext | None


class CausalLSTM(nn.Module):
    """Recurrent autoregressive conditioner for ``(batch, channels, time)``.

    Args:
        channels: ``C``, the number of signal channels.
        hidden_size, num_layers: the LSTM's width and depth.
        head_features: width of the MADE head's hidden layer.
        cond_channels, global_cond, upsample_factor, channel_order: as in
            :class:`~seqflow.nn.wavenet.WaveNet`.
        global_features: width of the global embedding fed to the LSTM.

    ``forward(y, context)`` returns ``(shift, raw_log_scale)``, each shaped like ``y``; the last
    layer starts at zero.

    >>> import torch
    >>> net = CausalLSTM(3, hidden_size=8, head_features=8)
    >>> [s.shape for s in net(torch.zeros(2, 3, 20))]
    [torch.Size([2, 3, 20]), torch.Size([2, 3, 20])]
    """

    receptive_field = None  # unbounded

    def __init__(
        self,
        channels: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        head_features: int = 64,
        cond_channels: int | None = None,
        global_cond: int | None = None,
        upsample_factor: int = 1,
        channel_order: str | Sequence[int] = "natural",
        global_features: int = 16,
    ):
        super().__init__()
        self.channels = channels
        self.cond_channels = cond_channels
        self.global_cond = global_cond
        self.embed = nn.Embedding(global_cond, global_features) if global_cond else None
        in_size = channels + (cond_channels or 0) + (global_features if global_cond else 0)
        self.lstm = nn.LSTM(in_size, hidden_size, num_layers)
        in_deg = input_degrees(channels, channel_order)
        self.register_buffer("degrees", in_deg)
        head_in = torch.cat([torch.zeros(hidden_size, dtype=torch.long), in_deg])
        head_deg = hidden_degrees(head_features, channels - 1, min_degree=0)
        self.head_hidden = MaskedCausalConv1d(head_in, head_deg, 1)
        self.head_out = MaskedCausalConv1d(head_deg, torch.cat([in_deg, in_deg]), 1, strict=True)
        nn.init.zeros_(self.head_out.weight)
        nn.init.zeros_(self.head_out.bias)
        self.upsampler = (
            ConditionUpsampler(cond_channels, upsample_factor) if cond_channels else None
        )

    def implied_length(self, context: Context) -> int | None:
        local, _ = split_context(context)
        if local is None or self.upsampler is None:
            return None
        return self.upsampler.output_length(local.shape[-1])

    def conditioning(self, context: Context, batch: int, length: int):
        """Same validation as :meth:`WaveNet.conditioning`; returns ``(cond, ids)``."""
        return prepare_conditioning(
            type(self).__name__, context, batch, length, self.cond_channels, self.global_cond,
            self.upsampler,
        )

    def _lstm_inputs(self, shifted: Tensor, cond: Tensor | None, ids: Tensor | None) -> Tensor:
        """``(batch, C, time)`` shifted signal -> LSTM input ``(time, batch, features)``."""
        parts = [shifted]
        if cond is not None:
            parts.append(cond)
        if ids is not None:
            parts.append(self.embed(ids).unsqueeze(-1).expand(-1, -1, shifted.shape[-1]))
        return rearrange(torch.cat(parts, dim=1), "b c t -> t b c")

    def forward(self, y: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """``(batch, C, time) -> (shift, raw_log_scale)``, both ``(batch, C, time)``."""
        if y.dim() != 3 or y.shape[1] != self.channels:
            raise ValueError(
                f"CausalLSTM: expected (batch, {self.channels}, time), got {tuple(y.shape)}"
            )
        cond, ids = self.conditioning(context, y.shape[0], y.shape[-1])
        shifted = F.pad(y, (1, 0))[..., :-1]
        state, _ = self.lstm(self._lstm_inputs(shifted, cond, ids))
        state = rearrange(state, "t b c -> b c t")
        out = self.head_out(F.relu(self.head_hidden(torch.cat([state, y], dim=1))))
        return out[:, : self.channels], out[:, self.channels :]

    def num_sequential_steps(self, y_like: Tensor) -> int:
        return y_like.shape[1] * y_like.shape[2]

    def start_stream(
        self, batch: int, context: Context, length: int, history: Tensor | None = None
    ) -> LSTMStream:
        return LSTMStream(self, batch, context, length, history)

    def stream(self, y_like: Tensor, context: Context = None):
        """Generator protocol of :class:`~seqflow.transforms.AutoregressiveAffine`."""
        state = self.start_stream(y_like.shape[0], context, y_like.shape[-1])
        return conditioner_stream(state, y_like.shape[-1])


class LSTMStream:
    """Step-by-step :class:`CausalLSTM`: one LSTM cell step per time step (O(1) per step)."""

    def __init__(
        self, net: CausalLSTM, batch: int, context: Context, length: int, history: Tensor | None
    ):
        self.net = net
        self.order = net.degrees.argsort().tolist()
        self.channels = net.channels
        past = 0 if history is None else history.shape[-1]
        self.t = past
        cond, ids = net.conditioning(context, batch, past + length)
        self.cond = None if cond is None else rearrange(cond, "b c t -> t b c")
        self.embedding = None if ids is None else net.embed(ids)
        ref = net.head_out.weight
        self.prev = ref.new_zeros(batch, self.channels)
        self.x_now = ref.new_zeros(batch, self.channels)
        self.lstm_state: tuple[Tensor, Tensor] | None = None
        self.step_state: tuple[Tensor, tuple[Tensor, Tensor]] | None = None
        self.head = [
            (net.head_hidden.tap_weights()[0], net.head_hidden.bias),
            (net.head_out.tap_weights()[0], net.head_out.bias),
        ]
        if history is not None:
            shifted = F.pad(history, (1, 0))[..., :-1]
            hist_cond = None if cond is None else cond[..., :past]
            _, self.lstm_state = net.lstm(net._lstm_inputs(shifted, hist_cond, ids))
            self.prev = history[:, :, -1]

    def _lstm_step(self) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        parts = [self.prev]
        if self.cond is not None:
            parts.append(self.cond[self.t])
        if self.embedding is not None:
            parts.append(self.embedding)
        out, state = self.net.lstm(torch.cat(parts, dim=1).unsqueeze(0), self.lstm_state)
        return out[0], state

    def params(self, channel: int) -> tuple[Tensor, Tensor]:
        if self.step_state is None:
            self.step_state = self._lstm_step()
        hidden = self.step_state[0]
        (w1, b1), (w2, b2) = self.head
        head_in = torch.cat([hidden, self.x_now], dim=1)
        out = torch.addmm(b2, torch.relu(torch.addmm(b1, head_in, w1)), w2)
        return out[:, channel], out[:, self.channels + channel]

    def feed(self, channel: int, value: Tensor) -> None:
        x = self.x_now.clone()
        x[:, channel] = value
        self.x_now = x

    def advance(self) -> None:
        if self.step_state is None:  # a step with no params() call still moves the LSTM
            self.step_state = self._lstm_step()
        self.lstm_state = self.step_state[1]
        self.step_state = None
        self.prev = self.x_now
        self.x_now = torch.zeros_like(self.x_now)
        self.t += 1
