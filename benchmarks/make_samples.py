"""Make the shipped FIB-SEM sample: a crop of the FlyEM medulla (fairly clean, CC BY 3.0) with independent
synthetic FIB-SEM-like noise on every slice, so that the dock can train on it.

The noise model is bench_training.py's: Poisson-like shot noise (gain 2 grey levels per count) plus Gaussian
read noise (sigma 10), about 19 grey levels in all. Slices 40-71 are used: the benchmarks score on medulla
slices 110-140, and the shipped model holds out 110-138. Rerunning it rewrites the same bytes.

    python benchmarks/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from napari_nrrn.io.samples import SAMPLE_STACK_PATH

MEDULLA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
SLICES = slice(40, 72)
ROWS = slice(45, 205)
COLUMNS = slice(45, 205)
SHOT_GAIN = 2.0  # as bench_training.py
READ_SIGMA = 10.0
SEED = 2024


def make_medulla_sample(path: Path = SAMPLE_STACK_PATH) -> Path:
    clean = tifffile.imread(MEDULLA)[SLICES, ROWS, COLUMNS].astype(np.float64)
    rng = np.random.default_rng(SEED)
    shot = rng.poisson(clean / SHOT_GAIN) * SHOT_GAIN
    noisy = np.clip(np.round(shot + rng.normal(0, READ_SIGMA, clean.shape)), 0, 255).astype(np.uint8)
    # 10 nm voxels recorded the way ImageJ does: pixels per nm in the resolution tags, z spacing in nm.
    tifffile.imwrite(
        path, noisy, imagej=True, resolution=(0.1, 0.1), metadata={"axes": "ZYX", "spacing": 10, "unit": "nm"}
    )
    return path


if __name__ == "__main__":
    print(make_medulla_sample())
