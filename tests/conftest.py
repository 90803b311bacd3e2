"""Shared fixtures.

Real data for the larger tests lives in ``../shared/data`` beside the checkout (or wherever
``WILDAFFECT_SHARED_DATA`` points). On a user's fresh clone without it those tests skip with
a reason; in CI (``CI=true``) a missing folder is an error, so the tests cannot silently
stop running there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _shared_data_dir() -> Path:
    env = os.environ.get("WILDAFFECT_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ``../shared/data``; skips (or fails in CI) when it is absent."""
    path = _shared_data_dir()
    if not path.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs the shared data at {path}")
        pytest.skip(f"needs the real data at {path} (set WILDAFFECT_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread is faster, and far faster on a shared, busy CPU. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
