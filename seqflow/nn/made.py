"""MADE (Germain et al. 2015) with context, orderings, residual blocks and degree-sliced streaming.

A MADE maps ``x`` of shape ``(batch, features)`` to ``params_per_feature`` values per feature,
where the values of feature ``i`` depend only on features that come before ``i`` in the order
(and on an optional, unmasked context). Masks come from degrees (:mod:`seqflow.nn.masks`):
inputs have degrees ``1..D``; hidden units cycle through ``1..D-1`` (``0..D-1`` when there is a
context, so that a degree-0 unit carries the context to the first output); the outputs of
feature ``i`` see hidden units of degree ``< degree(i)``.

**Streaming.** A hidden unit of degree ``k`` depends only on inputs of degree ``<= k``. Once the
inputs of degree ``1..k`` are known, :class:`MADEStream` computes exactly the hidden units of
degree ``k`` in every layer (their inputs are a contiguous prefix once units are sorted by
degree) and then the outputs of the input of degree ``k + 1``. The whole sequential direction of
a MAF (sampling) or IAF (density) therefore costs about one masked pass of arithmetic plus ``D``
small steps, instead of ``D`` full passes. The plan behind it is derived from the degree
buffers whenever they change (e.g. after ``load_state_dict`` of a random order), never frozen
at construction.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.checks import check_positive
from seqflow.nn.masks import hidden_degrees, input_degrees, mask_from_degrees

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "gelu": F.gelu,
}


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
        hidden_features: width of every hidden layer (default ``max(64, 2 D)``). With at least
            ``D - 1`` units (``D`` with a context) every degree has a hidden unit; fewer are
            legal (as in other libraries): the degrees without units are skipped, so later
            outputs see fewer inputs.
        blocks: hidden layers (``residual=False``) or residual blocks (``residual=True``).
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
    one ``(batch, P, features)`` tensor; :meth:`start_stream` evaluates them feature by feature.

    >>> import torch
    >>> made = MADE(3, hidden_features=8, order=[2, 0, 1])
    >>> shift, raw = made(torch.randn(4, 3))
    >>> shift.shape, made.input_degrees.tolist()
    (torch.Size([4, 3]), [2, 3, 1])
    """

    def __init__(
        self,
        features: int,
        hidden_features: int | None = None,
        blocks: int = 2,
        context_features: int | None = None,
        order: str | Sequence[int] | Tensor = "natural",
        residual: bool = False,
        params_per_feature: int = 2,
        activation: str = "relu",
        zero_init_output: bool = False,
        seed: int | None = None,
    ):
        super().__init__()
        if hidden_features is None:
            hidden_features = max(64, 2 * features)
        check_positive("MADE", features=features, hidden_features=hidden_features, blocks=blocks,
                       params_per_feature=params_per_feature, context_features=context_features)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"MADE: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        min_degree = 0 if context_features else min(1, features - 1)
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
        for _ in range(blocks - 1 if not residual else blocks):
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
        self._plan_cache: tuple[tuple, StreamPlan] | None = None
        self._weights_cache: tuple[tuple, list[tuple[Tensor, Tensor]]] | None = None

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
    def _degree_buffers(self) -> list[Tensor]:
        return [self.input_degrees, *(layer.out_degrees for layer in self.layers)]

    def stream_plan(self) -> StreamPlan:
        """The index bookkeeping of :class:`MADEStream`, derived from the degree buffers.

        Rebuilt whenever a degree buffer is replaced or written (``load_state_dict`` copies into
        the buffers, which bumps their version), so a reloaded random order streams correctly.
        """
        key = tuple((b.data_ptr(), b._version) for b in self._degree_buffers())
        if self._plan_cache is None or self._plan_cache[0] != key:
            self._plan_cache = (key, StreamPlan.build(self))
        return self._plan_cache[1]

    def sorted_weights(self, plan: StreamPlan) -> list[tuple[Tensor, Tensor]]:
        """Per node, weight and bias with rows sorted by unit degree and columns by source.

        Inside the blocks that the stream reads, the mask is all ones, so no mask multiply is
        needed. Reused across calls while the parameters and the plan are unchanged and no
        gradient is being recorded (sampling in a loop pays the gather once).
        """
        recording = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        plan_key = self._plan_cache[0] if self._plan_cache is not None else None
        key = (plan_key, *((p.data_ptr(), p._version, p.dtype, p.device)
                           for p in self.parameters()))
        if not recording and self._weights_cache is not None and self._weights_cache[0] == key:
            return self._weights_cache[1]
        out = []
        for i, node in enumerate(self._nodes):
            layer = self.layers[node.layer]
            device = layer.weight.device
            order = plan.unit_order[i].to(device)
            src = plan.input_order if node.source < 0 else plan.unit_order[node.source]
            out.append((layer.weight[order][:, src.to(device)], layer.bias[order]))
        if not recording:
            out = [(w.detach(), b.detach()) for w, b in out]
            self._weights_cache = (key, out)
        return out

    def start_stream(self, batch: int, context: Tensor | None = None, length: int = 1,
                     history: Tensor | None = None) -> MADEStream:
        """A :class:`MADEStream` over one vector (``length`` 1, no history)."""
        if length != 1 or history is not None:
            raise ValueError(
                f"MADE streams a single vector: length must be 1 and history None, got "
                f"length={length}, history {None if history is None else tuple(history.shape)}"
            )
        like = self.layers[-1].weight
        self._check(like.new_zeros(batch, self.features), context)
        return MADEStream(self, batch, context)


