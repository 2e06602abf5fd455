"""Paths of the sample data shipped in ``napari_nrrn/data`` (sources, licences: ``data/ATTRIBUTION.md``)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"

# FIB-SEM stack to train on: FlyEM medulla with independent synthetic noise (benchmarks/make_samples.py),
# 32 x 160 x 160 uint8, 10 nm voxels recorded in the file.
SAMPLE_STACK_PATH = DATA_DIR / "fibsem_flyem_medulla_synthetic_noise_32x160x160.tif"
SAMPLE_STACK_VOXEL_NM = (10.0, 10.0, 10.0)
# The crop is neuropil, without resin: ((y0, x0), (y1, x1)) in pixels along its flattest stretch of cytoplasm,
# the 24-pixel row segment of slice 16 whose clean signal varies least (std 2.8 grey levels).
SAMPLE_STACK_FLAT_LINE = ((70.0, 74.0), (70.0, 97.0))

# Real noisy FIB-SEM stack (FlyEM, via gala) whose noise is correlated between adjacent slices and
# neighbouring rows: 32 x 100 x 200 uint8, 10 nm voxels recorded in the file.
SAMPLE_GALA_PATH = DATA_DIR / "fibsem_flyem_gala_32x100x200.tif"

# Noisy SEM image (N2V SEM demo): 600 x 600 float32, grey levels 0..65535, pixel size unknown.
SAMPLE_SEM_PATH = DATA_DIR / "sem_n2v_demo_600x600_float32.tif"
# A segment ((y0, x0), (y1, x1)) in pixels through the flat embedding resin along the image's top edge.
SAMPLE_SEM_RESIN_LINE = ((25.0, 50.0), (25.0, 550.0))
