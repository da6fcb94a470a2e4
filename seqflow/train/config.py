"""Typed training configuration: YAML files validated into dataclasses, dotted overrides.

A config has three sections, ``model``, ``data`` and ``train``; every key has a type and a
default, so a YAML file only lists what it changes. Overrides use dotted keys with YAML values:

>>> cfg = config_from_dict({"train": {"max_steps": 10}}, ["train.lr=3e-4", "model.kind=glow"])
>>> cfg.train.max_steps, cfg.train.lr, cfg.model.kind
(10, 0.0003, 'glow')
>>> config_from_dict({"train": {"max_step": 10}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
seqflow.train.config.ConfigError: unknown key 'train.max_step'; valid keys in 'train': ...

YAML syntax errors and duplicate keys are reported as ``file:line:column: message``; numbers must
be finite. On resume, :func:`diff_configs` and :func:`record_config_change` keep a record of
changed hyper-parameters next to the run's ``config.yaml``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from seqflow.data.features import MelConfig
from seqflow.data.linear_prediction import LinearPredictionConfig
from seqflow.data.timeseries import COLLECTION_SCALINGS, WINDOW_WEIGHTS
from seqflow.data.yaml_reader import UniqueKeyLoader, one_line, read_yaml
from seqflow.metrics.audio import parse_resolutions
from seqflow.train.objectives.distill import KL_ESTIMATORS, DistillSettings
from seqflow.train.objectives.elbo import VariationalSettings
from seqflow.transforms.elementwise import LOG_SCALE_BOUND


class ConfigError(ValueError):
    """A config file or override that cannot be turned into a :class:`Config`."""


@dataclass
class LinearPredictionSettings:
    """The ``model.linear_prediction`` section: ``order`` 0 (the default) builds no filter;
    ``order`` >= 1 puts a :class:`~seqflow.transforms.LinearPrediction` layer (the log-mel's
    linear-prediction filter and gain) on the data side of a mono ``sequence_maf`` or
    ``sequence_iaf`` model, with the other keys of
    :class:`~seqflow.data.linear_prediction.LinearPredictionConfig` (``interpolation``,
    ``method``, ``lag_window_hz``, ``white_noise``, ``nnls_iterations``) and the filterbank of
    ``data.mel``."""

    order: int = 0
    interpolation: str = LinearPredictionConfig.interpolation
    method: str = LinearPredictionConfig.method
    lag_window_hz: float = LinearPredictionConfig.lag_window_hz
    white_noise: float = LinearPredictionConfig.white_noise
    nnls_iterations: int = LinearPredictionConfig.nnls_iterations

    def __post_init__(self) -> None:
        if self.order:
            self.filter_config()

    def filter_config(self) -> LinearPredictionConfig:
        """The filter's settings (``order`` >= 1); a bad value raises a one-line error."""
        return LinearPredictionConfig(**dataclasses.asdict(self))


