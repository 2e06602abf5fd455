"""Shared test fixtures: the real EM data beside every checkout in ../shared/data."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}: the shared/ folder must sit beside the checkout")
    return SHARED_DATA
