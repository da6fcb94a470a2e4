"""The one annealing schedule of the tasks: a weight rising linearly to 1.

The ELBO's KL term (:class:`~seqflow.train.objectives.ELBOTask`), the reverse-KL energy
(:class:`~seqflow.train.objectives.ReverseKLTask`) and the distillation KL warm-up
(:class:`~seqflow.train.objectives.DistillTask`) all weight their annealed term by
:func:`annealed_beta` of the optimizer step.
"""

from __future__ import annotations


def annealed_beta(step: int, steps: int, start: float) -> float:
    """The weight at optimizer step ``step``: ``start`` rising linearly to 1 at ``steps``,
    ``min(1, start + (1 - start) step / steps)``.

    ``steps=0`` means no annealing (always 1).

    >>> [annealed_beta(s, 4, 0.5) for s in (0, 2, 4, 9)]
    [0.5, 0.75, 1.0, 1.0]
    """
    if steps <= 0:
        return 1.0
    return min(1.0, start + (1.0 - start) * step / steps)