@dataclass
class ModelConfig:
    """Which flow to build (see :mod:`seqflow.train.models`, whose registry lists the kinds).

    Vector kinds (``(batch, features)``): ``maf`` (MADE autoregressive steps), ``realnvp``
    (affine couplings), ``glow`` (ActNorm + invertible 1x1 + affine coupling per step).
    Sequence kinds (``(batch, channels, time)``): ``sequence_maf`` and ``sequence_iaf`` (a
    :class:`~seqflow.transforms.SequenceStack` of ``steps`` layers with a ``wavenet`` or ``lstm``
    conditioner, local conditioning of ``cond_channels`` features upsampled once by
    ``upsample_factor``, and ``num_global_ids`` global ids), and ``waveglow``. ``custom``
    records that the caller built the flow (``Trainer(cfg, out, flow=...)``).

    Sizes follow the glossary: ``steps`` (flow depth), ``hidden_features`` (width; LSTM width),
    ``blocks`` (network depth: MADE/coupling hidden layers, WaveNet blocks, LSTM layers),
    ``residual_channels``/``skip_channels``/``kernel_size``/``cycles`` (WaveNet),
    ``head_features`` (LSTM head), ``squeeze_factor`` (WaveGlow). ``cond_channels: 0`` and
    ``num_global_ids: 0`` mean no local features / no global ids. ``log_scale_bound`` is the
    smooth bound of every affine log-scale, honoured by every kind (default
    :data:`~seqflow.transforms.elementwise.LOG_SCALE_BOUND`, 6). ``log_scale_floor`` < 0 gives
    the sequence MAF/IAF layers an explicit lower floor of the log-scale, ``s`` in
    ``(floor, log_scale_bound)`` (:func:`~seqflow.transforms.elementwise.floored_log_scale`;
    about -9 suits 16-bit audio); 0 keeps the symmetric bound. ``input_scale`` != 1 puts a learnable
    :class:`~seqflow.transforms.Scaling` that starts as ``x / input_scale`` in front of a
    sequence MAF/IAF stack, so the conditioners read unit-scale inputs (the layers' log-scales,
    floor included, are then in units of ``input_scale``). ``linear_prediction``
    (:class:`LinearPredictionSettings`; ``order: 0`` = none) puts the log-mel's
    linear-prediction filter on the data side of a mono sequence MAF/IAF model: a teacher's
    network then models the excitation, a student generates it.
    """

    kind: str = "realnvp"
    features: int = 2
    channels: int = 1
    steps: int = 4
    hidden_features: int = 64
    blocks: int = 2
    conditioner: str = "wavenet"
    residual_channels: int = 64
    skip_channels: int = 64
    kernel_size: int = 2
    cycles: int = 1
    head_features: int = 64
    cond_channels: int = 0
    upsample_factor: int = 1
    num_global_ids: int = 0
    squeeze_factor: int = 8
    log_scale_bound: float = LOG_SCALE_BOUND
    base: str = "normal"
    log_scale_floor: float = 0.0
    input_scale: float = 1.0
    linear_prediction: LinearPredictionSettings = field(
        default_factory=LinearPredictionSettings)


@dataclass
class DataConfig:
    """Where the data comes from and how it is split (the registry in
    :mod:`seqflow.train.datasets` lists the sources).

    ``toy`` (``name`` is a :data:`seqflow.data.TOY_DATASETS` key, ``num_samples`` points),
    ``csv`` (one numeric row per sample, optional header, ``#`` comments) and ``npy`` (a 2-D
    array) are rows split by a seeded permutation (``seed``). ``toy_audio`` generates
    ``num_samples`` clips of ``segment_length`` samples (sine mixtures with vibrato and noise)
    with their log-mel spectrogram as the local context.

    ``audio`` reads the corpus at ``path`` (a folder of wav/flac/ogg files or an LJSpeech-style
    folder; :mod:`seqflow.data.audio`), resampled to ``mel.sample_rate``, and splits it by file
    (``val_fraction``, ``test_fraction``, ``seed``); a corpus with more than
    ``max_bad_fraction`` unusable files is refused. Training items are random
    ``segment_length`` segments, uniformly dequantized when ``dequantize``; ``val_items``
    fixed held-out segments score validation (0: one per ``segment_length`` samples of the
    validation files); whole-utterance features are cached in ``cache_dir`` (default:
    ``features/`` in the run directory).

    ``series`` reads a collection of time series at ``path`` (a long-format CSV file with
    columns ``item_column``, ``time_column``, the ``targets`` (default: the column ``target``)
    and the ``covariates``, comma-separated names; or a folder of one CSV file per item;
    :func:`~seqflow.data.timeseries.read_collection`) and trains a global forecaster on
    windows of ``context + horizon`` steps drawn across the items
    (:class:`~seqflow.data.timeseries.CollectionWindows`): ``window_weights`` ``length`` or
    ``uniform``, ``scaling`` per window (``window`` or ``mean``), ``num_windows`` training
    windows (0: one per window position), ``val_origins`` validation and ``test_origins`` test
    horizons at each item's end, ``item_ids`` a learned embedding of the item (global ids).
    Derived from the data when the run starts (:mod:`seqflow.train.series_data`), and refused
    when set to something else: ``freq`` (the inferred frequency; a given one reads the items
    on that grid), ``season``, ``context`` (0: twice the horizon), ``model.channels`` (the
    targets), ``model.cond_channels`` (calendar features, covariates, one observed flag per
    target), ``model.upsample_factor`` (1) and ``model.num_global_ids`` (the items, with
    ``item_ids``).

    ``mel`` (a :class:`~seqflow.data.features.MelConfig`: ``sample_rate``, ``n_fft``,
    ``hop_length``, ``win_length``, ``window``, ``n_mels``, ``f_min``, ``f_max``,
    ``log_floor``) is the log-mel that audio sources give as local context; for them the
    model's ``cond_channels`` and ``upsample_factor`` are derived from it (``n_mels`` and
    ``hop_length``) unless the model sets ``cond_channels: 0`` (it reads no mel).
    """

    source: str = "toy"
    name: str = "moons"
    path: str = ""
    num_samples: int = 10_000
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    segment_length: int = 4096
    max_bad_fraction: float = 0.05
    dequantize: bool = True
    val_items: int = 0
    cache_dir: str = ""
    item_column: str = "item_id"
    time_column: str = "timestamp"
    targets: str = ""
    covariates: str = ""
    freq: str = ""
    season: int = 0
    context: int = 0
    horizon: int = 0
    scaling: str = "window"
    window_weights: str = "length"
    num_windows: int = 0
    val_origins: int = 1
    test_origins: int = 0
    item_ids: bool = False
    mel: MelConfig = field(default_factory=MelConfig)


