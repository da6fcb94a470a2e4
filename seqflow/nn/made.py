"""MADE (Germain et al. 2015) with context, orderings, residual blocks and degree-sliced streaming.

A MADE maps ``x`` of shape ``(batch, features)`` to ``params_per_feature`` values per feature,
where the values of feature ``i`` depend only on features that come before ``i`` in the order
(and on an optional, unmasked context). Masks come from degrees (:mod:`seqflow.nn.masks`):
inputs have degrees ``1..D``; hidden units cycle through ``1..D-1`` (``0..D-1`` when there is a
context, so that a degree-0 unit carries the context to the first output); the outputs of
feature ``i`` see hidden units of degree ``< degree(i)``.

**Streaming.** A hidden unit of degree ``k`` depends only on inputs of degree ``<= k``. Once the
inputs of degree ``1..k`` are known, :meth:`MADE.stream_params` computes exactly the hidden units
of degree ``k`` in every layer (their inputs are a contiguous prefix once units are sorted by
degree) and then the outputs of the input of degree ``k + 1``. The whole sequential direction of
a MAF (sampling) or IAF (density) therefore costs about one masked pass of arithmetic plus ``D``
small steps, instead of ``D`` full passes.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.nn.masks import hidden_degrees, input_degrees, mask_from_degrees

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "gelu": F.gelu,
}

ParamStream = Generator[tuple[int, Tensor], Tensor, None]


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed 0/1 mask built from degrees.

    Args:
        in_degrees: ``(in_features,)`` degrees of the inputs.
        out_degrees: ``(out_features,)`` degrees of the outputs.
        strict: ``True`` for output layers (``out_degree > in_degree``), ``False`` for hidden
            layers (``out_degree >= in_degree``).

    Shapes: ``(batch, in_features) -> (batch, out_features)``.

    >>> import torch
    >>> layer = MaskedLinear(torch.tensor([1, 2]), torch.tensor([1, 2]), strict=True)
    >>> layer.mask.tolist()
    [[0.0, 0.0], [1.0, 0.0]]
    """

    def __init__(self, in_degrees: Tensor, out_degrees: Tensor, strict: bool, bias: bool = True):
        super().__init__(len(in_degrees), len(out_degrees), bias=bias)
        self.register_buffer("in_degrees", in_degrees.clone())
        self.register_buffer("out_degrees", out_degrees.clone())
        self.register_buffer("mask", mask_from_degrees(in_degrees, out_degrees, strict))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


