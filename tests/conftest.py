"""Shared test fixtures: the real EM data beside every checkout in ../shared/data."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def user_data_folder(tmp_path_factory):
    """The user data folder (platformdirs honours XDG_DATA_HOME on Linux), so that checkpoints written by
    default land in a temporary folder, not the home of whoever runs the tests."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("user-data")
        patch.setenv("XDG_DATA_HOME", str(folder))
        yield folder


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


@pytest.fixture(scope="session")
def gala_slices(shared_data):
    """Six real noisy FIB-SEM slices (gala, 100 x 200 uint8): a TIFF of four would read as colour samples."""
    import tifffile

    return tifffile.imread(shared_data / "fibsem_flyem_gala_test_50x100x200.tif")[20:26]


@pytest.fixture
def stack_file(tmp_path, gala_slices):
    """``gala_slices`` as a TIFF stack."""
    import tifffile

    path = tmp_path / "noisy.tif"
    tifffile.imwrite(path, gala_slices)
    return path


@pytest.fixture
def model_file(tmp_path):
    """A tiny untrained model (depth 2, width 4, seed 0) saved as a napari-nrrn checkpoint."""
    import torch

    from napari_nrrn.model.checkpoint import save_model
    from napari_nrrn.model.nrrn import NRRN

    torch.manual_seed(0)
    return save_model(NRRN(depth=2, width=4), tmp_path / "tiny.pt", {"note": "test model"})


@pytest.fixture
def isolated_qsettings(tmp_path_factory):
    """What the widgets remember (QSettings) goes to a fresh folder, not the user's configuration."""
    from qtpy.QtCore import QSettings

    folder = str(tmp_path_factory.mktemp("qsettings"))
    for kind in (QSettings.NativeFormat, QSettings.IniFormat):
        QSettings.setPath(kind, QSettings.UserScope, folder)
    return folder
