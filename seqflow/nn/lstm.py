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
from seqflow.nn import lstm_kernel
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
    layer starts at zero. :meth:`start_stream` evaluates it one time step at a time; the
    attribute ``step_mode`` (see :data:`STEP_MODES`) says how the steps run.

    >>> import torch
    >>> net = CausalLSTM(3, hidden_features=8, head_features=8)
    >>> [s.shape for s in net(torch.zeros(2, 3, 20))]
    [torch.Size([2, 3, 20]), torch.Size([2, 3, 20])]
    """

    receptive_field = None  # unbounded
    step_mode: str = "auto"

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

    def chunk_features(
        self, y: Tensor, cond: Tensor | None, ids: Tensor | None,
        carry: tuple[Tensor, tuple[Tensor, Tensor]] | None,
    ) -> tuple[Tensor, tuple[Tensor, tuple[Tensor, Tensor]]]:
        """:meth:`features` of a chunk; ``carry`` is the last sample ``(batch, C, 1)`` before
        the chunk and the LSTM state after it (None before the first chunk)."""
        last, state = (y.new_zeros(y.shape[0], self.channels, 1), None) if carry is None else carry
        shifted = torch.cat([last, y[..., :-1]], dim=-1)
        out, state = self.lstm(self.lstm_inputs(shifted, cond, ids), state)
        features = torch.cat([rearrange(out, "t b c -> b c t"), y], dim=1)
        return features, (y[..., -1:], state)

    def start_stream(
        self, batch: int, context: Context, length: int, history: Tensor | None = None
    ) -> LSTMStream:
        return LSTMStream(self, batch, context, length, history)


STEP_MODES = ("auto", "eager", "kernel")
"""How :class:`LSTMStream` runs (set ``CausalLSTM.step_mode``; default ``"auto"``).

* ``"auto"``: ``"kernel"`` where it applies (CPU, float32/float64, no gradient recording), at
  every batch size; else ``"eager"``. It was the faster of the two at every shape measured
  (``docs/benchmarks.md``, ``tools/bench.py steps``).
* ``"eager"``: per step one ``torch.lstm_cell`` per layer, then the head once per channel
  through the stream protocol (``params``/``feed``); the reference.
* ``"kernel"``: whole sequences of a flow layer (:meth:`LSTMStream.run_sequence`): per step
  and layer one ``torch.addmm`` for all gates and one compiled call for the cell update
  (:func:`seqflow.nn.lstm_kernel.cell`), then one ``torch.addmm`` for the head's LSTM-state
  part and one compiled call for every channel's head, log-scale bound and affine map
  (:func:`seqflow.nn.lstm_kernel.head`).