@dataclass
class TrainConfig:
    """Optimization, evaluation, checkpointing and logging.

    ``task`` names the training task (see :mod:`seqflow.train.objectives`). ``batch_size`` is
    per process: ``N`` processes see ``N * batch_size`` samples per micro-batch step.
    ``grad_accum`` micro-batches make one optimizer step; ``max_steps``, ``eval_every``,
    ``checkpoint_every`` and ``warmup_steps`` count optimizer steps. ``input_noise`` adds
    Gaussian noise of that standard deviation to training batches (a regularizer).
    ``cpu_threads`` > 0 sets ``torch.set_num_threads`` when training on CPU (0 keeps torch's
    default); small models train much faster with 1 thread per process on a busy machine.
    ``patience`` > 0 stops training after that many consecutive validation evaluations without
    a lower validation score (early stopping; 0 = off); the best weights are kept either way.
    ``on_nonfinite: skip`` skips steps whose loss or gradient is not finite, at most
    ``max_skips`` in a row (then the run fails).
    Task settings live in their own sections: ``variational``
    (:class:`~seqflow.train.objectives.elbo.VariationalSettings`, tasks ``elbo`` and ``iwae``)
    and ``distill`` (:class:`~seqflow.train.objectives.distill.DistillSettings`).
    """

    max_steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float = 5.0
    grad_accum: int = 1
    input_noise: float = 0.0
    mixed_precision: str = "auto"
    ema_decay: float = 0.0
    seed: int = 0
    task: str = "likelihood"
    on_nonfinite: str = "error"
    max_skips: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    eval_every: int = 200
    eval_batch_size: int = 2048
    log_every: int = 10
    log_with: str = "tensorboard"
    progress: bool = True
    cpu_threads: int = 0
    patience: int = 0
    variational: VariationalSettings = field(default_factory=VariationalSettings)
    distill: DistillSettings = field(default_factory=DistillSettings)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Choices that belong to no registry; model.kind, data.source and train.task are checked
