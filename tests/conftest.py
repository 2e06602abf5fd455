"""Shared test fixtures: the real EM data beside every checkout in ../shared/data."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}: shared/ must sit beside the checkout")
    return SHARED_DATA


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine a second thread's barriers make
    every small op wait for a descheduled thread (a 150-step test took 600 s instead of 20 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
