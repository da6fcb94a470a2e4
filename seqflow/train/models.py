"""The model registry: builds a :class:`~seqflow.distributions.Flow` from a ``ModelConfig``.

Vector kinds (``(batch, features)``): ``maf``, ``realnvp``, ``glow``. Sequence kinds
(``(batch, channels, time)``): ``sequence_maf``, ``sequence_iaf`` and ``waveglow``. Each
builder reads only the keys its docstring names.

>>> from seqflow.train.config import ModelConfig
>>> flow = build_flow(ModelConfig(kind="realnvp", features=2, steps=2, hidden_features=8))
>>> flow.sample(3).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from seqflow.data.features import MelConfig
from seqflow.distributions import Flow, StandardNormal
from seqflow.train.config import ConfigError, ModelConfig
from seqflow.transforms import (
    ActNorm,
    Compose,
    LinearPrediction,
    Scaling,
    SequenceIAF,
    SequenceMAF,
    SequenceStack,
    Transform,
    WaveGlow,
)
from seqflow.transforms.stacks import glow_steps, maf_steps, realnvp_steps


def _vector_features(cfg: ModelConfig, minimum: int = 1) -> int:
    if cfg.features < minimum:
        raise ConfigError(f"model.kind={cfg.kind} needs model.features >= {minimum}, got "
                          f"{cfg.features}")
    return cfg.features


def _maf(cfg: ModelConfig) -> Transform:
    """features, steps, hidden_features, blocks (MADE hidden layers), log_scale_bound."""
    return maf_steps(_vector_features(cfg), cfg.steps, cfg.hidden_features, max(cfg.blocks, 1),
                     log_scale_bound=cfg.log_scale_bound)


def _realnvp(cfg: ModelConfig) -> Transform:
    """features, steps, hidden_features, blocks (coupling MLP hidden layers),
    log_scale_bound."""
    return realnvp_steps(_vector_features(cfg, 2), cfg.steps, cfg.hidden_features, cfg.blocks,
                         log_scale_bound=cfg.log_scale_bound)


def _glow(cfg: ModelConfig) -> Transform:
    """features, steps, hidden_features, blocks, log_scale_bound."""
    return glow_steps(_vector_features(cfg, 2), cfg.steps, cfg.hidden_features, cfg.blocks,
                      log_scale_bound=cfg.log_scale_bound)


def _sequence(layer: type) -> Callable[[ModelConfig], Transform]:
    def build(cfg: ModelConfig) -> Transform:
        """channels, steps, conditioner and its sizes (blocks, residual_channels,
        skip_channels, kernel_size, cycles | hidden_features, head_features), cond_channels,
        upsample_factor, num_global_ids, log_scale_bound, log_scale_floor, input_scale."""
        cond = cfg.cond_channels or None
        if cfg.conditioner == "wavenet":
            sizes = dict(residual_channels=cfg.residual_channels, skip_channels=cfg.skip_channels,
                         kernel_size=cfg.kernel_size, cycles=cfg.cycles)
        else:
            sizes = dict(hidden_features=cfg.hidden_features, head_features=cfg.head_features)
        layers = [
            layer(cfg.channels, conditioner=cfg.conditioner, blocks=max(cfg.blocks, 1),
                  cond_channels=cond, num_global_ids=cfg.num_global_ids or None,
                  log_scale_bound=cfg.log_scale_bound,
                  log_scale_floor=cfg.log_scale_floor or None, **sizes)
            for _ in range(cfg.steps)
        ]
        try:
            stack = SequenceStack(layers, cond_channels=cond,
                                  upsample_factor=cfg.upsample_factor if cond else 1)
        except ValueError as err:
            raise ConfigError(f"model: {err}") from None
        if cfg.input_scale == 1.0:
            return stack
        return Compose([input_scaling(cfg.channels, cfg.input_scale), stack])
    return build


def input_scaling(channels: int, input_scale: float) -> Scaling:
    """A :class:`Scaling` that starts as ``x / input_scale`` (its log-scale stays learnable).

    Conditioners learn slowly from inputs far below unit scale (speech on ``[-1, 1)`` has an
    RMS near 0.1): the weights from the input must first grow by the inverse factor, at about
    the learning rate per step. The scaling is part of the flow, so likelihoods stay in the
    data's units.
    """
    scaling = Scaling(channels)
    nn.init.constant_(scaling.log_scale, -math.log(input_scale))
    return scaling


def _waveglow(cfg: ModelConfig) -> Transform:
    """channels, squeeze_factor, steps, cond_channels, upsample_factor, residual_channels,
    blocks, kernel_size (odd), log_scale_bound."""
    return WaveGlow(cfg.channels, cfg.squeeze_factor, cfg.steps, cfg.cond_channels or None,
                    cfg.upsample_factor if cfg.cond_channels else 1, cfg.residual_channels,
                    max(cfg.blocks, 1), cfg.kernel_size, cfg.log_scale_bound)


MODEL_KINDS: dict[str, Callable[[ModelConfig], Transform]] = {
    "maf": _maf,
    "realnvp": _realnvp,
    "glow": _glow,
    "sequence_maf": _sequence(SequenceMAF),
    "sequence_iaf": _sequence(SequenceIAF),
    "waveglow": _waveglow,
    "custom": None,  # a caller-built flow (Trainer(cfg, out, flow=...)); never built here
}
SEQUENCE_KINDS = ("sequence_maf", "sequence_iaf", "waveglow")
# Mel-conditioned kinds that generate a waveform in one pass (a sequence MAF streams instead).
ONE_PASS_KINDS = ("sequence_iaf",)


def event_size(cfg: ModelConfig) -> int:
    """Axis-1 size of the data: ``features`` for vector kinds, ``channels`` for sequences."""
    return cfg.channels if cfg.kind in SEQUENCE_KINDS else cfg.features


def build_flow(cfg: ModelConfig, mel: MelConfig | None = None) -> Flow:
    """Build the flow named by ``cfg.kind`` with a standard-normal base.

    ``mel`` is the log-mel of the data (``data.mel``); a model with
    ``linear_prediction.order`` >= 1 needs it (:func:`with_linear_prediction`).
    """
    if cfg.kind == "custom":
        raise ConfigError("model.kind=custom names a flow built by the caller "
                          "(Trainer(cfg, out, flow=...)); it cannot be built from a config")
    if cfg.kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind: {cfg.kind!r} is not one of {', '.join(MODEL_KINDS)}")
    try:
        transform = MODEL_KINDS[cfg.kind](cfg)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None
    if cfg.linear_prediction.order:
        transform = with_linear_prediction(transform, cfg, mel)
    return Flow(transform, StandardNormal(event_size(cfg)))


def with_linear_prediction(transform: Transform, cfg: ModelConfig,
                           mel: MelConfig | None) -> Transform:
    """``Compose([LinearPrediction(mel, ...), transform])``: the filter on the data side of a
    mono, mel-conditioned ``sequence_maf`` (the network models the excitation) or
    ``sequence_iaf`` (the network generates it) model."""
    where = "model.linear_prediction"
    if cfg.kind not in ("sequence_maf", "sequence_iaf") or cfg.channels != 1:
        raise ConfigError(f"{where}.order={cfg.linear_prediction.order} needs a mono "
                          f"sequence_maf or sequence_iaf model, got kind={cfg.kind}, "
                          f"channels={cfg.channels}; set {where}.order: 0")
    if mel is None:
        raise ConfigError(f"{where}: the filter is derived from the log-mel; build the flow "
                          "with build_flow(cfg.model, cfg.data.mel)")
    if cfg.cond_channels != mel.n_mels or cfg.upsample_factor != mel.hop_length:
        raise ConfigError(f"{where}: model.cond_channels={cfg.cond_channels} and "
                          f"model.upsample_factor={cfg.upsample_factor} must be data.mel's "
                          f"n_mels={mel.n_mels} and hop_length={mel.hop_length}")
    try:
        layer = LinearPrediction(mel, cfg.linear_prediction.filter_config())
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
    return Compose([layer, transform])


def has_data_dependent_init(module: nn.Module) -> bool:
    """True when some layer (e.g. ActNorm) initializes itself from its first training batch."""
    return any(isinstance(m, ActNorm) for m in module.modules())
