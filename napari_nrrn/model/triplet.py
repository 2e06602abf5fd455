"""NRRN on one slice triplet, raw grey values in and out: the network a BioImage.IO package describes.

BioImage.IO tools run one tensor through one module, so normalisation and both branches (DESIGN.md section
1) live inside it. The export writes this file's code, after ``nrrn.py``'s, into one torch-only source file:
the import of NRRN below is the one line it leaves out (``bioimageio.architecture_source``).
"""

import torch
from torch import nn

from napari_nrrn.model.nrrn import NRRN  # not in the exported source, which defines NRRN above

# As napari_nrrn.engine.normalise: a flat slice (std 0) is treated as unit-variance.
TRIPLET_MIN_STD = 1e-6


class NRRNTriplet(nn.Module):
    """(B, 3, H, W) = (previous, centre, next) slices, raw grey values -> (B, 1, H, W) denoised centre.

    Each slice is z-scored with its own mean and standard deviation over (y, x); the output is
    (f(previous, centre) + f(next, centre)) / 2, de-normalised with the centre's. ``config`` is
    ``NRRN.config()``: the network is built from it, so every configuration key travels.
    """

    def __init__(self, **config):
        super().__init__()
        self.network = NRRN(**config)

    def forward(self, triplet: torch.Tensor) -> torch.Tensor:
        if triplet.ndim != 4 or triplet.shape[1] != 3:
            raise ValueError(
                f"expected (batch, 3, y, x) = (previous, centre, next) slices, got {tuple(triplet.shape)}"
            )
        mean = triplet.mean(dim=(2, 3), keepdim=True)
        std = triplet.std(dim=(2, 3), keepdim=True, correction=0)
        std = torch.where(std > TRIPLET_MIN_STD, std, torch.ones_like(std))
        scored = (triplet - mean) / std
        previous, centre, following = scored[:, :1], scored[:, 1:2], scored[:, 2:]
        both = self.network(torch.cat([torch.cat([previous, centre], 1), torch.cat([following, centre], 1)]))
        branches = both.chunk(2)
        return (branches[0] + branches[1]) / 2 * std[:, 1:2] + mean[:, 1:2]
