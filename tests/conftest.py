"""Shared test options: ``--device`` selects where property tests run (default cpu)."""

from __future__ import annotations

import pytest
import torch
from dependency_checks import torchaudio_problem


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        help="torch device for property tests, e.g. cpu or cuda (default: cpu)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # A torch/torchaudio pair that does not load is one line, not a page of import errors.
    problem = torchaudio_problem()
    if problem is not None:
        raise pytest.UsageError(problem)
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    name = request.config.getoption("--device")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("--device cuda requested but no CUDA device is available")
    return dev


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
