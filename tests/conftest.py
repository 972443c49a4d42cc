"""Shared fixtures: every numeric test runs in float32 and float64, seeded."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("GINV_TEST_THREADS", "1")))


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits_images() -> torch.Tensor:
    """The first 64 scikit-learn digits as (64, 1, 8, 8) float64 in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images[:64], dtype=torch.float64).unsqueeze(1) / 16.0
    return x


@pytest.fixture(scope="session")
def digits_labels() -> torch.Tensor:
    from sklearn.datasets import load_digits

    return torch.tensor(load_digits().target[:64], dtype=torch.int64)