@dataclass(frozen=True)
class _Node:
    """One masked layer of the network as a dataflow node (see :class:`MADE`)."""

    layer: int  # index into MADE.layers
    source: int  # node index of the input; -1 is the MADE input x
    activate_source: bool  # apply the activation to the source before the layer
    residual: int | None  # node index added to the result (residual block), or None


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation, used as an autoregressive conditioner.

    Args:
        features: D, the size of ``x``'s axis 1.
        hidden_features: width of every hidden layer; at least ``D - 1`` (``D`` with a context)
            so that every degree has a hidden unit (no output loses its inputs, no dead unit).
        num_layers: hidden layers (``residual=False``) or residual blocks (``residual=True``).
        context_features: width of an optional context ``(batch, context_features)``; it enters
            the first hidden layer through an unmasked linear map.
        order: ``"natural"``, ``"reversed"``, ``"random"`` or an explicit permutation ``p``
            (``p[k]`` is the feature that comes ``k``-th).
        residual: use residual masked blocks ``h + W2 act(W1 act(h))`` (all with the same
            degrees) instead of a plain stack.
        params_per_feature: ``P``, the number of outputs per feature.
        activation: one of ``"relu"``, ``"tanh"``, ``"elu"``, ``"gelu"``.
        zero_init_output: start the output layer at zero (a MAF/IAF layer then starts as the
            identity). Leave False for mixture outputs, whose components must differ.
        seed: seed for ``order="random"``.

    ``forward(x, context)`` returns a tuple of ``P`` tensors, each ``(batch, features)``; with
    ``P = 2`` that is ``(shift, raw_log_scale)``, the conditioner interface of
    :class:`~seqflow.transforms.AutoregressiveAffine`. :meth:`params` returns the same values as
    one ``(batch, P, features)`` tensor.

    >>> import torch
    >>> made = MADE(3, hidden_features=8, order=[2, 0, 1])
    >>> shift, raw = made(torch.randn(4, 3))
    >>> shift.shape, made.input_degrees.tolist()
    (torch.Size([4, 3]), [2, 3, 1])
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        num_layers: int = 2,
        context_features: int | None = None,
        order: str | Sequence[int] | Tensor = "natural",
        residual: bool = False,
        params_per_feature: int = 2,
        activation: str = "relu",
        zero_init_output: bool = False,
        seed: int | None = None,
    ):
        super().__init__()
        if features < 1 or num_layers < 1 or params_per_feature < 1:
            raise ValueError(
                f"MADE: features={features}, num_layers={num_layers} and "
                f"params_per_feature={params_per_feature} must all be >= 1"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"MADE: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        min_degree = 0 if context_features else min(1, features - 1)
        needed = features - min_degree
        if hidden_features < needed:
            raise ValueError(
                f"MADE: hidden_features={hidden_features} is too small for features={features}"
                f"{' with a context' if context_features else ''}: need >= {needed} so that every "
                "degree has a hidden unit"
            )
        self.features = features
        self.hidden_features = hidden_features
        self.context_features = context_features
        self.params_per_feature = params_per_feature
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]

        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        d_in = input_degrees(features, order, generator)
        d_hidden = hidden_degrees(hidden_features, features - 1, min_degree)
        self.register_buffer("input_degrees", d_in)

        layers = [MaskedLinear(d_in, d_hidden, strict=False)]
        nodes = [_Node(0, -1, False, None)]
        for _ in range(num_layers - 1 if not residual else num_layers):
            if residual:
                inner = len(nodes) - 1
                layers += [MaskedLinear(d_hidden, d_hidden, strict=False) for _ in range(2)]
                nn.init.zeros_(layers[-1].weight)  # each block starts as the identity
                nn.init.zeros_(layers[-1].bias)
                nodes.append(_Node(len(layers) - 2, inner, True, None))
                nodes.append(_Node(len(layers) - 1, len(nodes) - 1, True, inner))
            else:
                layers.append(MaskedLinear(d_hidden, d_hidden, strict=False))
                nodes.append(_Node(len(layers) - 1, len(nodes) - 1, True, None))
        # Output unit p * D + i holds parameter p of feature i.
        output = MaskedLinear(d_hidden, d_in.repeat(params_per_feature), strict=True)
        if zero_init_output:
            nn.init.zeros_(output.weight)
            nn.init.zeros_(output.bias)
        layers.append(output)
        nodes.append(_Node(len(layers) - 1, len(nodes) - 1, True, None))
        self.layers = nn.ModuleList(layers)
        self._nodes = nodes
        self.context_layer = (
            nn.Linear(context_features, hidden_features, bias=False) if context_features else None
        )
        self._build_stream_plan()
        self._stream_cache: tuple[tuple, list[tuple[Tensor, Tensor]]] | None = None

    # --- one full pass -------------------------------------------------------------------
    def params(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """All outputs in one masked pass: ``(batch, features) -> (batch, P, features)``."""
        self._check(x, context)
        values: list[Tensor] = []
        activated: dict[int, Tensor] = {}
        for i, node in enumerate(self._nodes):
            if node.source < 0:
                inp = x
            elif node.activate_source:
                if node.source not in activated:
                    activated[node.source] = self.activation(values[node.source])
                inp = activated[node.source]
            else:
                inp = values[node.source]
            out = self.layers[node.layer](inp)
            if i == 0 and self.context_layer is not None:
                out = out + self.context_layer(context)
            if node.residual is not None:
                out = out + values[node.residual]
            values.append(out)
        return values[-1].reshape(x.shape[0], self.params_per_feature, self.features)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        """``(batch, features) -> P`` tensors of shape ``(batch, features)``."""
        return tuple(self.params(x, context).unbind(1))

    def num_sequential_steps(self, y_like: Tensor) -> int:
        """Full passes the naive sequential path needs to be exact: one per feature."""
        return self.features

    def _check(self, x: Tensor, context: Tensor | None) -> None:
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(
                f"MADE: expected input of shape (batch, {self.features}), got {tuple(x.shape)}"
            )
        if (context is None) != (self.context_features is None):
            raise ValueError(
                f"MADE: built with context_features={self.context_features} but called with "
                f"context {None if context is None else tuple(context.shape)}"
            )
        if context is not None and (
            context.dim() != 2 or context.shape != (x.shape[0], self.context_features)
        ):
            raise ValueError(
                f"MADE: expected context of shape ({x.shape[0]}, {self.context_features}), "
                f"got {tuple(context.shape)}"
            )

    # --- degree-sliced streaming ---------------------------------------------------------
    def _build_stream_plan(self) -> None:
        """Index bookkeeping for :meth:`stream_params`, computed once from the degrees.

        For every node: ``order`` sorts its units by degree (stable); ``bounds[k]`` is the
        ``(start, end)`` range of its degree-``k`` units in sorted position; ``prefix[k]`` is
        how many sorted source units a degree-``k`` unit reads (all source units of degree
        ``<= k``). The output node is indexed by *step* ``k``: it produces the input of degree
        ``k + 1``, whose ``P`` outputs are contiguous after sorting by ``(degree, param)``.
        """
        D = self.features
        self._input_order = torch.argsort(self.input_degrees, stable=True)
        unit_degrees: list[Tensor] = []
        self._plan: list[tuple[Tensor, list[tuple[int, int]], list[int]]] = []
        for i, node in enumerate(self._nodes):
            layer = self.layers[node.layer]
            src_deg = self.input_degrees if node.source < 0 else unit_degrees[node.source]
            src_sorted = torch.sort(src_deg).values
            prefix = [int(torch.searchsorted(src_sorted, k, right=True)) for k in range(D)]
            if i == len(self._nodes) - 1:
                # Sort outputs by (degree, param index); step k makes degree k + 1.
                deg = layer.out_degrees.clone()
                order = torch.argsort(deg * self.params_per_feature
                                      + torch.arange(len(deg)) // D, stable=True)
                P = self.params_per_feature
                bounds = [(k * P, (k + 1) * P) for k in range(D)]
            else:
                deg = layer.out_degrees
                order = torch.argsort(deg, stable=True)
                deg_sorted = deg[order]
                bounds = [
                    (int(torch.searchsorted(deg_sorted, k)),
                     int(torch.searchsorted(deg_sorted, k, right=True)))
                    for k in range(D)
                ]
            unit_degrees.append(deg)
            self._plan.append((order, bounds, prefix))

    def _sorted_weights(self) -> list[tuple[Tensor, Tensor]]:
        """Per node, weight and bias with rows sorted by unit degree and columns by source.

        Inside the blocks that the stream reads, the mask is all ones, so no mask multiply is
        needed. Reused across calls while the parameters are unchanged and no gradient is being
        recorded (sampling in a loop pays the gather once).
        """
        recording = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())
        if not recording and self._stream_cache is not None and self._stream_cache[0] == key:
            return self._stream_cache[1]
        out = []
        for i, node in enumerate(self._nodes):
            layer = self.layers[node.layer]
            order = self._plan[i][0].to(layer.weight.device)
            if node.source < 0:
                src_order = self._input_order.to(layer.weight.device)
            else:
                src_order = self._plan[node.source][0].to(layer.weight.device)
            out.append((layer.weight[order][:, src_order], layer.bias[order]))
        if not recording:
            self._stream_cache = (key, [(w.detach(), b.detach()) for w, b in out])
        return out

    def stream_params(self, y_like: Tensor, context: Tensor | None = None) -> ParamStream:
        """Generator over the order: yields ``(feature, params)`` and receives that feature's value.

        ``params`` is ``(batch, P)`` for the feature of degree ``k + 1`` at step ``k``; the caller
        sends back the feature's value as ``(batch,)`` or ``(batch, 1)``. Step ``k`` computes only
        the hidden units of degree ``k`` in every layer, from contiguous, already-known prefixes.
        The results equal :meth:`params` up to float rounding.
        """
        self._check(y_like, context)
        batch, D = y_like.shape[0], self.features
        weights = self._sorted_weights()
        # Keep gradients intact when recording: never write in place into a saved tensor.
        # Otherwise work in a (units, batch) "rows" layout: every block is contiguous.
        recording = torch.is_grad_enabled()
        rows = not recording
        n_nodes = len(self._nodes)
        raw = [_Columns(batch, w.shape[0], y_like, recording) for w, _ in weights[:-1]]
        act = [_Columns(batch, w.shape[0], y_like, recording) for w, _ in weights[:-1]]
        # Only residual sources and non-activated sources are read un-activated.
        keep_raw = {n.residual for n in self._nodes} | {
            n.source for n in self._nodes if not n.activate_source
        }
        inputs = _Columns(batch, D, y_like, recording)
        ctx_term = None
        if self.context_layer is not None:
            ctx_term = self.context_layer(context)[:, self._plan[0][0].to(y_like.device)]
            ctx_term = ctx_term.T.contiguous() if rows else ctx_term
        input_order = self._input_order.tolist()
        for k in range(D):
            for i in range(n_nodes):
                weight, bias = weights[i]
                _, bounds, prefix = self._plan[i]
                start, end = bounds[k]
                if start == end:
                    continue
                node = self._nodes[i]
                if node.source < 0:
                    source = inputs
                else:
                    source = act[node.source] if node.activate_source else raw[node.source]
                width = prefix[k]
                w, b = weight[start:end, :width], bias[start:end]
                if rows:
                    out = (torch.addmm(b[:, None], w, source.prefix(width)) if width > 0
                           else b[:, None].expand(end - start, batch))
                else:
                    out = F.linear(source.prefix(width), w, b) if width > 0 else b.expand(batch, -1)
                if i == 0 and ctx_term is not None:
                    out = out + (ctx_term[start:end] if rows else ctx_term[:, start:end])
                if node.residual is not None:
                    out = out + raw[node.residual].block(start, end)
                if i == n_nodes - 1:
                    value = yield input_order[k], (out.T if rows else out)
                    inputs.append(value.reshape(1, batch) if rows else value.reshape(batch, 1))
                else:
                    if i in keep_raw:
                        raw[i].append(out)
                    act[i].append(self.activation(out))

    def stream(self, y_like: Tensor, context: Tensor | None = None):
        """The :class:`~seqflow.transforms.AutoregressiveAffine` stream (``P = 2`` only).

        Yields ``(index, shift, raw_log_scale)`` with ``index = (slice(None), slice(i, i + 1))``
        and shapes ``(batch, 1)``; receives the conditioner-side values of feature ``i``.
        """
        if self.params_per_feature != 2:
            raise ValueError(
                f"MADE.stream yields (shift, log_scale) and needs params_per_feature=2, "
                f"got {self.params_per_feature}; use stream_params"
            )
        gen = self.stream_params(y_like, context)
        try:
            feature, params = next(gen)
            while True:
                index = (slice(None), slice(feature, feature + 1))
                value = yield index, params[:, :1], params[:, 1:]
                feature, params = gen.send(value)
        except StopIteration:
            return


class _Columns:
    """Columns of a ``(batch, width)`` activation filled left to right, in sorted order.

    Without gradient recording, a preallocated ``(width, batch)`` buffer is written in place
    (each block lands in contiguous rows) and read through views, with no copies. While
    recording, blocks are kept in a list and
    concatenated on read, so no tensor saved for backward is ever modified in place.
    """

    def __init__(self, batch: int, width: int, like: Tensor, recording: bool):
        self.recording = recording
        self.filled = 0
        if recording:
            self.blocks: list[Tensor] = []
            self._cat: Tensor | None = None
        else:
            self.buffer = like.new_empty(width, batch)

    def append(self, block: Tensor) -> None:
        """Add a block: ``(n, batch)`` in the rows layout, ``(batch, n)`` while recording."""
        if self.recording:
            self.blocks.append(block)
            self._cat = None
            self.filled += block.shape[1]
        else:
            end = self.filled + block.shape[0]
            self.buffer[self.filled:end].copy_(block)
            self.filled = end

    def prefix(self, width: int) -> Tensor:
        """The first ``width`` units, in the same layout as :meth:`append`."""
        if not self.recording:
            return self.buffer[:width]
        if self._cat is None:
            self._cat = torch.cat(self.blocks, dim=1)
        return self._cat[:, :width]

    def block(self, start: int, end: int) -> Tensor:
        if not self.recording:
            return self.buffer[start:end]
        return self.prefix(end)[:, start:]
