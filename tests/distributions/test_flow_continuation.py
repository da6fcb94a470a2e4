"""Flow.sample with a generator and a history, and the streaming driver's progress hook."""

import pytest
import torch

from seqflow import Flow, StandardNormal
from seqflow.nn.streaming import stream_progress
from seqflow.transforms import (
    AffineCoupling,
    Compose,
    Scaling,
    SequenceIAF,
    SequenceMAF,
    SequenceStack,
)

C, T0, H = 2, 7, 5


def maf_flow(conditioner: str = "wavenet", scaled: bool = True) -> Flow:
    torch.manual_seed(0)
    options = ({"residual_channels": 6, "skip_channels": 6, "blocks": 2}
               if conditioner == "wavenet" else {"hidden_features": 8, "head_features": 8})
    stack = SequenceStack([SequenceMAF(C, conditioner=conditioner, cond_channels=3, **options)
                           for _ in range(2)])
    for p in stack.parameters():  # leave the identity so that a wrong history shows
        p.data.add_(0.3 * torch.randn_like(p))
    transform = Compose([Scaling(C), stack]) if scaled else stack
    if scaled:
        transform.transforms[0].log_scale.data.fill_(0.7)
    return Flow(transform, StandardNormal(C)).double()


@pytest.mark.parametrize("conditioner", ["wavenet", "lstm"])
def test_continuation_equals_the_tail_of_one_whole_sample(conditioner):
    """Data sampled for T0 + H steps in one stream, then re-sampled for the last H steps after
    its first T0 as a history with the same noise, gives the same last H steps."""
    flow = maf_flow(conditioner)
    context = torch.randn(3, 3, T0 + H, dtype=torch.float64)
    z = torch.randn(3, C, T0 + H, dtype=torch.float64)
    whole, _ = flow.transform.inverse(z, context)
    tail, _ = flow.transform.inverse_after(z[..., T0:], context, whole[..., :T0])
    torch.testing.assert_close(tail, whole[..., T0:], rtol=1e-10, atol=1e-10)
    # Flow.sample draws that noise from the generator and takes H from the context.
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(3, C, H, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    drawn = flow.sample(3, context, generator=generator, history=whole[..., :T0])
    expected, _ = flow.transform.inverse_after(noise, context, whole[..., :T0])
    torch.testing.assert_close(drawn, expected)
    wrong = flow.transform.inverse_after(z[..., T0:], context, whole[..., :T0] + 0.1)[0]
    assert (wrong - whole[..., T0:]).abs().max() > 1e-3


def test_generator_makes_samples_repeatable_and_independent_of_the_global_seed():
    flow = maf_flow()
    context = torch.randn(2, 3, 9, dtype=torch.float64)
    a = flow.sample(2, context, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(123)
    b = flow.sample(2, context, generator=torch.Generator().manual_seed(1))
    c = flow.sample(2, context, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3


def test_histories_that_cannot_be_continued_are_refused_in_one_line():
    flow = maf_flow()
    context = torch.randn(2, 3, T0 + H, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"history must be \(num_samples=2"):
        flow.sample(2, context, history=torch.zeros(3, C, T0, dtype=torch.float64))
    with pytest.raises(ValueError, match="not more than the history's"):
        flow.sample(2, context, history=torch.zeros(2, C, T0 + H, dtype=torch.float64))
    iaf = Flow(SequenceStack([SequenceIAF(C, residual_channels=4, skip_channels=4, blocks=1)]),
               StandardNormal(C))
    with pytest.raises(ValueError, match="only with SequenceMAF"):
        iaf.sample(2, length=3, history=torch.zeros(2, C, 4))
    coupling = Flow(Compose([AffineCoupling(2)]), StandardNormal(2))
    with pytest.raises(ValueError, match="AffineCoupling: cannot continue a history"):
        coupling.transform.inverse_after(torch.zeros(1, 2), None, torch.zeros(1, 2, 3))


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_progress_reports_every_step_once_and_changes_nothing(chunk):
    flow = maf_flow(scaled=False)
    context = torch.randn(1, 3, 10, dtype=torch.float64)
    z = torch.randn(1, C, 10, dtype=torch.float64)
    plain, logdet = flow.transform.inverse(z, context)
    seen = []
    with stream_progress(seen.append, chunk=chunk):
        watched, watched_logdet = flow.transform.inverse(z, context)
    torch.testing.assert_close(watched, plain, rtol=0, atol=0)
    torch.testing.assert_close(watched_logdet, logdet)
    assert sum(seen) == 10 and all(0 < n <= chunk for n in seen)
    assert len(seen) == -(-10 // chunk)


def test_progress_chunks_of_the_compiled_kernel_equal_one_run(monkeypatch):
    monkeypatch.setattr("seqflow.transforms.autoregressive._step_one_channel",
                        lambda *a: pytest.fail("stepped instead of running the kernel"))
    torch.manual_seed(1)
    stack = SequenceStack([SequenceMAF(1, residual_channels=4, skip_channels=4, blocks=3,
                                       cond_channels=2) for _ in range(2)])
    for p in stack.parameters():
        p.data.add_(0.2 * torch.randn_like(p))
    context = torch.randn(2, 2, 50)
    z = torch.randn(2, 1, 50)
    with torch.no_grad():
        whole, logdet = stack.inverse(z, context)
        seen = []
        with stream_progress(seen.append, chunk=7):
            chunked, chunked_logdet = stack.inverse(z, context)
    assert seen == [7] * 7 + [1]
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)
    torch.testing.assert_close(chunked_logdet, logdet, rtol=1e-6, atol=1e-6)
