"""One default log-scale bound (``LOG_SCALE_BOUND``), honoured by every builder and the config."""

from __future__ import annotations

import inspect

import pytest

from seqflow.distributions import MADEMoG
from seqflow.train.config import ModelConfig
from seqflow.train.models import MODEL_KINDS, build_flow
from seqflow.transforms import (
    IAF,
    MAF,
    AffineCoupling,
    AutoregressiveAffine,
    SequenceIAF,
    SequenceMAF,
    WaveGlow,
)
from seqflow.transforms.elementwise import LOG_SCALE_BOUND
from seqflow.transforms.stacks import glow_steps, maf_steps, realnvp_steps

TAKERS = [AffineCoupling, WaveGlow, MAF, IAF, SequenceMAF, SequenceIAF, AutoregressiveAffine,
          MADEMoG, glow_steps, realnvp_steps, maf_steps]


def test_the_one_default_is_six() -> None:
    assert LOG_SCALE_BOUND == 6.0
    assert ModelConfig().log_scale_bound == LOG_SCALE_BOUND


@pytest.mark.parametrize("taker", TAKERS, ids=lambda t: t.__name__)
def test_every_layer_and_builder_defaults_to_the_constant(taker) -> None:
    parameter = inspect.signature(taker).parameters["log_scale_bound"]
    assert parameter.default == LOG_SCALE_BOUND
    assert "LOG_SCALE_BOUND" in (inspect.getdoc(taker) or "") + (
        inspect.getdoc(getattr(taker, "__init__", None)) or "") + (
        inspect.getdoc(inspect.getmodule(taker)) or ""), "the default is stated in a docstring"


def _bounds(flow) -> set[float]:
    return {m.log_scale_bound for m in flow.modules() if hasattr(m, "log_scale_bound")}


@pytest.mark.parametrize("kind", [k for k in MODEL_KINDS if k != "custom"])
def test_every_model_kind_takes_the_configs_bound(kind: str) -> None:
    cfg = ModelConfig(kind=kind, features=4, channels=1, steps=2, hidden_features=8, blocks=1,
                      residual_channels=4, skip_channels=4, squeeze_factor=2,
                      kernel_size=3, log_scale_bound=2.5)
    flow = build_flow(cfg)
    assert _bounds(flow) == {2.5}, kind
    assert _bounds(build_flow(ModelConfig(kind=kind, features=4, steps=2, hidden_features=8,
                                          blocks=1, residual_channels=4, skip_channels=4,
                                          squeeze_factor=2, kernel_size=3))) == {LOG_SCALE_BOUND}
