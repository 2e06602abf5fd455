"""The authors' NRRN network (PyPI FiReTiTiPyLib 1.5.7), for comparing ours against it.

The wheel is downloaded once into a per-user cache and its NRRN.py, which imports only torch, is loaded on
its own. None of the authors' code is part of the package. Without network access the caller is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

WHEEL_SPEC = "FiReTiTiPyLib==1.5.7"
NRRN_MEMBER = "FiReTiTiPyLib/PyTorch_Models/Denoising/NRRN.py"
CACHE_DIR = Path(os.environ.get("NAPARI_NRRN_TEST_CACHE", Path.home() / ".cache" / "napari-nrrn-tests"))


def _download_wheel() -> Path:
    wheels = sorted(CACHE_DIR.glob("FiReTiTiPyLib-1.5.7-*.whl"))
    if wheels:
        return wheels[0]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # The wheel declares Python<3.10; we read one torch-only file from it, so the marker does not apply.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python", "--quiet"]
    result = subprocess.run(
        [*command, WHEEL_SPEC, "-d", str(CACHE_DIR)], capture_output=True, text=True, timeout=300
    )
    wheels = sorted(CACHE_DIR.glob("FiReTiTiPyLib-1.5.7-*.whl"))
    if result.returncode != 0 or not wheels:
        pytest.skip(
            f"could not download the authors' code ({WHEEL_SPEC}) from PyPI: {result.stderr.strip()[-300:]}"
        )
    return wheels[0]


def authors_nrrn_module():
    """The authors' ``NRRN.py`` as a module (class ``NRRN(bu_count, hidden_size)``)."""
    source = CACHE_DIR / "NRRN.py"
    if not source.exists():
        with zipfile.ZipFile(_download_wheel()) as wheel:
            source.write_bytes(wheel.read(NRRN_MEMBER))
    spec = importlib.util.spec_from_file_location("authors_nrrn_module", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def authors_nrrn(depth: int, width: int):
    """A randomly initialised authors' NRRN with ``depth`` building units of ``width`` feature maps."""
    return authors_nrrn_module().NRRN(bu_count=depth, hidden_size=width).eval()
