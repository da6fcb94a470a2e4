"""Probabilistic forecasting with a sequence MAF: training batches that keep the mask, and
sample paths streamed after a primed history.

The forecaster is a :class:`~seqflow.distributions.Flow` over a
:class:`~seqflow.transforms.SequenceStack` of :class:`~seqflow.transforms.SequenceMAF` layers
(or one layer) that reads the covariates of
:class:`~seqflow.data.timeseries.TrainingWindows` as local context at the sample rate. It is
trained by the engine with the ``masked_likelihood`` task on :class:`WindowBatches`. At a
forecast origin the stack's streaming state is primed with the ``C`` scaled values before the
origin (the MAF's data side) and ``N`` paths of ``H`` steps are drawn in one batch, O(1)
conditioner work per step (:func:`sample_continuations`); :func:`backtest_forecasts` does this
at every origin of a test split and returns the paths in the series' units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from seqflow.data.timeseries import TrainingWindows
from seqflow.distributions import Flow
from seqflow.nn.context import SequenceContext

LOSS_ON = ("window", "horizon")


class WindowBatches(Dataset):
    """Items of :class:`TrainingWindows` as engine batches that keep ``mask``, ``scale`` and
    ``loc`` (the engine's item collation keeps only ``x``, ``context`` and ``index``).

    ``loss_on="horizon"`` clears the mask on the context part (the first ``C`` steps), so a
    task scores the forecast horizon only; ``"window"`` counts every observed step.
    ``__getitems__`` returns one collated batch: ``x`` ``(batch, D, C + H)``, ``context``
    ``(batch, F, C + H)``, ``mask`` ``(batch, D, C + H)`` bool, ``scale``/``loc``
    ``(batch, D)``, ``index`` and ``start`` ``(batch,)``.
    """

    def __init__(self, windows: TrainingWindows, loss_on: str = "window"):
        if loss_on not in LOSS_ON:
            raise ValueError(f"loss_on={loss_on!r} is not one of {', '.join(LOSS_ON)}")
        self.windows, self.loss_on = windows, loss_on

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        item = self.windows[index]
        if self.loss_on == "horizon":
            mask = item["mask"].clone()
            mask[:, : self.windows.context] = False
            item = {**item, "mask": mask}
        return item

    def __getitems__(self, indices: Sequence[int]) -> dict:
        items = [self[int(i)] for i in indices]
        batch = {key: torch.stack([item[key] for item in items])
                 for key in ("x", "context", "mask", "scale", "loc")}
        for key in ("index", "start"):
            batch[key] = torch.as_tensor([int(item[key]) for item in items], dtype=torch.long)
        return batch


@torch.no_grad()
def stream_continuations(
    flow: Flow, history: Tensor, context: Tensor | SequenceContext | None, noise: Tensor
) -> Tensor:
    """Map ``noise`` ``(batch, D, H)`` to data continuing each ``history`` ``(batch, D, C)``.

    The streaming state of every MAF layer is primed with the history (the data side), then
    the ``H`` steps are generated one at a time
    (:meth:`~seqflow.transforms.Transform.inverse_after`); ``context`` ``(batch, F, C + H)``
    holds the local features of history and horizon (None for an unconditional flow; a
    :class:`~seqflow.nn.SequenceContext` adds global ids ``(batch,)``). Returns
    ``(batch, D, H)``. :func:`sample_continuations` draws the noise itself.
    """
    if history.dim() != 3 or noise.dim() != 3 or noise.shape[:2] != history.shape[:2]:
        raise ValueError(f"history (batch, D, C) and noise (batch, D, H) must agree on batch "
                         f"and D, got {tuple(history.shape)} and {tuple(noise.shape)}")
    batch, _, C = history.shape
    length = C + noise.shape[-1]
    features = context.local if isinstance(context, SequenceContext) else context
    if context is not None and (context.shape[0] != batch or features is not None and (
            features.dim() != 3 or features.shape[-1] != length)):
        raise ValueError(f"context must be (batch={batch}, F, C + H = {length}), got "
                         f"{tuple(context.shape)}")
    ref = next(flow.parameters())  # the flow's dtype and device
    local = None if context is None else context.to(ref)
    return flow.transform.inverse_after(noise.to(ref), local, history.to(ref))[0]


@torch.no_grad()
def sample_continuations(
    flow: Flow,
    history: Tensor,
    context: Tensor | None,
    horizon: int,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``num_samples`` continuations of each history, drawn in one streamed batch.

    Args:
        flow: a Flow over a :class:`~seqflow.transforms.SequenceMAF` or a MAF
            :class:`~seqflow.transforms.SequenceStack`.
        history: ``(batch, D, C)`` observed (scaled) values before the origin.
        context: local features ``(batch, F, C + horizon)`` covering history and horizon, or
            None for an unconditional flow.
        horizon: ``H`` steps to draw.
        num_samples: ``N`` paths per history.
        generator: a CPU generator for the noise ``(batch * N, D, H)`` (torch's global one if
            None).

    Returns:
        ``(batch, N, D, H)``: the data side of the flow continued after each history (history
        ``b``'s paths are rows ``b * N .. b * N + N - 1`` of the noise).
    """
    for name, value in (("horizon", horizon), ("num_samples", num_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if history.dim() != 3:
        raise ValueError(f"history must be (batch, D, C), got {tuple(history.shape)}")
    batch, channels, C = history.shape
    if context is not None and (context.dim() != 3 or context.shape[0] != batch
                                or context.shape[-1] != C + horizon):
        raise ValueError(f"context must be (batch={batch}, F, C + H = {C + horizon}), got "
                         f"{tuple(context.shape)}")
    ref = next(flow.parameters())
    repeated = history.repeat_interleave(num_samples, dim=0).to(ref)
    local = None if context is None else context.repeat_interleave(num_samples, dim=0).to(ref)
    paths = flow.sample(batch * num_samples, local, length=horizon,
                        generator=generator or torch.default_generator, history=repeated)
    return paths.reshape(batch, num_samples, channels, horizon)


def origin_generator(seed: int, origin: int) -> torch.Generator:
    """A CPU generator that depends only on ``(seed, origin)``: an origin's draws do not
    depend on which other origins share its batch."""
    state = np.random.SeedSequence([int(seed), int(origin)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


@torch.no_grad()
def backtest_forecasts(
    flow: Flow,
    windows: TrainingWindows,
    num_samples: int,
    seed: int = 0,
    max_batch: int = 4096,
) -> np.ndarray:
    """Sample paths at every origin of ``windows`` in the series' units, ``(K, N, H, D)``.

    ``windows`` is a :class:`TrainingWindows` with ``split="test"`` (or ``"val"``); each
    origin's history is the scaled, filled context part of its window (nothing at or after
    the origin), its covariates cover context and horizon, and its paths are mapped back with
    the window's ``scale`` and ``loc``. The noise of origin ``k`` ``(N, D, H)`` comes from
    :func:`origin_generator` ``(seed, k)``; origins are streamed together, up to
    ``max_batch`` paths per batch.
    """
    if windows.split == "train":
        raise ValueError("backtest_forecasts needs the 'test' or 'val' windows, got 'train'")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    C, H, D = windows.context, windows.horizon, windows.series.num_variables
    per_batch = max(1, max_batch // num_samples)
    was_training = flow.training
    flow.eval()
    out = []
    try:
        for first in range(0, len(windows), per_batch):
            ks = range(first, min(len(windows), first + per_batch))
            items = WindowBatches(windows).__getitems__(list(ks))
            noise = torch.cat([torch.randn(num_samples, D, H, generator=origin_generator(seed, k))
                               for k in ks])
            paths = stream_continuations(
                flow, items["x"][..., :C].repeat_interleave(num_samples, dim=0),
                items["context"].repeat_interleave(num_samples, dim=0), noise,
            ).double().cpu().reshape(len(ks), num_samples, D, H)
            scale = items["scale"].double()[:, None, :, None]
            loc = items["loc"].double()[:, None, :, None]
            out.append((paths * scale + loc).permute(0, 1, 3, 2).numpy())
    finally:
        flow.train(was_training)
    samples = np.concatenate(out)
    if not np.isfinite(samples).all():
        raise ValueError(f"{windows.series.source}: the forecaster produced non-finite sample "
                         "paths")
    return samples
