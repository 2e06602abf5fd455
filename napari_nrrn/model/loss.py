"""The consensus Noise2Noise loss that trains NRRN without clean images (DESIGN.md section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def consensus_loss(
    f1: torch.Tensor, f2: torch.Tensor, prev: torch.Tensor, next: torch.Tensor
) -> torch.Tensor:
    """L = 1/2 MSE(f1, next) + 1/2 MSE(f2, prev) - 1/4 MSE(f1, f2).

    ``f1 = f(prev, centre)`` and ``f2 = f(next, centre)``: each branch is trained toward the slice it did
    not see. Since |(a+b)/2 - s|^2 = 1/2|a-s|^2 + 1/2|b-s|^2 - 1/4|a-b|^2, and a target whose noise is
    independent of the input has the same expected gradient as its clean signal, L trains the averaged
    inference output (f1 + f2) / 2 toward the clean signal.
    """
    return 0.5 * F.mse_loss(f1, next) + 0.5 * F.mse_loss(f2, prev) - 0.25 * F.mse_loss(f1, f2)
