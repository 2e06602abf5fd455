"""The NRRN network (DESIGN.md section 1), written from the equations.

Parameter names are our own; ``checkpoint.py`` maps the authors' names onto them.
"""

from __future__ import annotations

import torch
from torch import nn

SIGMOID_GAIN = 1.0
TANH_GAIN = 5.0 / 3.0


def _conv(channels_in: int, channels_out: int) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, bias=True)


def _attended_channel0(features: torch.Tensor) -> torch.Tensor:
    """Channel 0 weighted per pixel by sigmoid(max over channels): the noise-attention step."""
    return features[:, :1] * torch.sigmoid(features.amax(dim=1, keepdim=True))


class NoiseReconstructionBlock(nn.Module):
    """One convolutional GRU cell with the memory stream as hidden state.

    ``*_memory`` convs read the memory stream P, ``*_signal`` convs read the signal stream X.
    """

    def __init__(self, width: int):
        super().__init__()
        self.reset_memory = _conv(width, width)  # Ar
        self.reset_signal = _conv(width, width)  # Br
        self.update_memory = _conv(width, width)  # Az
        self.update_signal = _conv(width, width)  # Bz
        self.candidate_memory = _conv(width, width)  # Ah
        self.candidate_signal = _conv(width, width)  # Bh
        for conv in (self.reset_memory, self.reset_signal, self.update_memory, self.update_signal):
            nn.init.orthogonal_(conv.weight, SIGMOID_GAIN)
        for conv in (self.candidate_memory, self.candidate_signal):
            nn.init.orthogonal_(conv.weight, TANH_GAIN)

    def forward(self, memory: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        """Return H from P = tanh(S(M)) (``memory``) and the signal stream X."""
        reset = torch.sigmoid(self.reset_memory(memory) + self.reset_signal(signal))
        update = torch.sigmoid(self.update_memory(memory) + self.update_signal(signal))
        candidate = torch.tanh(self.candidate_signal(signal) + reset * self.candidate_memory(memory))
        return update * memory + (1 - update) * candidate


class NRRN(nn.Module):
    """Noise Reconstruction and Removal Network.

    ``model(x)`` takes (B, 2, H, W) as (neighbour, centre), both z-scored, and returns the
    (B, 1, H, W) estimate of the clean centre. ``block_outputs(x)`` returns ``[y_1 .. y_K]``.
    A model built with ``tail=False`` (see ``cut``) returns y_K instead of the tail's output.
    """

    def __init__(self, depth: int = 4, width: int = 32, tail: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError(f"NRRN depth must be at least 1, got {depth}")
        if width < 1:
            raise ValueError(f"NRRN width must be at least 1, got {width}")
        self.depth = depth
        self.width = width
        self.stem = _conv(1, width)  # E
        self.memory_conv = _conv(width, width)  # S, shared by all blocks
        self.blocks = nn.ModuleList(NoiseReconstructionBlock(width) for _ in range(depth))
        self.tail = _conv(width, width) if tail else None  # T

    @property
    def halo(self) -> int:
        """Pixels of context each output pixel depends on: stem, memory path, tail."""
        return 1 + (self.depth + 1) + (1 if self.tail is not None else 0)

    def config(self) -> dict:
        return {"depth": self.depth, "width": self.width, "tail": self.tail is not None}

    def _estimates(self, x: torch.Tensor, keep_blocks: bool):
        if x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(f"NRRN expects input of shape (B, 2, H, W), got {tuple(x.shape)}")
        neighbour, centre = x[:, :1], x[:, 1:]
        memory = torch.relu(self.stem(neighbour))
        signal = torch.relu(self.stem(centre))
        estimate = centre
        per_block = []
        for block in self.blocks:
            memory = torch.tanh(self.memory_conv(memory))
            hidden = block(memory, signal)
            estimate = estimate + _attended_channel0(hidden)
            signal = torch.cat([torch.tanh(estimate), hidden[:, 1:]], dim=1)
            if keep_blocks:
                per_block.append(estimate)
        if self.tail is not None:
            estimate = estimate + _attended_channel0(self.tail(torch.relu(signal)))
        return estimate, per_block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._estimates(x, keep_blocks=False)[0]

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image-space estimates y_1 .. y_K after each block (z-scored, like the input)."""
        return self._estimates(x, keep_blocks=True)[1]

    def cut(self, depth: int) -> NRRN:
        """A copy that computes only the first ``depth`` blocks and returns y_depth.

        ``cut(self.depth)`` is a plain copy of the full model, tail included.
        """
        if not 1 <= depth <= self.depth:
            raise ValueError(f"cannot cut a depth-{self.depth} NRRN to depth {depth}: choose 1..{self.depth}")
        full = depth == self.depth and self.tail is not None
        cut = NRRN(depth=depth, width=self.width, tail=full)
        wanted = cut.state_dict().keys()
        cut.load_state_dict({k: v.clone() for k, v in self.state_dict().items() if k in wanted})
        return cut
