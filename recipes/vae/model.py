"""The recipe's VAE: MLP encoder, Bernoulli MLP decoder, and a choice of flow posterior.

``q(z | x)`` is one :class:`seqflow.Flow` whose base is a
:class:`seqflow.distributions.ConditionalDiagonalNormal` reading the encoder's features
``h = encoder(x)`` ``(batch, hidden_features)``; its layers read the same ``h``:

* ``diag``: no layers (the diagonal-Gaussian VAE of Kingma & Welling 2014);
* ``planar`` / ``radial``: ``steps`` layers whose parameters are amortized from ``h``
  (Rezende & Mohamed 2015);
* ``iaf``: ``steps`` IAF layers whose MADE reads ``h`` as context, the order reversed between
  layers (Kingma et al. 2016).

``p(z) = N(0, I)``; ``p(x | z) = prod_d Bernoulli(x_d; sigmoid(decoder(z)_d))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow import ConditionalDiagonalNormal, Flow, StandardNormal
from seqflow.distributions import LatentVariableModel
from seqflow.transforms import IAF, Compose, Planar, Radial, Reverse, Transform

POSTERIORS = ("diag", "planar", "radial", "iaf")


@dataclass(frozen=True)
class VAEConfig:
    """Sizes shared by every posterior: ``data_features`` pixels, ``latent_features``,
    ``hidden_features`` and ``blocks`` hidden layers of the encoder and the decoder (the
    encoder's last hidden layer is the posterior's context), ``iaf_hidden_features`` (MADE
    width of an IAF layer)."""

    data_features: int
    latent_features: int = 16
    hidden_features: int = 256
    blocks: int = 2
    iaf_hidden_features: int = 128


def mlp(sizes: list[int], final_activation: bool) -> nn.Sequential:
    """Linear layers between ``sizes`` with ReLU between them (and after the last one if
    ``final_activation``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if final_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def posterior_layers(kind: str, steps: int, cfg: VAEConfig) -> list[Transform]:
    """The flow layers of a posterior (``diag``: none)."""
    latent, context = cfg.latent_features, cfg.hidden_features
    if kind not in POSTERIORS:
        raise ValueError(f"posterior kind {kind!r} is not one of {', '.join(POSTERIORS)}")
    if kind != "diag" and steps < 1:
        raise ValueError(f"posterior {kind} needs steps >= 1, got {steps}")
    if kind == "planar":
        return [Planar(latent, context_features=context) for _ in range(steps)]
    if kind == "radial":
        return [Radial(latent, context_features=context) for _ in range(steps)]
    if kind == "iaf":
        layers: list[Transform] = []
        for i in range(steps):
            if i:
                layers.append(Reverse(latent))
            layers.append(IAF(latent, hidden_features=cfg.iaf_hidden_features,
                              context_features=context))
        return layers
    return []


class VAE(LatentVariableModel):
    """A VAE on flattened images ``(batch, data_features)`` with values in ``{0, 1}``.

    >>> vae = VAE(VAEConfig(data_features=6, latent_features=2, hidden_features=8), "planar", 2)
    >>> vae.log_likelihood(torch.ones(3, 6), torch.zeros(3, 2)).shape
    torch.Size([3])
    """

    def __init__(self, cfg: VAEConfig, posterior: str, steps: int = 0):
        super().__init__()
        self.cfg = cfg
        self.kind = posterior
        h, blocks = cfg.hidden_features, max(cfg.blocks, 1)
        self.encoder = mlp([cfg.data_features] + [h] * blocks, final_activation=True)
        self.decoder = mlp([cfg.latent_features] + [h] * blocks + [cfg.data_features],
                           final_activation=False)
        self.prior = StandardNormal(cfg.latent_features)
        self.posterior = Flow(Compose(posterior_layers(posterior, steps, cfg)),
                              ConditionalDiagonalNormal(cfg.latent_features, h))

    def encode(self, x: Tensor) -> Tensor:
        """``(batch, data_features) -> (batch, hidden_features)``."""
        return self.encoder(x)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x | z)`` ``(batch,)``: a sum of Bernoulli log-probabilities."""
        logits = self.decoder(z)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)

    @torch.no_grad()
    def sample_means(self, num_samples: int) -> Tensor:
        """Pixel probabilities ``(num_samples, data_features)`` of ``x ~ p(x | z)``,
        ``z ~ p(z)``."""
        return torch.sigmoid(self.decoder(self.prior.sample(num_samples)))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Pixel probabilities of ``p(x | z)`` for one ``z ~ q(z | x)`` per row."""
        h = self.encode(x)
        return torch.sigmoid(self.decoder(self.posterior.sample(len(x), h)))
