"""``napari-nrrn demo``: denoise the shipped real FIB-SEM crop (gala) with the shipped model, then write the
denoised TIFF and a PNG of raw and denoised side by side, with the profile of a line through flat material
and its IQR."""

from __future__ import annotations

import argparse
from pathlib import Path

# A line ((y0, x0), (y1, x1)) in the sample's middle slice through the cytoplasm of a large neurite: the
# gala crop has no resin, and this is the flattest 20-pixel line of the Gaussian-smoothed (sigma 2) raw
# slice, a choice that does not depend on the denoiser.
DEMO_SLICE = 16
DEMO_LINE = ((41.0, 131.0), (49.0, 149.0))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("nrrn-demo"), help="output folder (default: ./nrrn-demo)"
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="checkpoint to use (default: the shipped model)"
    )
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")


def run(args: argparse.Namespace) -> int:
    from napari_nrrn.cli.progress import drain
    from napari_nrrn.engine.inference import denoise_stack
    from napari_nrrn.io.samples import SAMPLE_GALA_PATH
    from napari_nrrn.io.stack import open_stack, voxel_size
    from napari_nrrn.io.writers import iter_write_stack
    from napari_nrrn.model.checkpoint import default_model_path, load_model

    args.out.mkdir(parents=True, exist_ok=True)
    raw = open_stack(SAMPLE_GALA_PATH)
    model = load_model(args.model or default_model_path())
    denoised_path = args.out / "fibsem_sample_denoised.tif"
    writing = iter_write_stack(
        denoise_stack(model, raw, device=args.device),
        denoised_path,
        voxel_size(SAMPLE_GALA_PATH),
        overwrite=True,
    )
    drain(writing, desc="denoising the sample", unit="slice", total=raw.shape[0])

    figure_path = args.out / "fibsem_sample_raw_vs_denoised.png"
    iqrs = plot_comparison(
        raw[DEMO_SLICE].compute(), open_stack(denoised_path)[DEMO_SLICE].compute(), figure_path
    )
    print(f"sample:   {SAMPLE_GALA_PATH} {tuple(raw.shape)} {raw.dtype}")
    print(f"denoised: {denoised_path}")
    print(f"figure:   {figure_path}")
    print(f"IQR along the line on slice {DEMO_SLICE}: raw {iqrs[0]:.1f}, denoised {iqrs[1]:.1f} grey levels")
    return 0


def plot_comparison(raw, denoised, path: Path) -> tuple[float, float]:
    """Save raw and denoised side by side with the line and both profiles; return their IQRs."""
    import numpy as np
    from matplotlib.figure import Figure  # not pyplot: no global backend state

    from napari_nrrn.measures.profiles import iqr, line_profile

    profiles = [line_profile(image, *DEMO_LINE) for image in (raw, denoised)]
    iqrs = (iqr(profiles[0]), iqr(profiles[1]))
    (y0, x0), (y1, x1) = DEMO_LINE

    figure = Figure(figsize=(12, 6.5), layout="constrained")
    grid = figure.add_gridspec(2, 2, height_ratios=(1.6, 1))
    for column, (image, title) in enumerate(((raw, "raw"), (denoised, "NRRN denoised"))):
        axes = figure.add_subplot(grid[0, column])
        axes.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else None)
        axes.plot([x0, x1], [y0, y1], color="tab:orange" if column == 0 else "tab:blue", linewidth=2)
        axes.set_title(f"{title}, slice {DEMO_SLICE}")
        axes.set_axis_off()
    axes = figure.add_subplot(grid[1, :])
    for profile, value, label, colour in zip(
        profiles, iqrs, ("raw", "NRRN denoised"), ("tab:orange", "tab:blue"), strict=True
    ):
        axes.plot(profile, color=colour, label=f"{label} (IQR {value:.1f})")
    axes.set_xlabel("distance along the line (pixels)")
    axes.set_ylabel("grey level")
    axes.legend()
    figure.savefig(path, dpi=100)
    return iqrs
