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

from seqflow.checks import check_positive
from seqflow.nn.conditioner import SequenceConditioner, SequenceStream
from seqflow.nn.context import Context
from seqflow.nn.masks import input_degrees


class CausalLSTM(SequenceConditioner):
    """Recurrent autoregressive conditioner for ``(batch, channels, time)``.

    Args:
        channels: ``C``, the number of signal channels.
        hidden_features, blocks: the LSTM's width and number of stacked layers.
        head_features: width of the MADE head's hidden layer.
        cond_channels, num_global_ids, upsample_factor, order: as in
            :class:`~seqflow.nn.wavenet.WaveNet`.
        global_features: width of the global embedding fed to the LSTM.

    ``forward(y, context)`` returns ``(shift, raw_log_scale)``, each shaped like ``y``; the last
    layer starts at zero.

    >>> import torch
    >>> net = CausalLSTM(3, hidden_features=8, head_features=8)
    >>> [s.shape for s in net(torch.zeros(2, 3, 20))]
    [torch.Size([2, 3, 20]), torch.Size([2, 3, 20])]
    """

    receptive_field = None  # unbounded

    def __init__(
        self,
        channels: int,
        hidden_features: int = 64,
        blocks: int = 1,
        head_features: int = 64,
        cond_channels: int | None = None,
        num_global_ids: int | None = None,
        upsample_factor: int = 1,
        order: str | Sequence[int] = "natural",
        global_features: int = 16,
    ):
        check_positive("CausalLSTM", hidden_features=hidden_features, blocks=blocks,
                       global_features=global_features)
        # The head reads the LSTM state (degree 0) and the current channels (their degrees).
        head_in = torch.cat([torch.zeros(hidden_features, dtype=torch.long),
                             input_degrees(channels, order)])
        super().__init__(channels, head_in, head_features, cond_channels, num_global_ids,
                         upsample_factor, order)
        self.embed = nn.Embedding(num_global_ids, global_features) if num_global_ids else None
        in_size = channels + (cond_channels or 0) + (global_features if num_global_ids else 0)
        self.lstm = nn.LSTM(in_size, hidden_features, blocks)

    def lstm_inputs(self, shifted: Tensor, cond: Tensor | None, ids: Tensor | None) -> Tensor:
        """``(batch, C, time)`` shifted signal -> LSTM input ``(time, batch, features)``."""
        parts = [shifted]
        if cond is not None:
            parts.append(cond)
        if ids is not None:
            parts.append(self.embed(ids).unsqueeze(-1).expand(-1, -1, shifted.shape[-1]))
        return rearrange(torch.cat(parts, dim=1), "b c t -> t b c")

    def features(self, y: Tensor, cond: Tensor | None, ids: Tensor | None) -> Tensor:
        shifted = F.pad(y, (1, 0))[..., :-1]
        state, _ = self.lstm(self.lstm_inputs(shifted, cond, ids))
        return torch.cat([rearrange(state, "t b c -> b c t"), y], dim=1)

    def start_stream(
        self, batch: int, context: Context, length: int, history: Tensor | None = None
    ) -> LSTMStream:
        return LSTMStream(self, batch, context, length, history)


class LSTMStream(SequenceStream):
    """Step-by-step :class:`CausalLSTM`: one LSTM cell step per time step (O(1) per step)."""

    def __init__(
        self, net: CausalLSTM, batch: int, context: Context, length: int, history: Tensor | None
    ):
        past = 0 if history is None else history.shape[-1]
        super().__init__(net, batch, net.head_out.weight, past)
        self.net = net
        cond, ids = net.conditioning(context, batch, past + length)
        self.cond = None if cond is None else rearrange(cond, "b c t -> t b c")
        self.embedding = None if ids is None else net.embed(ids)
        self.prev = self.x_now.new_zeros(batch, self.channels)
        self.lstm_state: tuple[Tensor, Tensor] | None = None
        self.step_state: tuple[Tensor, tuple[Tensor, Tensor]] | None = None
        if history is not None:
            shifted = F.pad(history, (1, 0))[..., :-1]
            hist_cond = None if cond is None else cond[..., :past]
            _, self.lstm_state = net.lstm(net.lstm_inputs(shifted, hist_cond, ids))
            self.prev = history[:, :, -1]

    def _lstm_step(self) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        parts = [self.prev]
        if self.cond is not None:
            parts.append(self.cond[self.t])
        if self.embedding is not None:
            parts.append(self.embedding)
        out, state = self.net.lstm(torch.cat(parts, dim=1).unsqueeze(0), self.lstm_state)
        return out[0], state

    def step_features(self) -> Tensor:
        if self.step_state is None:
            self.step_state = self._lstm_step()
        return torch.cat([self.step_state[0], self.x_now], dim=1)

    def close_step(self) -> None:
        if self.step_state is None:  # a step with no params() call still moves the LSTM
            self.step_state = self._lstm_step()
        self.lstm_state = self.step_state[1]
        self.step_state = None
        self.prev = self.x_now
