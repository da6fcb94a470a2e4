"""Variational fitting of a flow to an unnormalized target ``p(z) = exp(-U(z)) / Z``.

Minimizing the reverse KL needs only samples of the flow ``q`` and the energy ``U``:

``KL(q || p) = E_q[log q(z) + U(z)] + log Z = F(q) + log Z``,

where ``F(q)`` is the variational free energy (Rezende & Mohamed 2015, section 6.1), estimated
with reparameterized draws (``Flow.sample_and_log_prob``). ``log Z`` does not depend on ``q``, so
training minimizes ``F``; to *report* the KL, :func:`log_normalizer_on_grid` computes ``log Z``
of a 2-D target by quadrature. Annealing multiplies the energy by ``beta`` rising from
``anneal_start`` to 1 (the paper uses ``beta_t = min(1, 0.01 + t / 10000)``), which lets ``q``
spread over the target before its modes sharpen.

The engine draws no data here: :class:`SampleSlots` is a dataset of empty items, and a batch of
``n`` of them asks the task for ``n`` samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from seqflow.train.objectives.anneal import annealed_beta
from seqflow.train.objectives.base import Task, TaskOutput

Energy = Callable[[Tensor], Tensor]  # U: (batch, D) -> (batch,)


class SampleSlots(Dataset):
    """``num_samples`` items ``{"x": (0,) tensor, "context": None, "index": i}``: batch sizes
    only (the task draws one sample per item).

    >>> from seqflow.train.batches import collate
    >>> collate(SampleSlots(10).__getitems__([3, 4]))["x"].shape
    torch.Size([2, 0])
    """

    def __init__(self, num_samples: int):
        if num_samples < 1:
            raise ValueError(f"SampleSlots: num_samples must be >= 1, got {num_samples}")
        self.num_samples = num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.zeros(0), "context": None, "index": int(i)}

    def __getitems__(self, indices: Sequence[int]) -> dict:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"x": torch.zeros(len(index), 0), "context": None, "index": index}


class ReverseKLTask(Task):
    """Minimize ``E_q[log q(z) + beta U(z)]`` over the flow ``q`` (``beta`` annealed to 1).

    Args:
        flow: a distribution with reparameterized ``sample_and_log_prob(n)``.
        energy: ``U`` ``(n, D) -> (n,)``.
        anneal_steps, anneal_start: ``beta`` rises linearly from ``anneal_start`` to 1 over
            ``anneal_steps`` optimizer steps (0: ``beta = 1``).
        log_normalizer: ``log Z`` when known; then the reported units include ``kl``.

    ``evaluate`` returns ``log q(z) + U(z)`` of fresh draws (mean: the free energy ``F``, in
    nats); the engine keeps the weights with the lowest ``F``, i.e. the lowest KL.
    """

    score_name = "free_energy"

    def __init__(self, flow: nn.Module, energy: Energy, anneal_steps: int = 0,
                 anneal_start: float = 0.01, log_normalizer: float | None = None):
        super().__init__()
        if not callable(getattr(flow, "sample_and_log_prob", None)):
            raise ValueError(f"ReverseKLTask: the flow must have sample_and_log_prob(n), got "
                             f"{type(flow).__name__}")
        if not 0.0 < anneal_start <= 1.0:
            raise ValueError(f"ReverseKLTask: anneal_start must be in (0, 1], got "
                             f"{anneal_start}")
        self.model = flow
        self.energy = energy
        self.anneal_steps = anneal_steps
        self.anneal_start = anneal_start
        self.log_normalizer = log_normalizer

    def beta(self) -> float:
        return annealed_beta(self.step, self.anneal_steps, self.anneal_start)

    def _draw(self, n: int) -> tuple[Tensor, Tensor]:
        z, log_q = self.model.sample_and_log_prob(n)
        energy = self.energy(z)
        if energy.shape != log_q.shape:
            raise ValueError(f"ReverseKLTask: the energy maps samples {tuple(z.shape)} to shape "
                             f"{tuple(energy.shape)}; expected {tuple(log_q.shape)}")
        return log_q, energy

    def forward(self, batch: dict) -> TaskOutput:
        log_q, energy = self._draw(len(batch["x"]))
        beta = self.beta()
        free_energy = (log_q + energy).mean().detach()
        metrics = {"free_energy": free_energy, "beta": torch.tensor(beta)}
        if self.log_normalizer is not None:
            metrics["kl"] = free_energy + self.log_normalizer
        return TaskOutput(loss=(log_q + beta * energy).mean(), metrics=metrics)

    def evaluate(self, batch: dict) -> Tensor:
        log_q, energy = self._draw(len(batch["x"]))
        return log_q + energy

    def units(self, mean_score: float, batch: dict) -> dict[str, float]:
        out = {self.score_name: mean_score}
        if self.log_normalizer is not None:
            out["kl"] = mean_score + self.log_normalizer
        return out


def grid_2d(low: float, high: float, resolution: int,
            dtype: torch.dtype = torch.float64) -> tuple[Tensor, float]:
    """Cell midpoints ``(resolution^2, 2)`` of the square ``[low, high]^2`` and the cell area."""
    if resolution < 1 or not high > low:
        raise ValueError(f"grid_2d: need resolution >= 1 and high > low, got resolution="
                         f"{resolution}, low={low}, high={high}")
    step = (high - low) / resolution
    axis = low + step * (torch.arange(resolution, dtype=dtype) + 0.5)
    return torch.cartesian_prod(axis, axis), step * step


@torch.no_grad()
def log_normalizer_on_grid(energy: Energy, low: float = -6.0, high: float = 6.0,
                           resolution: int = 1200, chunk: int = 1 << 16) -> float:
    """``log Z = log int exp(-U(z)) dz`` over ``[low, high]^2`` by the midpoint rule (float64).

    The box must hold essentially all of the target's mass; the midpoint rule's error is
    ``O(step^2)`` for a smooth ``U``.
    """
    points, area = grid_2d(low, high, resolution)
    values = torch.cat([-energy(part) for part in points.split(chunk)])
    if not torch.isfinite(values).any():
        raise ValueError("log_normalizer_on_grid: the energy is not finite anywhere on the grid")
    return float(torch.logsumexp(values, dim=0)) + math.log(area)


@torch.no_grad()
def reverse_kl(flow: nn.Module, energy: Energy, log_normalizer: float,
               num_samples: int = 100_000, chunk: int = 1 << 14) -> tuple[float, float]:
    """Monte Carlo ``KL(q || p) = E_q[log q + U] + log Z`` over ``num_samples`` draws and its
    standard error, in nats.

    The flow's own draws carry their exact log-density, so the only approximation besides the
    Monte Carlo error is ``log Z``.
    """
    values = []
    for start in range(0, num_samples, chunk):
        z, log_q = flow.sample_and_log_prob(min(chunk, num_samples - start))
        values.append((log_q + energy(z)).double())
    v = torch.cat(values)
    return float(v.mean()) + log_normalizer, float(v.std()) / math.sqrt(len(v))
