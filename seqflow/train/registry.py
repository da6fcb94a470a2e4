"""The registries that config validation reads: model kinds, tasks and data sources."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from seqflow.train.config import Config, ConfigError, stft_resolutions
from seqflow.train.datasets import DATA_SOURCES
from seqflow.train.models import MODEL_KINDS
from seqflow.train.objectives import (
    DistillTask,
    ELBOTask,
    IWAETask,
    LikelihoodTask,
    MaskedLikelihoodTask,
    Task,
)
from seqflow.train.objectives.elbo import check_latent_model
from seqflow.train.objectives.teacher import load_teacher


def _likelihood(flow: nn.Module, cfg: Config) -> Task:
    return LikelihoodTask(flow)


def _latent_model(model: nn.Module, cfg: Config) -> nn.Module:
    try:
        check_latent_model(model, f"train.task={cfg.train.task}")
    except ValueError as err:
        raise ConfigError(f"{err}; build it in Python and pass it to train(cfg, out, "
                          "task=build_task(model, cfg))") from None
    return model


def _elbo(model: nn.Module, cfg: Config) -> Task:
    """``model`` is a LatentVariableModel built by the caller (e.g. recipes/vae/model.py)."""
    v = cfg.train.variational
    return ELBOTask(_latent_model(model, cfg), num_samples=v.latent_samples,
                    anneal_steps=v.anneal_steps, anneal_start=v.anneal_start)


def _iwae(model: nn.Module, cfg: Config) -> Task:
    v = cfg.train.variational
    return IWAETask(_latent_model(model, cfg), num_samples=v.latent_samples,
                    eval_samples=v.iwae_samples)


def _masked_likelihood(flow: nn.Module, cfg: Config) -> Task:
    return MaskedLikelihoodTask(flow)


def _distill(flow: nn.Module, cfg: Config) -> Task:
    """Student ``flow`` against the frozen teacher run ``train.distill.teacher``."""
    d = cfg.train.distill
    teacher = load_teacher(cfg)
    try:
        return DistillTask(flow, teacher, kl=d.kl, kl_weight=d.kl_weight,
                           reg_weight=d.reg_weight, stft_weight=d.stft_weight,
                           stft_resolutions=stft_resolutions(d.stft_resolutions),
                           power_weight=d.power_weight, kl_warmup_steps=d.kl_warmup_steps)
    except ValueError as err:
        raise ConfigError(f"train.task=distill: {err}") from None


TASKS: dict[str, Callable[[nn.Module, Config], Task]] = {
    "likelihood": _likelihood,
    "elbo": _elbo,
    "iwae": _iwae,
    "masked_likelihood": _masked_likelihood,
    "distill": _distill,
}

__all__ = ["DATA_SOURCES", "MODEL_KINDS", "TASKS", "build_task", "check_config"]


def check_config(cfg: Config) -> Config:
    """``cfg`` itself, after checking that ``model.kind``, ``data.source`` and ``train.task``
    name entries of the registries; a one-line :class:`ConfigError` otherwise.

    :func:`~seqflow.train.config.load_config` validates the schema only; the engine calls this
    before it builds anything.
    """
    for key, value, registry in (("model.kind", cfg.model.kind, MODEL_KINDS),
                                 ("data.source", cfg.data.source, DATA_SOURCES),
                                 ("train.task", cfg.train.task, TASKS)):
        if value not in registry:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(registry)}")
    return cfg


def build_task(flow: nn.Module, cfg: Config) -> Task:
    """The configured task around ``flow``."""
    return TASKS[cfg.train.task](flow, cfg)
