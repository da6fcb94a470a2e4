"""Normalization flows: Glow's ActNorm and the MAF paper's batch-norm flow.

Both act per feature on ``(batch, features)`` or per channel on ``(batch, channels, time)``
(statistics over batch and time; log-det summed over time).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqflow.checks import check_input
from seqflow.transforms.base import Transform


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """Broadcast a ``(channels,)`` vector against ``x`` of rank 2 or 3."""
    return v.unsqueeze(-1) if x.dim() == 3 else v


def _reduce_dims(x: Tensor) -> tuple[int, ...]:
    return (0, 2) if x.dim() == 3 else (0,)


def _steps(x: Tensor) -> int:
    return x.shape[2] if x.dim() == 3 else 1


class ActNorm(Transform):
    """Per-channel affine normalization with data-dependent initialization (Glow).

    ``z = (x - loc) * exp(-log_scale)``; ``log|det| = -time * sum(log_scale)``.

    On the first ``forward`` in training mode, ``loc`` and ``log_scale`` are set from that
    batch so that ``z`` has zero mean and unit variance per channel. The ``initialized`` flag is
    a buffer, so a loaded state dict never triggers a second initialization. A Python mirror of
    the flag keeps ``forward`` free of tensor-valued branches (``torch.compile`` friendly).
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = features
        self.loc = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))
        self._initialized = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._initialized = bool(self.initialized)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``loc``/``log_scale`` from a batch ``x`` and mark the layer initialized."""
        dims = _reduce_dims(x)
        self.loc.copy_(x.mean(dim=dims))
        std = x.std(dim=dims, unbiased=False) if x.numel() > self.features else torch.ones_like(
            self.log_scale)
        self.log_scale.copy_(torch.log(std + 1e-6))
        self.initialized.fill_(True)
        self._initialized = True

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(x, self.features, "ActNorm.forward", allow_sequence=True)
        if self.training and not self._initialized:
            self.initialize(x)
        z = (x - _per_channel(self.loc, x)) * torch.exp(-_per_channel(self.log_scale, x))
        logabsdet = (-self.log_scale.sum() * _steps(x)).expand(x.shape[0])
        return z, logabsdet

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(z, self.features, "ActNorm.inverse", allow_sequence=True)
        x = z * torch.exp(_per_channel(self.log_scale, z)) + _per_channel(self.loc, z)
        logabsdet = (self.log_scale.sum() * _steps(z)).expand(z.shape[0])
        return x, logabsdet

    def check_step_affine(self, inverse: bool) -> None:
        if not self._initialized:
            raise ValueError("ActNorm: not initialized; its per-step Gaussian is undefined")

    def step_affine(self, u: Tensor, context: Tensor | None = None, inverse: bool = False
                    ) -> tuple[Tensor, Tensor, Tensor]:
        self.check_step_affine(inverse)
        check_input(u, self.features, "ActNorm.step_affine", allow_sequence=True)
        s = _per_channel(self.log_scale, u).expand_as(u)
        loc = _per_channel(self.loc, u).expand_as(u)
        if inverse:  # x = z exp(s) + loc
            shift, log_scale = loc, s
        else:  # z = (x - loc) exp(-s)
            shift, log_scale = -loc * torch.exp(-s), -s
        return torch.addcmul(shift, u, torch.exp(log_scale)), shift, log_scale


class BatchNormFlow(Transform):
    """Batch normalization as a flow (Papamakarios et al. 2017, MAF paper, section 3.4).

    ``z = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta`` with
    ``log|det| = time * sum(log_gamma - 0.5 * log(v + eps))``.

    In training mode ``(m, v)`` are the batch mean and (biased) variance, treated as constants
    in the log-det as in the paper, and running averages are updated with ``momentum``. In eval
    mode, and in ``inverse`` always, the running averages are used, so eval-mode ``forward`` and
    ``inverse`` are exact inverses of each other.
    """

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.features = features
        self.momentum = momentum
        self.eps = eps
        self.log_gamma = nn.Parameter(torch.zeros(features))
        self.beta = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return self.running_mean, self.running_var
        dims = _reduce_dims(x)
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach(), self.momentum)
        return mean, var

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(x, self.features, "BatchNormFlow.forward", allow_sequence=True)
        mean, var = self._stats(x)
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        z = (x - _per_channel(mean, x)) * torch.exp(_per_channel(log_scale, x))
        z = z + _per_channel(self.beta, x)
        return z, (log_scale.sum() * _steps(x)).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_input(z, self.features, "BatchNormFlow.inverse", allow_sequence=True)
        log_scale = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        x = (z - _per_channel(self.beta, z)) * torch.exp(-_per_channel(log_scale, z))
        x = x + _per_channel(self.running_mean, z)
        return x, (-log_scale.sum() * _steps(z)).expand(z.shape[0])
