"""MAF and IAF on vectors: an :class:`AutoregressiveAffine` with a MADE conditioner.

Directions (data ``x`` -> noise ``z`` is ``forward``):

* :class:`MAF` (Papamakarios et al. 2017): ``z_i = (x_i - mu_i(x_<i)) exp(-s_i(x_<i))``.
  ``forward`` (density) is one MADE pass; ``inverse`` (sampling) is sequential.
* :class:`IAF` (Kingma et al. 2016): ``x_i = z_i exp(s_i(z_<i)) + mu_i(z_<i)``.
  ``inverse`` (sampling, and the density of its own samples) is one pass; ``forward`` (density
  of arbitrary data) is sequential.

The sequential direction runs MADE's degree-sliced stream: about one masked pass of arithmetic
plus ``D`` small steps; ``layer.naive_sequential`` is the reference path (``D`` full MADE
passes). The log-scale is ``s = soft_clamp(raw, log_scale_bound)``, a smooth bound to
``(-bound, bound)`` (see :func:`~seqflow.transforms.soft_clamp`), never a hard clamp; the
default bound is :data:`~seqflow.transforms.elementwise.LOG_SCALE_BOUND` (6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from seqflow.nn.made import MADE
from seqflow.transforms.autoregressive import AutoregressiveAffine
from seqflow.transforms.elementwise import LOG_SCALE_BOUND


class _MadeAffine(AutoregressiveAffine):
    side: Literal["data", "noise"]

    def __init__(
        self,
        features: int,
        hidden_features: int | None = None,
        blocks: int = 2,
        context_features: int | None = None,
        order: str | Sequence[int] | Tensor = "natural",
        residual: bool = False,
        activation: str = "relu",
        log_scale_bound: float = LOG_SCALE_BOUND,
        seed: int | None = None,
    ):
        made = MADE(
            features,
            hidden_features=hidden_features,
            blocks=blocks,
            context_features=context_features,
            order=order,
            residual=residual,
            params_per_feature=2,
            activation=activation,
            zero_init_output=True,
            seed=seed,
        )
        super().__init__(made, features, self.side, log_scale_bound, context_features)

    @property
    def made(self) -> MADE:
        return self.conditioner


class MAF(_MadeAffine):
    """Masked autoregressive flow layer on ``(batch, features)``; conditioner reads the data.

    Args:
        features: D.
        hidden_features: MADE width (default ``max(64, 2 D)``).
        blocks: MADE hidden layers (or residual blocks).
        context_features: width of an optional context ``(batch, context_features)``.
        order: autoregressive order (see :class:`~seqflow.nn.MADE`).
        residual: residual MADE blocks.
        activation: MADE nonlinearity.
        log_scale_bound: smooth bound of the log-scale, default
            :data:`~seqflow.transforms.elementwise.LOG_SCALE_BOUND` (6).
        seed: seed of a random order.

    Starts as the identity (zero-initialized MADE output).

    >>> import torch
    >>> layer = MAF(4)
    >>> x = torch.randn(3, 4)
    >>> z, logdet = layer(x)            # one pass
    >>> x_back, _ = layer.inverse(z)    # sequential, degree-sliced
    >>> bool(torch.allclose(x, x_back))
    True
    """

    side = "data"


class IAF(_MadeAffine):
    """Inverse autoregressive flow layer on ``(batch, features)``; conditioner reads the noise.

    Same arguments as :class:`MAF`. ``inverse`` (noise -> data) is one pass, so a flow built
    from IAF layers samples and scores its own samples (``Flow.sample_and_log_prob``) in one
    pass; ``forward`` on arbitrary data is sequential.

    >>> import torch
    >>> layer = IAF(4)
    >>> z = torch.randn(3, 4)
    >>> x, logdet = layer.inverse(z)    # one pass
    >>> z_back, _ = layer(x)            # sequential, degree-sliced
    >>> bool(torch.allclose(z, z_back))
    True
    """

    side = "noise"
