"""Planar and radial flows (Rezende & Mohamed 2015) on vectors ``(batch, features)``.

Both are defined in the paper in the *generative* direction, ``x = g(z)``, which is closed
form here (``inverse``). The normalizing direction (``forward``) is solved exactly:

* planar: a monotone scalar equation along ``w``, solved by safeguarded Newton iterations
  inside a bracket (a fixed iteration count, so no data-dependent Python control flow);
* radial: the radius equation is a quadratic with one non-negative root, solved in closed form
  with the cancellation-free formula.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.checks import check_input
from seqflow.transforms.base import Transform


class Planar(Transform):
    """``x = z + u_hat * tanh(w.z + b)`` (generative direction).

    ``u_hat = u + (m(w.u) - w.u) w / |w|^2`` with ``m(a) = -1 + softplus(a)`` guarantees
    ``w.u_hat > -1`` and hence invertibility.
    ``log|det dx/dz| = log(1 + w.u_hat * tanh'(w.z + b))``.

    Args:
        features: dimension D.
        newton_steps: iterations of the safeguarded Newton solve in ``forward``; 60 reaches
            machine precision in float32 and float64.
    """

    def __init__(self, features: int, newton_steps: int = 60):
        super().__init__()
        self.features = features
        self.newton_steps = newton_steps
        self.w = nn.Parameter(torch.randn(features) * 0.1)
        self.u = nn.Parameter(torch.randn(features) * 0.1)
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> Tensor:
        """The constrained ``(features,)`` vector ``u_hat``."""
        wu = self.w @ self.u
        return self.u + (F.softplus(wu) - 1 - wu) * self.w / (self.w @ self.w + 1e-12)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Closed form ``z -> x``; returns ``log|det dx/dz|`` of shape ``(batch,)``."""
        check_input(z, self.features, "Planar.inverse")
        u_hat = self.u_hat()
        activation = torch.tanh(z @ self.w + self.b)
        x = z + activation[:, None] * u_hat
        logabsdet = torch.log1p((self.w @ u_hat) * (1 - activation.square()))
        return x, logabsdet

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Solve ``x -> z``: with ``a = w.z``, ``w.x = a + c tanh(a + b)``, ``c = w.u_hat``."""
        check_input(x, self.features, "Planar.forward")
        u_hat = self.u_hat()
        c = self.w @ u_hat
        target = x @ self.w
        a = self._solve(target, c)
        activation = torch.tanh(a + self.b)
        z = x - activation[:, None] * u_hat
        logabsdet = -torch.log1p(c * (1 - activation.square()))
        return z, logabsdet

    def _solve(self, target: Tensor, c: Tensor) -> Tensor:
        """Root of the increasing ``g(a) = a + c tanh(a + b) - target``, bracketed by ``±|c|``."""
        lo = target - c.abs()
        hi = target + c.abs()
        a = target
        for _ in range(self.newton_steps):
            t = torch.tanh(a + self.b)
            g = a + c * t - target
            lo = torch.where(g < 0, a, lo)
            hi = torch.where(g > 0, a, hi)
            newton = a - g / (1 + c * (1 - t.square()))
            outside = (newton <= lo) | (newton >= hi)
            a = torch.where(outside, 0.5 * (lo + hi), newton)
        # One last Newton step outside the loop carries the gradient w.r.t. parameters
        # through the implicit function (the loop's iterates are exact up to rounding).
        t = torch.tanh(a.detach() + self.b)
        g = a.detach() + c * t - target
        return a.detach() - g / (1 + c * (1 - t.square()))


class Radial(Transform):
    """``x = z + beta * (z - z0) / (alpha + r)``, ``r = |z - z0|`` (generative direction).

    ``alpha = softplus(alpha_raw) > 0`` and ``beta = -alpha + softplus(beta_raw) > -alpha``
    guarantee invertibility. With ``h = 1 / (alpha + r)``:
    ``log|det dx/dz| = (D - 1) log(1 + beta h) + log(1 + beta h - beta h^2 r)``.
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = features
        self.z0 = nn.Parameter(torch.randn(features) * 0.1)
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def _alpha_beta(self) -> tuple[Tensor, Tensor]:
        alpha = F.softplus(self.alpha_raw)
        return alpha, F.softplus(self.beta_raw) - alpha

    def _logabsdet(self, r: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        h = 1 / (alpha + r)
        radial = torch.log1p(beta * h - beta * h * h * r)
        return (self.features - 1) * torch.log1p(beta * h) + radial

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Closed form ``z -> x``; returns ``log|det dx/dz|`` of shape ``(batch,)``."""
        check_input(z, self.features, "Radial.inverse")
        alpha, beta = self._alpha_beta()
        diff = z - self.z0
        r = diff.norm(dim=1)
        x = z + (beta / (alpha + r))[:, None] * diff
        return x, self._logabsdet(r, alpha, beta)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Solve ``x -> z``: ``r`` is the non-negative root of
        ``r^2 + (alpha + beta - |x - z0|) r - alpha |x - z0| = 0``."""
        check_input(x, self.features, "Radial.forward")
        alpha, beta = self._alpha_beta()
        diff = x - self.z0
        r_x = diff.norm(dim=1)
        b = alpha + beta - r_x
        root = torch.sqrt(b.square() + 4 * alpha * r_x)
        denominator = b.abs() + root
        r = torch.where(b >= 0, 2 * alpha * r_x / denominator, 0.5 * denominator)
        z = self.z0 + diff / (1 + beta / (alpha + r))[:, None]
        return z, -self._logabsdet(r, alpha, beta)