# against the registries themselves (seqflow.train.registry.check_config).
CHOICES: dict[str, tuple[str, ...]] = {
    "model.base": ("normal",),
    "model.conditioner": ("wavenet", "lstm"),
    "train.lr_schedule": ("constant", "cosine", "linear"),
    "train.mixed_precision": ("auto", "no", "bf16"),
    "train.on_nonfinite": ("error", "skip"),
    "train.log_with": ("tensorboard", "none"),
    "train.distill.kl": KL_ESTIMATORS,
    "data.scaling": COLLECTION_SCALINGS,
    "data.window_weights": WINDOW_WEIGHTS,
}

POSITIVE = {
    "model.features", "model.channels", "model.steps", "model.hidden_features",
    "model.residual_channels", "model.skip_channels", "model.kernel_size", "model.cycles",
    "model.head_features", "model.upsample_factor", "model.squeeze_factor",
    "model.log_scale_bound", "model.input_scale", "train.max_steps", "train.batch_size", "train.lr",
    "train.grad_accum", "train.checkpoint_every", "train.keep_checkpoints", "train.eval_every",
    "train.eval_batch_size", "train.log_every", "train.max_skips", "data.num_samples",
    "data.segment_length", "train.variational.latent_samples", "train.variational.iwae_samples",
}
NON_NEGATIVE = {"model.blocks", "model.cond_channels", "model.num_global_ids",
                "model.linear_prediction.order",
                "train.weight_decay", "train.warmup_steps", "train.grad_clip", "train.seed",
                "data.seed", "train.cpu_threads", "train.input_noise", "train.patience",
                "train.variational.anneal_steps", "data.val_items",
                "train.distill.kl_weight", "train.distill.reg_weight",
                "train.distill.stft_weight", "train.distill.power_weight",
                "train.distill.kl_warmup_steps", "data.season", "data.context",
                "data.horizon", "data.num_windows", "data.val_origins", "data.test_origins"}

# Keys that moved into a section: an old config names them, the error names the new key.
MOVED = {
    **{f"data.{key}": f"data.mel.{key}" for key in (
        "sample_rate", "hop_length", "n_mels", "n_fft", "win_length", "f_min", "f_max",
        "log_floor")},
    **{f"train.distill_{key}": f"train.distill.{key}" for key in (
        "teacher", "kl", "kl_weight", "reg_weight", "stft_weight", "stft_resolutions",
        "power_weight", "kl_warmup_steps")},
    **{f"train.{key}": f"train.variational.{key}" for key in (
        "latent_samples", "iwae_samples", "anneal_steps", "anneal_start")},
}
# Model settings derived from ``data.mel`` when the data are audio.
DERIVED_FROM_MEL = {"model.cond_channels": "n_mels", "model.upsample_factor": "hop_length"}
AUDIO_SOURCES = ("audio", "toy_audio")


