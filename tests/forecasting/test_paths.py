"""Forecasting with a sequence MAF: primed streaming, backtests without look-ahead, and the
CRPS of a trained forecaster on an AR(1) process against its true predictive distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from seqflow.data.timeseries import TrainingWindows, series_from_array
from seqflow.distributions import Flow, StandardNormal
from seqflow.forecasting.paths import (
    WindowBatches,
    backtest_forecasts,
    origin_generator,
    sample_continuations,
    stream_continuations,
)
from seqflow.metrics.forecast import mean_crps
from seqflow.train import config_from_dict, train
from seqflow.train.batches import collate
from seqflow.train.models import build_flow
from seqflow.train.objectives import elementwise_log_prob
from seqflow.train.run_dir import load_weights
from seqflow.transforms import SequenceMAF, SequenceStack
from tests.sequence_helpers import perturb, single_thread  # noqa: F401


def stack_flow(conditioner: str, channels: int, cond: int, steps: int = 2) -> Flow:
    sizes = (dict(residual_channels=8, skip_channels=8, blocks=3) if conditioner == "wavenet"
             else dict(hidden_features=8, head_features=8))
    layers = [SequenceMAF(channels, conditioner=conditioner, cond_channels=cond, **sizes)
              for _ in range(steps)]
    return perturb(Flow(SequenceStack(layers, cond_channels=cond), StandardNormal(channels)),
                   scale=0.3)


def ar1(T: int, phi: float, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(T)
    x[0] = rng.normal() * sigma / math.sqrt(1 - phi**2)
    for t in range(1, T):
        x[t] = phi * x[t - 1] + sigma * rng.normal()
    return x


@pytest.mark.parametrize("conditioner", ["wavenet", "lstm"])
def test_primed_streaming_continues_the_one_pass_density_of_the_whole_window(conditioner):
    torch.manual_seed(0)
    flow = stack_flow(conditioner, channels=2, cond=3).double()
    B, C, H = 3, 9, 6
    history = torch.randn(B, 2, C, dtype=torch.float64)
    context = torch.randn(B, 3, C + H, dtype=torch.float64)
    noise = torch.randn(B, 2, H, dtype=torch.float64)
    future = stream_continuations(flow, history, context, noise)
    window = torch.cat([history, future], dim=-1)
    z, _ = flow.transform(window, context)  # one pass over history + forecast
    torch.testing.assert_close(z[..., C:], noise, rtol=0, atol=1e-9)
    # log p(future | history) from the stream equals the one-pass density's horizon terms
    _, logdet = flow.transform.sequential(noise, context, history=history)
    streamed = StandardNormal(2).double().log_prob(noise) - logdet
    one_pass = elementwise_log_prob(flow, window, context)[..., C:].sum((1, 2))
    torch.testing.assert_close(streamed, one_pass, rtol=0, atol=1e-9)
    # and the history changes the continuation (the priming is not ignored)
    other = stream_continuations(flow, history + 1.0, context, noise)
    assert (other - future).abs().max() > 1e-3


def test_sample_continuations_repeats_each_history_in_one_batch():
    flow = stack_flow("wavenet", channels=1, cond=1)
    history = torch.randn(2, 1, 7)
    context = torch.randn(2, 1, 11)
    a = sample_continuations(flow, history, context, 4, 5, torch.Generator().manual_seed(3))
    noise = torch.randn(10, 1, 4, generator=torch.Generator().manual_seed(3))
    b = stream_continuations(flow, history.repeat_interleave(5, 0),
                             context.repeat_interleave(5, 0), noise)
    assert a.shape == (2, 5, 1, 4)
    torch.testing.assert_close(a.reshape(10, 1, 4), b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="C \\+ H"):
        sample_continuations(flow, history, context[..., :10], 4, 5)


def windows_of(values: np.ndarray, split: str, **kw) -> TrainingWindows:
    series = series_from_array(values, "2000-01-01", "D")
    return TrainingWindows(series, 12, 4, origins=3, split=split, val_origins=1, **kw)


def test_window_batches_keep_the_mask_and_score_the_horizon_on_request():
    values = np.sin(np.arange(80.0))[:, None] + 2.0
    values[70, 0] = np.nan
    windows = windows_of(values, "test")
    batch = collate(WindowBatches(windows).__getitems__([0, 1, 2]))  # what the engine does
    assert batch["x"].shape == (3, 1, 16) and batch["mask"].shape == (3, 1, 16)
    assert batch["scale"].shape == (3, 1) and batch["loc"].shape == (3, 1)
    start = int(batch["start"][1])
    assert not batch["mask"][1, 0, 70 - start] and batch["mask"][1].sum() == 15
    horizon = WindowBatches(windows, loss_on="horizon")[2]["mask"]
    assert not horizon[:, :12].any() and horizon[:, 12:].all()
    with pytest.raises(ValueError, match="loss_on"):
        WindowBatches(windows, loss_on="context")


def test_identity_flow_forecasts_are_the_noise_in_the_series_units():
    """A fresh MAF is the identity, so its paths are N(0, 1) noise mapped by the scaling."""
    values = 50.0 + 10.0 * np.sin(np.arange(90.0) / 3.0)
    windows = windows_of(values, "test", scaling="standard")
    flow = Flow(SequenceMAF(1, residual_channels=4, skip_channels=4, blocks=2,
                            cond_channels=len(windows.feature_names)), StandardNormal(1))
    paths = backtest_forecasts(flow, windows, num_samples=6, seed=5)
    train_part = values[: int(windows.test_origins[0])]
    for k in range(3):
        noise = torch.randn(6, 1, 4, generator=origin_generator(5, k)).numpy()
        expected = noise.transpose(0, 2, 1) * train_part.std() + train_part.mean()
        np.testing.assert_allclose(paths[k], expected, rtol=1e-5)


@pytest.mark.parametrize("scaling", ["mean", "standard"])
def test_a_spike_at_an_origin_changes_no_forecast_made_from_it(scaling):
    rng = np.random.default_rng(0)
    values = (5.0 + rng.normal(size=(90, 2))).astype(np.float32)
    clean = windows_of(values, "test", scaling=scaling)
    flow = stack_flow("wavenet", channels=2, cond=len(clean.feature_names))
    first = int(clean.test_origins[0])
    spiked = values.copy()
    spiked[first:first + 4] = 1e3  # origin 0's whole horizon, inside origin 1's context
    before = backtest_forecasts(flow, clean, 8, seed=1)
    after = backtest_forecasts(flow, windows_of(spiked, "test", scaling=scaling), 8, seed=1)
    np.testing.assert_array_equal(before[0], after[0])
    assert np.abs(before[1] - after[1]).max() > 1e-3  # the next origin does see it


@pytest.mark.slow
def test_trained_forecaster_crps_approaches_the_true_predictive_crps(tmp_path):
    """AR(1) ``x_t = 0.9 x_{t-1} + e_t``: the predictive at step h after x_o is Gaussian with
    mean 0.9^h x_o and variance (1 - 0.81^h) / 0.19; its CRPS has a closed form."""
    torch.set_num_threads(1)
    phi, sigma, C, H, K = 0.9, 1.0, 16, 4, 50
    x = ar1(2000, phi, sigma, seed=0)
    series = series_from_array(x, "2000-01-01", "D")
    kw = dict(origins=K, val_origins=2, scaling="standard")
    split = {name: TrainingWindows(series, C, H, split=name,
                                   num_windows=2048 if name == "train" else None, **kw)
             for name in ("train", "val", "test")}
    cfg = config_from_dict({
        "model": {"kind": "sequence_maf", "channels": 1, "steps": 1, "blocks": 2,
                  "residual_channels": 8, "skip_channels": 8,
                  "cond_channels": len(split["test"].feature_names)},
        "train": {"task": "masked_likelihood", "max_steps": 150, "batch_size": 32, "lr": 5e-3,
                  "eval_every": 150, "checkpoint_every": 1000, "log_with": "none",
                  "progress": False, "cpu_threads": 1},
    })
    train(cfg, tmp_path / "run", splits={"train": WindowBatches(split["train"]),
                                         "val": WindowBatches(split["val"], "horizon")})
    flow = build_flow(cfg.model)
    load_weights(tmp_path / "run", flow)
    samples = backtest_forecasts(flow, split["test"], num_samples=400, seed=0)

    origins = split["test"].test_origins
    target = np.stack([x[o:o + H] for o in origins])  # (K, H)
    h = np.arange(1, H + 1)

    def gaussian_crps(mean, sd):
        u = (target - mean) / sd
        return float((sd * (u * (2 * norm.cdf(u) - 1) + 2 * norm.pdf(u) - 1 / np.sqrt(np.pi)))
                     .mean())

    last = x[origins - 1][:, None]
    true = gaussian_crps(phi**h * last, sigma * np.sqrt((1 - phi ** (2 * h)) / (1 - phi**2)))
    unconditional = gaussian_crps(0.0, sigma / np.sqrt(1 - phi**2))
    model = mean_crps(samples, target[..., None])
    assert unconditional > 1.3 * true  # the history matters: ignoring it is far worse
    print(f"CRPS: model {model:.4f}, true predictive {true:.4f}, unconditional {unconditional:.4f}")
    assert model < 1.06 * true, (model, true, unconditional)