"""


class LSTMStream(SequenceStream):
    """Step-by-step :class:`CausalLSTM`: one fused LSTM cell per layer and time step.

    The local features and the global embedding enter the first layer's gates through a
    term known up front; it is computed for many steps at once and passed as that layer's
    input bias, so the per-step input is just the previous sample ``(batch, C)``. The head's
    first layer splits into the LSTM-state part (once per step) and the current-channels part
    (once per channel; it is exactly zero for ``C = 1`` and skipped).

    Where ``runs_sequences`` is true (see :data:`STEP_MODES`), :meth:`run_sequence` runs whole
    sequences of a flow layer with the same arithmetic in fewer, larger calls.
    """

    runs_floored = True

    # Input terms of the first layer are computed for this many values (steps x batch) at once.
    COND_CHUNK = 1 << 14

    def __init__(
        self, net: CausalLSTM, batch: int, context: Context, length: int, history: Tensor | None
    ):
        past = 0 if history is None else history.shape[-1]
        super().__init__(net, batch, net.head_out.weight, past)
        self.net = net
        self.batch = batch
        cond, ids = net.conditioning(context, batch, past + length)
        lstm, c = net.lstm, self.channels
        self.layers = [
            [getattr(lstm, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih",
                                                         "bias_hh")]
            for k in range(lstm.num_layers)
        ]
        w_ih0 = self.layers[0][0]
        self.first_input = w_ih0[:, :c]  # weight of the previous sample (4H, C)
        self.first_bias = self.layers[0][2] + self.layers[0][3]  # (4H,)
        self.extra_weight = w_ih0[:, c:]  # weight of [cond, embedding] (4H, extra)
        self.cond = cond
        self.embedding = None if ids is None else net.embed(ids)
        self._term_start, self._term = 0, None
        (w1, b1), _ = self.head
        hidden = lstm.hidden_size
        self.head_state, self.head_channels = w1[:hidden], w1[hidden:]
        self.head_bias = b1
        self.prev = self.x_now.new_zeros(batch, c)
        zeros = self.x_now.new_zeros(batch, hidden)
        self.lstm_state = [(zeros, zeros)] * lstm.num_layers
        self.step_state: tuple[Tensor, list[tuple[Tensor, Tensor]]] | None = None
        self.runs_sequences = self._use_kernel(net.step_mode, w_ih0)
        self._buffers: dict | None = None
        if history is not None:
            shifted = F.pad(history, (1, 0))[..., :-1]
            hist_cond = None if cond is None else cond[..., :past]
            _, (h, cell) = lstm(net.lstm_inputs(shifted, hist_cond, ids))
            self.lstm_state = list(zip(h.unbind(0), cell.unbind(0), strict=True))
            self.prev = history[:, :, -1]

    def _use_kernel(self, mode: str, ref: Tensor) -> bool:
        """Whether :meth:`run_sequence` applies (see :data:`STEP_MODES`)."""
        if mode not in STEP_MODES:
            raise ValueError(f"CausalLSTM: step_mode must be one of {STEP_MODES}, got {mode!r}")
        if mode == "eager":
            return False
        problem = None
        if not lstm_kernel.available():
            problem = "numba is not installed"
        elif ref.device.type != "cpu" or ref.dtype not in (torch.float32, torch.float64):
            problem = f"it runs float32/float64 on CPU, got {ref.dtype} on {ref.device}"
        elif torch.is_grad_enabled():
            problem = "it records no gradients (use torch.no_grad())"
        if mode == "kernel" and problem is not None:
            raise ValueError(f"CausalLSTM: step_mode='kernel' cannot run: {problem}")
        return problem is None

    def _first_bias_at(self, t: int) -> Tensor:
        """Gate bias of the first layer at step ``t``: ``(4H,)`` or ``(batch, 4H)``."""
        if self.cond is None and self.embedding is None:
            return self.first_bias
        term = self._term
        if term is None or not self._term_start <= t < self._term_start + term.shape[0]:
            steps = max(1, self.COND_CHUNK // self.batch) if self.cond is not None else 1
            parts = []
            if self.cond is not None:
                parts.append(rearrange(self.cond[..., t:t + steps], "b c s -> s b c"))
            if self.embedding is not None:
                n = parts[0].shape[0] if parts else 1
                parts.append(self.embedding.expand(n, -1, -1))
            term = torch.cat(parts, dim=-1) @ self.extra_weight.t() + self.first_bias
            self._term_start, self._term = t, term  # (steps, batch, 4H)
        return term[t - self._term_start]

    def _lstm_step(self) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        x, states = self.prev, []
        for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            if k == 0:
                h, c = torch.lstm_cell(x, self.lstm_state[0], self.first_input, w_hh,
                                       self._first_bias_at(self.t))
            else:
                h, c = torch.lstm_cell(x, self.lstm_state[k], w_ih, w_hh, b_ih, b_hh)
            states.append((h, c))
            x = h
        return torch.addmm(self.head_bias, x, self.head_state), states

    def head_hidden(self) -> Tensor:
        if self.step_state is None:
            self.step_state = self._lstm_step()
        if self.channels == 1:  # the current sample is masked out of every output
            return self.step_state[0]
        return torch.addmm(self.step_state[0], self.x_now, self.head_channels)

    def close_step(self) -> None:
        if self.step_state is None:  # a step with no params() call still moves the LSTM
            self.step_state = self._lstm_step()
        self.lstm_state = self.step_state[1]
        self.step_state = None
        self.prev = self.x_now

    def _kernel_buffers(self) -> dict:
        """Weights and state in the layouts of :meth:`run_sequence` (from the current state).

        Layer ``k`` reads one row ``[input | h_k]`` per sample: the previous sample ``(C)``
        for the first layer, ``h_{k-1}`` of the same step for the others.
        """
        hidden = self.net.lstm.hidden_size
        layers = []
        for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            w_in = self.first_input if k == 0 else w_ih
            weight = torch.cat([w_in, w_hh], dim=1).t().contiguous()  # (in + H, 4H)
            h, cell = self.lstm_state[k]
            rows = torch.cat([self.prev if k == 0 else self.lstm_state[k - 1][0], h], dim=1)
            gates = rows.new_empty(self.batch, 4 * hidden)
            layers.append({"weight": weight, "bias": None if k == 0 else b_ih + b_hh,
                           "rows": rows, "cell": cell.clone(), "gates": gates})
        for k, layer in enumerate(layers):  # where each layer's new h goes
            layer["h"] = layer["rows"][:, layer["rows"].shape[1] - hidden:]
            nxt = layers[k + 1]["rows"][:, :hidden] if k + 1 < len(layers) else layer["h"]
            layer["numpy"] = (layer["gates"].numpy(), layer["cell"].numpy(),
                              layer["h"].numpy(), nxt.numpy())
        (_, _), (w2, b2) = self.head
        head_features = self.head_bias.shape[0]
        base = self.prev.new_empty(self.batch, head_features)
        order = torch.tensor(self.order, dtype=torch.int64)
        head = [self.head_channels.detach().contiguous().numpy(),
                w2.detach().contiguous().numpy(), b2.detach().contiguous().numpy(),
                order.numpy(), base.new_empty(head_features).numpy()]
        return {"layers": layers, "base": base, "head": head,
                "state_weight": self.head_state.detach().contiguous()}

    def run_sequence(self, u: Tensor, bound: float, inverse: bool,
                     floor: float | None = None) -> tuple[Tensor, Tensor]:
        """The next ``T`` steps of a flow layer on this conditioner (see :data:`STEP_MODES`).

        ``u`` ``(batch, C, T)`` is the layer's input (noise when ``inverse``, data otherwise);
        returns the result ``(batch, C, T)`` and the summed log-scales ``(batch,)`` of
        ``bound_log_scale(raw, bound, floor)``. Only when :attr:`runs_sequences` is true.
        """
        if floor is not None and not floor < 0:
            raise ValueError(f"LSTMStream.run_sequence: floor must be < 0 or None, got {floor}")
        if not self.runs_sequences:
            raise ValueError("LSTMStream.run_sequence: the compiled path does not apply to "
                             "this stream (see CausalLSTM.step_mode)")
        if self.step_state is not None:
            raise ValueError("LSTMStream.run_sequence: called in the middle of a step")
        if self._buffers is None:
            self._buffers = self._kernel_buffers()
        buffers = self._buffers
        layers, base, head = buffers["layers"], buffers["base"], buffers["head"]
        state_weight, head_bias = buffers["state_weight"], self.head_bias.detach()
        inputs = u.contiguous()
        out = torch.empty_like(inputs)
        logdet = inputs.new_zeros(inputs.shape[0])
        exact = inputs.dtype == torch.float64  # float32: the vectorized rational tanh
        u_np, out_np, logdet_np, base_np = (inputs.numpy(), out.numpy(), logdet.numpy(),
                                            base.numpy())
        x_np = layers[0]["rows"][:, :self.channels].numpy()
        floor_value = 0.0 if floor is None else float(floor)
        for step in range(inputs.shape[-1]):
            for k, layer in enumerate(layers):
                bias = self._first_bias_at(self.t).detach() if k == 0 else layer["bias"]
                torch.addmm(bias, layer["rows"], layer["weight"], out=layer["gates"])
                lstm_kernel.cell(*layer["numpy"], exact)
            torch.addmm(head_bias, layers[-1]["h"], state_weight, out=base)
            lstm_kernel.head(base_np, u_np, out_np, logdet_np, step, x_np, *head, float(bound),
                             floor_value, inverse)
            self.t += 1
        self.lstm_state = [(layer["h"].clone(), layer["cell"].clone()) for layer in layers]
        self.prev = layers[0]["rows"][:, :self.channels].clone()
        return out, logdet
