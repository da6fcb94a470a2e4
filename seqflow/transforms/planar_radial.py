"""Planar and radial flows (Rezende & Mohamed 2015) on vectors ``(batch, features)``.

Both are defined in the paper in the *generative* direction, ``x = g(z)``, which is closed
form here (``inverse``). The normalizing direction (``forward``) is solved exactly:

* planar: a monotone scalar equation along ``w``, solved by safeguarded Newton iterations
  inside a bracket (a fixed iteration count, so no data-dependent Python control flow);
* radial: the radius equation is a quadratic with one non-negative root, solved in closed form
  with the cancellation-free formula.

Parameters are free (one set for every input) or, with ``context_features``, amortized as in
the paper's variational autoencoders: each input's raw parameters are the free ones plus a
linear function of its context ``(batch, context_features)`` (e.g. an encoder's output). The
invertibility constraints act on the raw parameters of every input, so they hold for any
context. Each layer also bounds its derivative from below by ``min_slope`` (planar: along
``w``; radial: along and across the radius), so no context can make it numerically singular.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqflow.checks import check_context, check_input
from seqflow.transforms.base import Transform

_EPS = 1e-12  # regularizes |w|^2 in the planar u_hat


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Inner product over the last axis with broadcasting: ``(..., D), (..., D) -> (...)``."""
    return (a * b).sum(-1)