@dataclass(frozen=True)
class StreamPlan:
    """Degree-sorted index bookkeeping of a MADE for degree-sliced streaming.

    For every node: ``unit_order[i]`` sorts its units by degree (stable); ``bounds[i][k]`` is
    the ``(start, end)`` range of its degree-``k`` units in sorted position; ``prefix[i][k]`` is
    how many sorted source units a degree-``k`` unit reads (all source units of degree
    ``<= k``). The output node is indexed by *step* ``k``: it produces the input of degree
    ``k + 1``, whose ``P`` outputs are contiguous after sorting by ``(degree, param)``.
    """

    input_order: Tensor
    unit_order: list[Tensor]
    bounds: list[list[tuple[int, int]]]
    prefix: list[list[int]]

    @classmethod
    def build(cls, made: MADE) -> StreamPlan:
        D, P = made.features, made.params_per_feature
        input_degrees = made.input_degrees.cpu()
        unit_degrees: list[Tensor] = []
        unit_order, bounds, prefix = [], [], []
        last = len(made._nodes) - 1
        for i, node in enumerate(made._nodes):
            deg = made.layers[node.layer].out_degrees.cpu()
            src_deg = input_degrees if node.source < 0 else unit_degrees[node.source]
            src_sorted = torch.sort(src_deg).values
            prefix.append([int(torch.searchsorted(src_sorted, k, right=True)) for k in range(D)])
            if i == last:
                order = torch.argsort(deg * P + torch.arange(len(deg)) // D, stable=True)
                bounds.append([(k * P, (k + 1) * P) for k in range(D)])
            else:
                order = torch.argsort(deg, stable=True)
                deg_sorted = deg[order]
                bounds.append([(int(torch.searchsorted(deg_sorted, k)),
                                int(torch.searchsorted(deg_sorted, k, right=True)))
                               for k in range(D)])
            unit_degrees.append(deg)
            unit_order.append(order)
        return cls(torch.argsort(input_degrees, stable=True), unit_order, bounds, prefix)


class MADEStream:
    """Degree-sliced evaluation of a :class:`MADE`, one feature at a time (a stream state).

    ``order`` lists the features by degree. ``params(feature)`` returns ``(batch, P)`` for the
    next feature in that order: it computes only the hidden units of the degree just completed,
    in every layer, from contiguous, already-known prefixes; ``feed(feature, value)`` takes the
    feature's value ``(batch,)``. The results equal :meth:`MADE.params` up to float rounding.

    Without gradient recording every step runs a precomputed :class:`StreamProgram`: views of
    the sorted weights and of preallocated ``(units, batch)`` activation buffers, one matmul
    written in place and one in-place activation per layer and step, no per-step slicing or
    index tensors. While recording, blocks are kept in lists and nothing saved for backward is
    written in place.
    """

    def __init__(self, made: MADE, batch: int, context: Tensor | None):
        self.made = made
        plan = made.stream_plan()
        self.plan = plan
        self.order = plan.input_order.tolist()
        self.weights = made.sorted_weights(plan)
        like = self.weights[0][0]
        self.batch = batch
        self.recording = torch.is_grad_enabled()
        self.step = 0
        self.program: StreamProgram | None = None
        nodes = made._nodes
        ctx_term = None
        if made.context_layer is not None:
            ctx_term = made.context_layer(context)[:, plan.unit_order[0].to(like.device)]
        self.runs_sequences = not self.recording and made.params_per_feature == 2
        if not self.recording:
            self.program = StreamProgram.acquire(made, plan, self.weights, batch, self)
            self.program.start(ctx_term)
            return
        self.raw = [_Columns(batch, w.shape[0]) for w, _ in self.weights[:-1]]
        self.act = [_Columns(batch, w.shape[0]) for w, _ in self.weights[:-1]]
        # Only residual sources and non-activated sources are read un-activated.
        self.keep_raw = {n.residual for n in nodes} | {n.source for n in nodes
                                                         if not n.activate_source}
        self.inputs = _Columns(batch, made.features)
        self.ctx_term = ctx_term

    def _check_order(self, feature: int) -> int:
        k = self.step
        if k >= len(self.order) or feature != self.order[k]:
            expected = self.order[k] if k < len(self.order) else None
            raise ValueError(f"MADEStream: feature {feature} requested, but step {k} computes "
                             f"feature {expected} (order {self.order})")
        return k

    def params(self, feature: int) -> Tensor:
        k = self._check_order(feature)
        if self.program is not None:
            return self.program.params(k)
        made, plan, batch = self.made, self.plan, self.batch
        last = len(made._nodes) - 1
        for i, node in enumerate(made._nodes):
            start, end = plan.bounds[i][k]
            if start == end:
                continue
            weight, bias = self.weights[i]
            if node.source < 0:
                source = self.inputs
            else:
                source = self.act[node.source] if node.activate_source else self.raw[node.source]
            width = plan.prefix[i][k]
            w, b = weight[start:end, :width], bias[start:end]
            out = F.linear(source.prefix(width), w, b) if width > 0 else b.expand(batch, -1)
            if i == 0 and self.ctx_term is not None:
                out = out + self.ctx_term[:, start:end]
            if node.residual is not None:
                out = out + self.raw[node.residual].block(start, end)
            if i == last:
                return out
            if i in self.keep_raw:
                self.raw[i].append(out)
            self.act[i].append(made.activation(out))
        raise AssertionError("the output node always has P units per step")

    def feed(self, feature: int, value: Tensor) -> None:
        if self.program is not None:
            self.program.feed(self.step, value)
        else:
            self.inputs.append(value.reshape(self.batch, 1))
        self.step += 1

    def advance(self) -> None:
        """A vector has one time step: nothing to close."""

    def run_sequence(self, u: Tensor, bound: float, inverse: bool) -> tuple[Tensor, Tensor]:
        """Every feature of an affine layer on this MADE at once (the whole vector).

        ``u`` ``(batch, features)`` is the layer's input (noise when ``inverse``, data
        otherwise); returns the result ``(batch, features)`` and the summed log-scales
        ``soft_clamp(raw, bound)`` ``(batch,)``. Only when :attr:`runs_sequences` is true (no
        gradient recording, ``P = 2``) and before any ``params`` call.
        """
        if not self.runs_sequences or self.step != 0:
            raise ValueError("MADEStream.run_sequence: needs a fresh stream without gradient "
                             "recording and two parameters per feature")
        order = self.plan.input_order.to(u.device)
        log_scales = self.program.run(u.T.index_select(0, order), bound, inverse)
        self.step = len(self.order)
        result = torch.empty_like(u)
        result[:, order] = self.program.inputs.T
        return result, log_scales.sum(0)


def _activation_op(name: str, source: Tensor, out: Tensor | None) -> Callable[[], object]:
    """A call that writes ``activation(source)`` into ``out`` (into ``source`` when None)."""
    if out is None:
        if name == "relu":
            return source.relu_
        if name == "tanh":
            return source.tanh_
        return partial(_copy_activation, name, source, source)
    if name == "relu":
        return partial(torch.clamp_min, source, 0.0, out=out)
    if name == "tanh":
        return partial(torch.tanh, source, out=out)
    return partial(_copy_activation, name, source, out)


def _copy_activation(name: str, source: Tensor, out: Tensor) -> None:
    out.copy_(ACTIVATIONS[name](source))


class StreamProgram:
    """The no-grad steps of a :class:`MADEStream` as lists of prepared calls.

    Every call is bound to views of the sorted weights and of preallocated ``(units, batch)``
    buffers and writes its result in place, so a step runs no slicing, no allocation and no
    Python bookkeeping: ``hidden[k]`` computes every layer's units of degree ``k``;
    :meth:`run` adds the output units and the affine map of a flow layer and runs every step
    of a vector. One program serves one stream at a time; :meth:`acquire` reuses the MADE's
    cached program while the weights, plan and batch are unchanged and no other live stream
    holds it, so repeated sampling prepares the calls once.
    """

    _cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, made: MADE, plan: StreamPlan, weights: list[tuple[Tensor, Tensor]],
                 batch: int):
        like = weights[0][0]
        nodes = made._nodes
        name = made.activation_name
        self.params_per_feature = made.params_per_feature
        self.batch = batch
        features = made.features
        units = [w.shape[0] for w, _ in weights[:-1]]
        keep_raw = {n.residual for n in nodes} | {n.source for n in nodes
                                                  if not n.activate_source}
        self.inputs = like.new_zeros(features, batch)
        self.input_rows = list(self.inputs.split(1))  # (1, batch) each
        raw = {i: like.new_zeros(units[i], batch) for i in keep_raw
               if i is not None and i >= 0}
        act = [like.new_zeros(n, batch) for n in units]
        self.context_bias = None
        if made.context_layer is not None:
            self.context_bias = like.new_zeros(units[0], batch)
        self.first_bias = weights[0][1][:, None]
        self.hidden: list[list[Callable[[], object]]] = []
        self.output: list[tuple[Tensor | None, Tensor, Tensor | None]] = []
        last = len(nodes) - 1
        for k in range(features):
            ops: list[Callable[[], object]] = []
            for i, node in enumerate(nodes):
                start, end = plan.bounds[i][k]
                if start == end:
                    continue
                weight, bias = weights[i]
                width = plan.prefix[i][k]
                if node.source < 0:
                    src = self.inputs
                else:
                    src = act[node.source] if node.activate_source else raw[node.source]
                w = weight[start:end, :width] if width > 0 else None
                source = src[:width] if width > 0 else None
                if i == 0 and self.context_bias is not None:
                    b = self.context_bias[start:end]
                else:
                    b = bias[start:end, None]
                if i == last:
                    self.output.append((w, b, source))
                    continue
                dst = raw[i][start:end] if i in raw else act[i][start:end]
                if w is None:
                    ops.append(partial(dst.copy_, b.expand_as(dst)))
                else:
                    ops.append(partial(torch.addmm, b, w, source, out=dst))
                if node.residual is not None:
                    ops.append(partial(dst.add_, raw[node.residual][start:end]))
                ops.append(_activation_op(name, dst, act[i][start:end] if i in raw else None))
            self.hidden.append(ops)
        self._affine_ops: dict[tuple[float, bool], list[Callable[[], object]]] = {}
        self.owner: weakref.ref | None = None

    @classmethod
    def acquire(cls, made: MADE, plan: StreamPlan, weights: list[tuple[Tensor, Tensor]],
                batch: int, owner: object) -> StreamProgram:
        """The cached program for these weights and batch, or a new one (cached if free)."""
        key = (tuple(id(w) for pair in weights for w in pair), id(plan), batch)
        cached = cls._cache.get(made)
        busy = cached is not None and cached[1].owner is not None and cached[1].owner() is not None
        if cached is not None and cached[0] == key and not busy:
            program = cached[1]
        else:
            program = cls(made, plan, weights, batch)
            if not busy:
                cls._cache[made] = (key, program)
        program.owner = weakref.ref(owner)
        return program

    def start(self, ctx_term: Tensor | None) -> None:
        """Reset for a new vector; ``ctx_term`` ``(batch, units)`` is the first layer's
        context term in sorted unit order."""
        if self.context_bias is not None:
            torch.add(self.first_bias, ctx_term.T, out=self.context_bias)

    def params(self, k: int) -> Tensor:
        """``(batch, P)`` of the feature of degree ``k + 1``."""
        for op in self.hidden[k]:
            op()
        w, b, source = self.output[k]
        if w is None:
            return b.T.expand(self.batch, -1)
        return torch.addmm(b, w, source).T

    def feed(self, k: int, value: Tensor) -> None:
        self.input_rows[k].copy_(value if value.dim() == 1 else value.reshape(-1))

    def run(self, u: Tensor, bound: float, inverse: bool) -> Tensor:
        """Every step of an affine layer (``P = 2``): ``u`` ``(features, batch)`` is the
        layer's input in the order; the results land in :attr:`inputs`. Returns the log-scales
        ``(features, batch)`` in the order (a buffer of this program)."""
        ops = self._affine_ops.get((bound, inverse))
        if ops is None:
            ops = self._affine_ops[(bound, inverse)] = self._build_affine(bound, inverse)
        self.layer_input.copy_(u)
        for op in ops:
            op()
        return self.log_scales

    def _build_affine(self, bound: float, inverse: bool) -> list[Callable[[], object]]:
        """The calls of :meth:`run`: per step the hidden units, the two output units,
        ``s = soft_clamp(raw, bound)`` and the affine map, all in place."""
        like = self.inputs
        if not hasattr(self, "layer_input"):
            self.layer_input = torch.empty_like(like)
            self.log_scales = torch.empty_like(like)
            self._scratch = like.new_empty(5, self.batch)
        params, den, scale, ones = self._scratch[:2], *self._scratch[2:5].split(1)
        ones.fill_(1.0)
        shift, raw = params.split(1)
        ops: list[Callable[[], object]] = []
        steps = zip(self.hidden, self.output, self.layer_input.split(1),
                    self.log_scales.split(1), self.input_rows, strict=True)
        for hidden, (w, b, source), u, s, out in steps:
            ops += hidden
            if w is None:
                ops.append(partial(params.copy_, b.expand_as(params)))
            else:
                ops.append(partial(torch.addmm, b, w, source, out=params))
            ops += [partial(torch.abs, raw, out=den),  # soft_clamp: raw / (1 + |raw| / bound)
                    partial(torch.add, ones, den, alpha=1.0 / bound, out=den),
                    partial(torch.div, raw, den, out=s),
                    partial(torch.exp, s, out=scale)]
            if inverse:
                ops.append(partial(torch.addcmul, shift, u, scale, out=out))
            else:
                ops += [partial(torch.sub, u, shift, out=den),
                        partial(torch.div, den, scale, out=out)]
        return ops


class _Columns:
    """Columns of a ``(batch, width)`` activation filled left to right, in sorted order.

    Used while recording gradients: blocks are kept in a list and concatenated on read, so no
    tensor saved for backward is ever modified in place.
    """

    def __init__(self, batch: int, width: int):
        self.filled = 0
        self.blocks: list[Tensor] = []
        self._cat: Tensor | None = None

    def append(self, block: Tensor) -> None:
        """Add a ``(batch, n)`` block."""
        self.blocks.append(block)
        self._cat = None
        self.filled += block.shape[1]

    def prefix(self, width: int) -> Tensor:
        """The first ``width`` units ``(batch, width)``."""
        if self._cat is None:
            self._cat = torch.cat(self.blocks, dim=1)
        return self._cat[:, :width]

    def block(self, start: int, end: int) -> Tensor:
        return self.prefix(end)[:, start:]