def _is_section(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _keys(cls: type, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        out.extend(_keys(hints[f.name], key + ".") if _is_section(hints[f.name]) else [key])
    return out


def valid_keys() -> list[str]:
    """Every dotted key, e.g. ``["model.kind", ..., "data.mel.n_mels", ..., "train.progress"]``."""
    return _keys(Config, "")


def _coerce(key: str, value: Any, expected: Any) -> Any:
    """Check ``value`` against the annotated type; ints are accepted where floats are."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is float and isinstance(value, str):
        # YAML 1.1 reads ``3e-4`` (no dot) as a string; accept any float literal.
        try:
            value = float(value)
        except ValueError:
            pass
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(
            f"{key}: expected {expected.__name__}, got {type(value).__name__} {value!r}"
        )
    if expected is float and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(CHOICES[key])}")
    if key in POSITIVE and value <= 0:
        raise ConfigError(f"{key}: must be > 0, got {value!r}")
    if key in NON_NEGATIVE and value < 0:
        raise ConfigError(f"{key}: must be >= 0, got {value!r}")
    return value


def _build_section(name: str, cls: type, raw: Any) -> Any:
    """Validate the mapping ``raw`` into the dataclass ``cls`` (nested sections too); every
    error names the dotted key, e.g. ``data.mel.n_mels``."""
    if raw is None:
        raw = {}
    if isinstance(raw, cls):  # a section built already (e.g. from another config)
        raw = {f.name: getattr(raw, f.name) for f in dataclasses.fields(cls)}
    if not isinstance(raw, dict):
        raise ConfigError(f"section '{name}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        dotted = f"{name}.{key}"
        if key not in names:
            if dotted in MOVED:
                raise ConfigError(f"{dotted}: moved to {MOVED[dotted]}; write it there")
            raise ConfigError(
                f"unknown key '{dotted}'; valid keys in '{name}': {', '.join(names)}"
            )
        if _is_section(hints[key]):
            values[key] = _build_section(dotted, hints[key], value)
        else:
            values[key] = _coerce(dotted, value, hints[key])
    try:
        return cls(**values)
    except ValueError as err:  # a section's own validation, e.g. MelConfig's
        raise ConfigError(f"{name}: {one_line(str(err))}") from None


def stft_resolutions(text: str, key: str = "train.distill.stft_resolutions"
                     ) -> tuple[tuple[int, int, int], ...]:
    """:func:`~seqflow.metrics.audio.parse_resolutions` of a config value; errors name ``key``.

    >>> stft_resolutions("512,128,512")
    ((512, 128, 512),)
    """
    try:
        return parse_resolutions(text)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None


def _check_distill(cfg: Config) -> None:
    if cfg.train.task != "distill":
        return
    d = cfg.train.distill
    if not d.teacher:
        raise ConfigError("train.distill.teacher: required when train.task is 'distill' (the "
                          "teacher's run directory)")
    if d.kl_weight == 0 and d.stft_weight == 0 and d.power_weight == 0:
        raise ConfigError("train.distill.kl_weight, train.distill.stft_weight and "
                          "train.distill.power_weight are all 0: nothing to distill")
    resolutions = stft_resolutions(d.stft_resolutions)
    longest = max(n_fft for n_fft, _, _ in resolutions)
    if (d.stft_weight > 0 or d.power_weight > 0) and cfg.data.segment_length <= longest // 2:
        raise ConfigError(f"data.segment_length={cfg.data.segment_length} must exceed half the "
                          f"largest STFT size of train.distill.stft_resolutions ({longest})")


def _check_ranges(cfg: Config) -> None:
    for key in ("val_fraction", "test_fraction"):
        value = getattr(cfg.data, key)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"data.{key}: must be in [0, 1), got {value}")
    if cfg.data.val_fraction + cfg.data.test_fraction >= 1.0:
        raise ConfigError(
            "data.val_fraction + data.test_fraction must be < 1, got "
            f"{cfg.data.val_fraction} + {cfg.data.test_fraction}"
        )
    anneal_start = cfg.train.variational.anneal_start
    if not 0.0 < anneal_start <= 1.0:
        raise ConfigError(f"train.variational.anneal_start: must be in (0, 1], got "
                          f"{anneal_start}")
    if not 0.0 <= cfg.train.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay: must be in [0, 1), got {cfg.train.ema_decay}")
    if cfg.model.log_scale_floor > 0:
        raise ConfigError(f"model.log_scale_floor: must be < 0 (a floor) or 0 (none), got "
                          f"{cfg.model.log_scale_floor}")
    if not 0.0 <= cfg.data.max_bad_fraction <= 1.0:
        raise ConfigError(f"data.max_bad_fraction: must be in [0, 1], got "
                          f"{cfg.data.max_bad_fraction}")
    if cfg.data.source in ("csv", "npy", "audio", "series") and not cfg.data.path:
        raise ConfigError(f"data.path: required when data.source is {cfg.data.source!r}")
    if cfg.data.segment_length % cfg.data.mel.hop_length:
        raise ConfigError(f"data.segment_length={cfg.data.segment_length} must be a multiple "
                          f"of data.mel.hop_length={cfg.data.mel.hop_length}")
    if cfg.data.source == "series" and cfg.data.horizon < 1:
        raise ConfigError("data.horizon: required (> 0) when data.source is 'series' (the "
                          "forecast horizon H)")
    _check_distill(cfg)


def _parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.distill.kl_weight=0.5"`` -> ``(["train", "distill", "kl_weight"], 0.5)`` (the
    value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(
            f"override key {key!r} must be dotted 'section.key'; valid keys: "
            f"{', '.join(valid_keys())}"
        )
    try:
        value = yaml.load(text, Loader=UniqueKeyLoader) if text.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(
            f"override {item!r}: value is not valid YAML ({one_line(str(err))})") from None
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML; keys of nested sections
    have more dots) to a nested dict copy."""
    out = copy.deepcopy(raw)
    for item in overrides:
        parts, value = _parse_override(item)
        node = out
        for depth, name in enumerate(parts[:-1]):
            node = node.setdefault(name, {})
            if node is None:
                node = {}
            if not isinstance(node, dict):
                raise ConfigError(f"section '{'.'.join(parts[:depth + 1])}' must be a mapping")
        node[parts[-1]] = value
    return out


def _check_override_values(overrides: list[str], roots: dict[str, type] | None = None) -> None:
    """Validate each override of a known key on its own, so that its error names it.

    ``roots`` maps a section name to its dataclass (default: the sections of :class:`Config`).
    """
    if roots is None:
        hints = typing.get_type_hints(Config)
        roots = {f.name: hints[f.name] for f in dataclasses.fields(Config)}
    for item in overrides:
        parts, value = _parse_override(item)
        cls = roots.get(parts[0])
        for name in parts[1:-1]:
            hints = typing.get_type_hints(cls) if cls is not None else {}
            cls = hints[name] if name in hints and _is_section(hints[name]) else None
        if cls is None:
            continue  # reported with the list of valid keys when the config is built
        hints = typing.get_type_hints(cls)
        key = parts[-1]
        if key in hints and not _is_section(hints[key]):
            try:
                _coerce(".".join(parts), value, hints[key])
            except ConfigError as err:
                raise ConfigError(f"override {item!r}: {err}") from None


def _derive_from_mel(cfg: Config, raw_model: Any) -> Config:
    """For audio sources, ``model.cond_channels`` and ``model.upsample_factor`` from
    ``data.mel``; a different value given in the config for either is refused, except
    ``model.cond_channels: 0`` (a model that reads no mel)."""
    given = raw_model if isinstance(raw_model, dict) else {}
    if cfg.data.source not in AUDIO_SOURCES or given.get("cond_channels") == 0:
        return cfg  # not audio, or a model that reads no mel (cond_channels: 0) on purpose
    derived = {}
    for dotted, mel_key in DERIVED_FROM_MEL.items():
        key, value = dotted.split(".")[1], getattr(cfg.data.mel, mel_key)
        if key in given and given[key] != value:
            raise ConfigError(f"{dotted}={given[key]!r} contradicts data.mel.{mel_key}="
                              f"{value!r}: for audio data it is derived from data.mel; drop it")
        derived[key] = value
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **derived))


