"""A small registry that builds a :class:`~seqflow.distributions.Flow` from a ``ModelConfig``.

Kinds (all on vectors ``(batch, features)``):

* ``maf``: ``layers`` x (:class:`~seqflow.transforms.MAF` with a MADE conditioner, then Reverse).
* ``realnvp``: ``layers`` affine couplings with alternating parity.
* ``glow``: ``layers`` x (ActNorm, LU 1x1 InvertibleLinear, affine coupling).

>>> from seqflow.train.config import ModelConfig
>>> flow = build_flow(ModelConfig(kind="realnvp", features=2, layers=2, hidden=8))
>>> flow.sample(3).shape
torch.Size([3, 2])
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from seqflow.distributions import Flow, StandardNormal
from seqflow.train.config import ConfigError, ModelConfig
from seqflow.transforms import (
    MAF,
    ActNorm,
    AffineCoupling,
    Compose,
    InvertibleLinear,
    Reverse,
    Transform,
)


def _maf(cfg: ModelConfig) -> list[Transform]:
    layers: list[Transform] = []
    for i in range(cfg.layers):
        layers.append(MAF(cfg.features, hidden_features=cfg.hidden,
                          num_layers=max(cfg.hidden_layers, 1)))
        if i < cfg.layers - 1:
            layers.append(Reverse(cfg.features))
    return layers


def _coupling(cfg: ModelConfig, parity: int) -> AffineCoupling:
    if cfg.features < 2:
        raise ConfigError(f"model.kind={cfg.kind} needs model.features >= 2, got {cfg.features}")
    return AffineCoupling(cfg.features, parity=parity, hidden_features=cfg.hidden,
                          num_hidden_layers=cfg.hidden_layers)


def _realnvp(cfg: ModelConfig) -> list[Transform]:
    return [_coupling(cfg, i % 2) for i in range(cfg.layers)]


def _glow(cfg: ModelConfig) -> list[Transform]:
    layers: list[Transform] = []
    for i in range(cfg.layers):
        layers += [ActNorm(cfg.features), InvertibleLinear(cfg.features), _coupling(cfg, i % 2)]
    return layers


MODEL_KINDS: dict[str, Callable[[ModelConfig], list[Transform]]] = {
    "maf": _maf,
    "realnvp": _realnvp,
    "glow": _glow,
}


def build_flow(cfg: ModelConfig) -> Flow:
    """Build the flow named by ``cfg.kind`` with a standard-normal base of size ``features``."""
    if cfg.kind == "custom":
        raise ConfigError("model.kind=custom names a flow built by the caller "
                          "(Trainer(cfg, out, flow=...)); it cannot be built from a config")
    if cfg.kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind: {cfg.kind!r} is not one of {', '.join(MODEL_KINDS)}")
    return Flow(Compose(MODEL_KINDS[cfg.kind](cfg)), StandardNormal(cfg.features))


def has_data_dependent_init(module: nn.Module) -> bool:
    """True when some layer (e.g. ActNorm) initializes itself from its first training batch."""
    return any(isinstance(m, ActNorm) for m in module.modules())
