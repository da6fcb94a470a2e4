""":class:`Flow`: a distribution defined by an invertible transform of a base distribution."""

from __future__ import annotations

import torch
from torch import Tensor

from seqflow.checks import describe_nonfinite
from seqflow.distributions.base import Distribution
from seqflow.nn.context import Context
from seqflow.transforms.base import Transform


class Flow(Distribution):
    """A normalizing flow: ``x = T^{-1}(z)`` with ``z ~ base``.

    ``log p(x) = base.log_prob(T(x)) + logabsdet_T(x)``.

    Args:
        transform: maps data to noise in ``forward``.
        base: the distribution of the noise.

    Shapes: ``log_prob`` takes ``(batch, *event)`` and returns ``(batch,)``; ``sample`` returns
    ``(num_samples, *event)``. With a context, ``num_samples`` must equal the context batch.
    Sequence flows take their length from ``length=`` or, without it, from the local features
    of the context (frames x upsampling factor of the transform that knows it).

    ``sample`` draws without recording gradients (a sequential direction under autograd would
    keep every step's graph); ``rsample`` and ``sample_and_log_prob`` are reparameterized.

    >>> import torch
    >>> from seqflow import StandardNormal
    >>> from seqflow.transforms import AffineCoupling, Compose
    >>> flow = Flow(Compose([AffineCoupling(2), AffineCoupling(2, parity=1)]), StandardNormal(2))
    >>> flow.log_prob(torch.zeros(3, 2)).shape
    torch.Size([3])
    >>> flow.sample(5).shape
    torch.Size([5, 2])
    >>> from seqflow.transforms import SequenceMAF
    >>> maf = SequenceMAF(1, residual_channels=4, skip_channels=4, blocks=2, cond_channels=3,
    ...                   upsample_factor=5)
    >>> Flow(maf, StandardNormal(1)).sample(2, context=torch.randn(2, 3, 4)).shape
    torch.Size([2, 1, 20])
    """

    def __init__(self, transform: Transform, base: Distribution):
        super().__init__(base.shape)
        self.transform = transform
        self.base = base

    def log_prob(self, x: Tensor, context: Context = None, validate: bool = True) -> Tensor:
        """Log-density of ``x``; ``validate=False`` skips the NaN/Inf scan (a device sync).

        The scan is also skipped while ``torch.compile`` traces, so a compiled ``log_prob``
        has no graph break.
        """
        if validate and not torch.compiler.is_compiling():
            if not isinstance(x, Tensor):
                raise ValueError(f"Flow.log_prob: expected a torch.Tensor, got "
                                 f"{type(x).__name__}")
            problem = describe_nonfinite(x)
            if problem is not None:
                raise ValueError(f"Flow.log_prob: input has {problem}")
        z, logabsdet = self.transform(x, context)
        return self.base.log_prob(z, context) + logabsdet

    def length(self, context: Context, length: int | None) -> int | None:
        """The sequence length to sample: ``length``, or the one the context implies.

        None for vector flows; raises for a sequence flow that has neither.
        """
        if length is not None:
            if isinstance(length, bool) or not isinstance(length, int) or length < 1:
                raise ValueError(f"Flow: length must be a positive int, got {length!r}")
            return length
        implied = [m.implied_length for m in self.transform.modules()
                   if hasattr(m, "implied_length")]
        if not implied:
            return None
        if context is not None and not _is_vector_context(context):
            for fn in implied:
                found = fn(context)
                if found is not None:
                    return found
        raise ValueError("Flow.sample: a sequence flow needs length= or a context with local "
                         "features that implies it")

    def sample_and_log_prob(
        self, num_samples: int, context: Context = None, length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Reparameterized samples and their log-density: ``log p(x) = log pi(z) - log|dx/dz|``."""
        self._check_num_samples(num_samples)
        _check_context_batch(num_samples, context)
        z, log_pz = self.base.sample_and_log_prob(num_samples, context,
                                                  self.length(context, length), generator)
        x, logabsdet = self.transform.inverse(z, context)
        return x, log_pz - logabsdet

    def rsample(
        self, num_samples: int, context: Context = None, length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Reparameterized samples ``(num_samples, *event)``."""
        self._check_num_samples(num_samples)
        _check_context_batch(num_samples, context)
        z = self.base.rsample(num_samples, context, self.length(context, length), generator)
        return self.transform.inverse(z, context)[0]

    @torch.no_grad()
    def sample(
        self, num_samples: int, context: Context = None, length: int | None = None,
        generator: torch.Generator | None = None, history: Tensor | None = None,
    ) -> Tensor:
        """Samples ``(num_samples, *event)`` drawn without recording gradients.

        Args:
            num_samples: how many; with a context, its batch.
            context: vector context, or local features (and global ids) of a sequence.
            length: time steps of a sequence (default: what the context implies).
            generator: draws the base noise (a CPU generator gives the same noise on every
                device); torch's global generator when None.
            history: ``(num_samples, C, T0)`` data that the samples continue: a sequence flow
                primes its streams with it and draws the ``T`` steps that follow (``length``,
                or the context's implied length minus ``T0``: the context covers history and
                continuation). Only flows whose transform continues a history (MAF streams
                after elementwise layers) accept one.
        """
        self._check_num_samples(num_samples)
        _check_context_batch(num_samples, context)
        if history is None:
            z = self.base.sample(num_samples, context, self.length(context, length), generator)
            return self.transform.inverse(z, context)[0]
        if (not isinstance(history, Tensor) or history.dim() != 3
                or history.shape[0] != num_samples or history.shape[-1] == 0):
            shape = tuple(history.shape) if isinstance(history, Tensor) else type(history)
            raise ValueError(f"Flow.sample: history must be (num_samples={num_samples}, "
                             f"channels, steps > 0), got {shape}")
        steps = history.shape[-1]
        if length is None:
            total = self.length(context, None)
            if total is None or total <= steps:
                raise ValueError(f"Flow.sample: the context covers {total} steps, not more than "
                                 f"the history's {steps}; give length= or a context that "
                                 "covers history and continuation")
            length = total - steps
        z = self.base.sample(num_samples, context, self.length(context, length), generator)
        return self.transform.inverse_after(z, context, history.to(z))[0]


def _is_vector_context(context: Context) -> bool:
    return isinstance(context, Tensor) and context.is_floating_point() and context.dim() == 2


def _check_context_batch(num_samples: int, context: Context) -> None:
    if context is not None and context.shape[0] != num_samples:
        raise ValueError(
            f"Flow.sample: num_samples={num_samples} must equal the context batch "
            f"(context shape {tuple(context.shape)})"
        )