def config_from_dict(raw: dict[str, Any] | None, overrides: list[str] | None = None) -> Config:
    """Validate a nested dict (plus overrides) into a :class:`Config`."""
    _check_override_values(overrides or [])
    raw = apply_overrides(raw or {}, overrides or [])
    hints = typing.get_type_hints(Config)
    sections = [f.name for f in dataclasses.fields(Config)]
    for name in raw:
        if name not in sections:
            raise ConfigError(
                f"unknown section '{name}'; valid sections: {', '.join(sections)}; "
                f"valid keys: {', '.join(valid_keys())}"
            )
    cfg = Config(**{name: _build_section(name, hints[name], raw.get(name)) for name in sections})
    cfg = _derive_from_mel(cfg, raw.get("model"))
    _check_ranges(cfg)
    return cfg


def load_sections(source: str | Path | dict[str, Any], overrides: list[str] | None,
                  sections: dict[str, type]) -> tuple[Config, dict[str, Any]]:
    """A recipe's config: the engine's ``model``/``data``/``train`` sections and one dataclass
    per recipe section, read from one YAML file (or mapping) with one override syntax.

    ``sections`` maps a recipe section name (e.g. ``"windows"``) to its dataclass; each is
    validated like the engine's sections (types, unknown keys, the dotted key in every error)
    and overrides ``windows.loss_on=horizon`` reach it as ``--set`` overrides reach the engine.
    Returns ``(Config, {name: section object})``.
    """
    raw = dict(read_config_file(source)) if not isinstance(source, dict) else dict(source)
    where = f"{source}: " if not isinstance(source, dict) else ""
    overrides = list(overrides or [])
    ours = [item for item in overrides if item.split("=", 1)[0].split(".")[0] in sections]
    engine = [item for item in overrides if item not in ours]
    try:
        _check_override_values(ours, sections)
        raw = apply_overrides(raw, ours)
        extra = {name: _build_section(name, cls, raw.pop(name, None))
                 for name, cls in sections.items()}
        return config_from_dict(raw, engine), extra
    except ConfigError as err:
        raise ConfigError(f"{where}{err}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping of sections in the YAML file ``path``, unvalidated; one-line
    ``file:line:column`` errors for a missing file, bad UTF-8, bad YAML or a repeated key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = read_yaml(path)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a config must be a YAML mapping of sections, got {type(raw).__name__}"
        )
    return raw or {}


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML file and validate it (plus ``overrides``) into a :class:`Config`."""
    return load_sections(path, overrides, {})[0]


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (through a temporary file, so never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)


def flat_config(cfg: Config) -> dict[str, Any]:
    """``{"train.lr": 0.001, ...}``, e.g. for tracker hyper-parameters."""
    return _leaves(config_to_dict(cfg))


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}`` (empty mappings have no leaves)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _same_value(a: Any, b: Any) -> bool:
    """Equal values of the same kind; ``5`` and ``5.0`` are the same number, ``True`` is not 1."""
    def is_number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if is_number(a) and is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def diff_configs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Sorted dotted keys (``"train.lr"``) whose value differs, or that only one side has.

    ``old`` and ``new`` are nested dicts such as :func:`config_to_dict` returns.
    """
    before, after = _leaves(old), _leaves(new)
    return sorted(key for key in before.keys() | after.keys()
                  if key not in before or key not in after
                  or not _same_value(before[key], after[key]))