class _Amortized(Transform):
    """Free raw parameters plus, with ``context_features``, a linear map of the context.

    ``raw(context)`` returns the free vector ``(P,)`` without a context and ``(batch, P)``
    with one; the hypernetwork starts at zero, so a fresh layer ignores its context.
    """

    def __init__(self, features: int, num_raw: int, context_features: int | None,
                 min_slope: float):
        super().__init__()
        if not 0.0 <= min_slope < 1.0:
            raise ValueError(f"{type(self).__name__}: min_slope must be in [0, 1), got "
                             f"{min_slope}")
        if context_features is not None and context_features < 1:
            raise ValueError(f"{type(self).__name__}: context_features must be >= 1, got "
                             f"{context_features}")
        self.features = features
        self.context_features = context_features
        self.min_slope = min_slope
        self.hyper = None
        if context_features is not None:
            self.hyper = nn.Linear(context_features, num_raw, bias=False)
            nn.init.zeros_(self.hyper.weight)

    def _free(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def raw(self, context: Tensor | None, batch: int, name: str) -> Tensor:
        """Raw parameters: ``(P,)`` free, or ``(batch, P)`` from the context."""
        free = self._free()
        if self.hyper is None:
            return free
        check_context(context, self.context_features, batch, name)
        if context.dim() != 2:
            raise ValueError(f"{name}: expected a context of shape (batch, "
                             f"{self.context_features}), got {tuple(context.shape)}")
        return F.linear(context, self.hyper.weight, free)


class Planar(_Amortized):
    """``x = z + u_hat * tanh(w.z + b)`` (generative direction).

    ``u_hat = u + (m(w.u) - w.u) w / |w|^2`` with ``m(a) = -1 + min_slope + softplus(a)``
    guarantees ``w.u_hat > -1 + min_slope`` and hence invertibility (the paper's ``m`` is
    ``min_slope = 0``). With ``t = tanh(w.z + b)`` and ``s = 1 + w.u_hat``,
    ``log|det dx/dz| = log(1 + w.u_hat (1 - t^2)) = log(t^2 + s (1 - t^2)) >= log(min_slope)``,
    computed in the second form, which has no cancellation when ``w.u_hat`` is near ``-1``.

    Args:
        features: dimension D.
        newton_steps: iterations of the safeguarded Newton solve in ``forward``; 60 reaches
            machine precision in float32 and float64.
        context_features: width of an optional context ``(batch, context_features)`` from which
            ``w``, ``u`` and ``b`` are amortized (added to the free ones).
        min_slope: lower bound of ``1 + w.u_hat``, the derivative along ``w``.

    >>> import torch
    >>> layer = Planar(2, context_features=3)
    >>> x, logdet = layer.inverse(torch.randn(4, 2), torch.randn(4, 3))
    >>> x.shape, logdet.shape
    (torch.Size([4, 2]), torch.Size([4]))
    """

    def __init__(self, features: int, newton_steps: int = 60, context_features: int | None = None,
                 min_slope: float = 1e-3):
        super().__init__(features, 2 * features + 1, context_features, min_slope)
        self.newton_steps = newton_steps
        self.w = nn.Parameter(torch.randn(features) * 0.1)
        self.u = nn.Parameter(torch.randn(features) * 0.1)
        self.b = nn.Parameter(torch.zeros(()))

    def _free(self) -> Tensor:
        return torch.cat([self.w, self.u, self.b.reshape(1)])

    def params(self, context: Tensor | None = None, batch: int = 1,
               name: str = "Planar") -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``w``, ``u_hat`` ``(D,)`` or ``(batch, D)``; ``b``, ``s = 1 + w.u_hat`` ``()`` or
        ``(batch,)``.

        ``u_hat`` divides by ``|w|^2 + 1e-12``; ``s`` is computed for that regularized
        ``u_hat`` (``s = softplus(w.u) + min_slope`` unless ``|w|`` is below about ``1e-5``).
        """
        raw = self.raw(context, batch, name)
        d = self.features
        w, u, b = raw[..., :d], raw[..., d:2 * d], raw[..., 2 * d]
        wu, ww = _dot(w, u), _dot(w, w)
        s = F.softplus(wu) + self.min_slope
        u_hat = u + ((s - 1 - wu) / (ww + _EPS)).unsqueeze(-1) * w
        # 1 + w.u_hat exactly, without cancellation: s where |w|^2 >> _EPS, tending to
        # 1 + w.u (a translation, slope 1) as w -> 0, where the paper's u_hat diverges.
        keep = _EPS / (ww + _EPS)
        return w, u_hat, b, s + keep * (1 + wu - s)

    def u_hat(self, context: Tensor | None = None) -> Tensor:
        """The constrained vector ``u_hat``: ``(features,)``, or ``(batch, features)``."""
        batch = 1 if context is None else context.shape[0]
        return self.params(context, batch)[1]

    @staticmethod
    def _logabsdet(t: Tensor, s: Tensor) -> Tensor:
        return torch.log(t.square() + s * (1 - t.square()))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Closed form ``z -> x``; returns ``log|det dx/dz|`` of shape ``(batch,)``."""
        check_input(z, self.features, "Planar.inverse")
        w, u_hat, b, s = self.params(context, z.shape[0], "Planar.inverse")
        t = torch.tanh(_dot(z, w) + b)
        return z + t.unsqueeze(-1) * u_hat, self._logabsdet(t, s)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Solve ``x -> z``: with ``a = w.z``, ``w.x = a + c tanh(a + b)``, ``c = w.u_hat``."""
        check_input(x, self.features, "Planar.forward")
        w, u_hat, b, s = self.params(context, x.shape[0], "Planar.forward")
        a = self._solve(_dot(x, w), s, b)
        t = torch.tanh(a + b)
        return x - t.unsqueeze(-1) * u_hat, -self._logabsdet(t, s)

    def _solve(self, target: Tensor, s: Tensor, b: Tensor) -> Tensor:
        """Root of the increasing ``g(a) = a + c tanh(a + b) - target`` (``c = s - 1``),
        bracketed by ``target -+ |c|``."""
        c = s - 1
        lo = target - c.abs()
        hi = target + c.abs()
        a = target
        for _ in range(self.newton_steps):
            t = torch.tanh(a + b)
            g = a + c * t - target
            lo = torch.where(g < 0, a, lo)
            hi = torch.where(g > 0, a, hi)
            newton = a - g / (t.square() + s * (1 - t.square()))
            outside = (newton <= lo) | (newton >= hi)
            a = torch.where(outside, 0.5 * (lo + hi), newton)
        # One last Newton step outside the loop carries the gradient w.r.t. parameters
        # through the implicit function (the loop's iterates are exact up to rounding).
        a = a.detach()
        t = torch.tanh(a + b)
        g = a + c * t - target
        return a - g / (t.square() + s * (1 - t.square()))


class Radial(_Amortized):
    """``x = z + beta * (z - z0) / (alpha + r)``, ``r = |z - z0|`` (generative direction).

    ``alpha = softplus(alpha_raw) + 1e-6 > 0`` and
    ``beta = -alpha + min_slope alpha + softplus(beta_raw) > -alpha`` guarantee invertibility
    (the paper's constraint is ``min_slope = 0``). With ``q = alpha + beta > 0``:
    ``log|det dx/dz| = (D - 1) log((r + q) / (alpha + r))
    + log((r^2 + 2 alpha r + alpha q) / (alpha + r)^2)``,
    the paper's ``(D - 1) log(1 + beta h) + log(1 + beta h - beta h^2 r)`` with
    ``h = 1 / (alpha + r)`` rewritten without cancellation; both factors are at least
    ``min_slope``.

    Args:
        features: dimension D.
        context_features: width of an optional context ``(batch, context_features)`` from which
            ``z0``, ``alpha_raw`` and ``beta_raw`` are amortized (added to the free ones).
        min_slope: lower bound of the derivative along and across the radius.
    """

    def __init__(self, features: int, context_features: int | None = None,
                 min_slope: float = 1e-3):
        super().__init__(features, features + 2, context_features, min_slope)
        self.z0 = nn.Parameter(torch.randn(features) * 0.1)
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def _free(self) -> Tensor:
        return torch.cat([self.z0, self.alpha_raw.reshape(1), self.beta_raw.reshape(1)])

    def params(self, context: Tensor | None = None, batch: int = 1,
               name: str = "Radial") -> tuple[Tensor, Tensor, Tensor]:
        """``z0`` ``(D,)`` or ``(batch, D)``; ``alpha``, ``q = alpha + beta`` ``()`` or
        ``(batch,)``."""
        raw = self.raw(context, batch, name)
        d = self.features
        alpha = F.softplus(raw[..., d]) + 1e-6
        return raw[..., :d], alpha, F.softplus(raw[..., d + 1]) + self.min_slope * alpha

    def _logabsdet(self, r: Tensor, alpha: Tensor, q: Tensor) -> Tensor:
        across = torch.log(r + q) - torch.log(alpha + r)
        along = torch.log(r * (r + 2 * alpha) + alpha * q) - 2 * torch.log(alpha + r)
        return (self.features - 1) * across + along

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Closed form ``z -> x``; returns ``log|det dx/dz|`` of shape ``(batch,)``."""
        check_input(z, self.features, "Radial.inverse")
        z0, alpha, q = self.params(context, z.shape[0], "Radial.inverse")
        diff = z - z0
        r = diff.norm(dim=1)
        x = z + ((q - alpha) / (alpha + r)).unsqueeze(-1) * diff
        return x, self._logabsdet(r, alpha, q)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Solve ``x -> z``: ``r`` is the non-negative root of
        ``r^2 + (q - |x - z0|) r - alpha |x - z0| = 0``."""
        check_input(x, self.features, "Radial.forward")
        z0, alpha, q = self.params(context, x.shape[0], "Radial.forward")
        diff = x - z0
        r_x = diff.norm(dim=1)
        b = q - r_x
        root = torch.sqrt(b.square() + 4 * alpha * r_x)
        denominator = b.abs() + root
        r = torch.where(b >= 0, 2 * alpha * r_x / denominator, 0.5 * denominator)
        z = z0 + ((alpha + r) / (r + q)).unsqueeze(-1) * diff
        return z, -self._logabsdet(r, alpha, q)
