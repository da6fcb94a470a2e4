"""The streaming loop runs on its own thread count and gives the caller's setting back."""

from __future__ import annotations

import pytest
import torch

from seqflow.nn import threads
from seqflow.nn.made import MADEStream
from seqflow.transforms.maf import MAF


@pytest.fixture(autouse=True)
def _two_threads(monkeypatch):
    """Start every test at 2 threads, the default override and no environment variable."""
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    before = torch.get_num_threads()
    threads.set_streaming_threads(None)
    torch.set_num_threads(2)
    yield
    threads.set_streaming_threads(None)
    torch.set_num_threads(before)


def seen_during_streaming(monkeypatch) -> list[int]:
    """Thread counts observed inside every MADE stream: at its start and at every step."""
    seen: list[int] = []
    for cls, name in ((MADEStream, "params"), (MADEStream, "run_sequence"),
                      (MADEStream, "__init__")):
        original = getattr(cls, name)

        def spy(self, *args, _original=original):
            seen.append(torch.get_num_threads())
            return _original(self, *args)

        monkeypatch.setattr(cls, name, spy)
    return seen


@pytest.mark.parametrize("grad", [False, True])  # whole-vector program / step by step
def test_sequential_streams_on_one_thread_and_restores_the_callers_setting(grad, monkeypatch):
    seen = seen_during_streaming(monkeypatch)
    layer = MAF(4, hidden_features=8)
    with torch.set_grad_enabled(grad):
        layer.inverse(torch.randn(3, 4))
    assert seen == [1] * (5 if grad else 2)
    assert torch.get_num_threads() == 2


def test_override_by_call_and_by_environment(monkeypatch):
    seen = seen_during_streaming(monkeypatch)
    layer = MAF(2, hidden_features=8)
    z = torch.randn(3, 2)
    threads.set_streaming_threads(0)  # keep the process setting
    layer.inverse(z)
    threads.set_streaming_threads(None)
    monkeypatch.setenv(threads.ENV_VAR, "3")
    layer.inverse(z)
    monkeypatch.setenv(threads.ENV_VAR, "0")
    layer.inverse(z)
    assert seen == [2] * 3 + [3] * 3 + [2] * 3
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("grad", [False, True])
def test_setting_restored_when_the_loop_fails(grad, monkeypatch):
    def fail(self, *args):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")

    monkeypatch.setattr(MADEStream, "params", fail)
    monkeypatch.setattr(MADEStream, "run_sequence", fail)
    with pytest.raises(RuntimeError, match="boom"), torch.set_grad_enabled(grad):
        MAF(2, hidden_features=8).inverse(torch.randn(3, 2))
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_thread_settings_fail_loudly(bad, monkeypatch):
    with pytest.raises(ValueError, match="threads"):
        threads.set_streaming_threads(bad)
    monkeypatch.setenv(threads.ENV_VAR, "two")
    with pytest.raises(ValueError, match=threads.ENV_VAR):
        threads.get_streaming_threads()


def test_intra_op_threads_sets_keeps_and_restores():
    with threads.intra_op_threads(1) as used:
        assert used == torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with threads.intra_op_threads(None) as used:  # keep the caller's count ...
        assert used == 2
        torch.set_num_threads(1)  # ... and give it back even if the block changed it
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError, match="boom"), threads.intra_op_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_intra_op_threads_held_open_restores_only_when_closed():
    held = threads.intra_op_threads(1)  # as the engine holds it from construction to close()
    assert held.__enter__() == 1
    torch.set_num_threads(3)
    held.__exit__(None, None, None)
    assert torch.get_num_threads() == 2
    del held  # a plain object: collecting it changes nothing
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_intra_op_threads_refuses_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="threads must be a positive int"):
        threads.intra_op_threads(bad)