def record_config_change(run_dir: str | Path, old: dict[str, Any], new: dict[str, Any],
                         step: int) -> list[str]:
    """Record the hyper-parameters changed when resuming ``run_dir`` at optimizer step ``step``.

    Appends one JSON line ``{"step", "time", "changed": {key: {"old", "new"}},
    "previous_config"}`` to ``run_dir/config_changes.jsonl`` and keeps ``old`` as
    ``run_dir/config.step_<step>.yaml`` (the first one written for that step is kept: it is the
    config that trained up to ``step``). Nothing is written when nothing changed. Returns the
    changed keys (see :func:`diff_configs`). Deciding which changes to refuse is the caller's.
    """
    changed = diff_configs(old, new)
    if not changed:
        return []
    run_dir = Path(run_dir)
    kept = run_dir / f"config.step_{step}.yaml"
    if not kept.exists():
        tmp = kept.with_name(f".{kept.name}.tmp")
        tmp.write_text(yaml.safe_dump(old, sort_keys=False))
        os.replace(tmp, kept)
    before, after = _leaves(old), _leaves(new)
    entry = {
        "step": step,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "changed": {key: {**({"old": before[key]} if key in before else {}),
                          **({"new": after[key]} if key in after else {})}
                    for key in changed},
        "previous_config": kept.name,
    }
    with (run_dir / "config_changes.jsonl").open("a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return changed
