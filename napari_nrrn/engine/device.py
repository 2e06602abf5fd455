"""Device choice: CUDA, then Apple MPS, then CPU, unless the caller names one."""

from __future__ import annotations

import torch


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The named device, checked to exist, or the best one available."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but no CUDA GPU is available: use 'cpu'")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but Apple MPS is not available: use 'cpu'")
    return chosen
