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
    (B, 1, H, W) estimate of the clean centre. ``block_outputs(x)`` returns ``[y_1 .. y_K]``, the published
    per-block estimates. A model built with ``tail=False`` (see ``cut``) returns y_K instead of the tail's
    output.

    ``every_depth=True`` marks a model trained on every depth's output z_k = y_k + tail term of X_k (the
    shared tail T applied to each block's signal stream): its ``cut(k)`` is the first k blocks and the tail,
    a denoiser in its own right. The authors' models and older napari-nrrn files are ``every_depth=False``:
    their cuts return y_k, without the tail, which only the final output was trained through.
    """

    def __init__(self, depth: int = 4, width: int = 32, tail: bool = True, every_depth: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"NRRN depth must be at least 1, got {depth}")
        if width < 1:
            raise ValueError(f"NRRN width must be at least 1, got {width}")
        if every_depth and not tail:
            raise ValueError("an every_depth NRRN applies its tail at every depth, so it needs tail=True")
        self.depth = depth
        self.width = width
        self.every_depth = every_depth
        self.stem = _conv(1, width)  # E
        self.memory_conv = _conv(width, width)  # S, shared by all blocks
        self.blocks = nn.ModuleList(NoiseReconstructionBlock(width) for _ in range(depth))
        self.tail = _conv(width, width) if tail else None  # T

    @property
    def halo(self) -> int:
        """Pixels of context each output pixel depends on: stem, memory path, tail."""
        return 1 + (self.depth + 1) + (1 if self.tail is not None else 0)

    def config(self) -> dict:
        return {
            "depth": self.depth,
            "width": self.width,
            "tail": self.tail is not None,
            "every_depth": self.every_depth,
        }

    def _with_tail(self, estimate: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        return estimate + _attended_channel0(self.tail(torch.relu(signal)))

    def _estimates(self, x: torch.Tensor, keep: str | None):
        """The output and, by ``keep``, the per-block ``"blocks"`` [y_1 .. y_K] or ``"depths"`` (what each
        cut returns)."""
        if x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(f"NRRN expects input of shape (B, 2, H, W), got {tuple(x.shape)}")
        neighbour, centre = x[:, :1], x[:, 1:]
        memory = torch.relu(self.stem(neighbour))
        signal = torch.relu(self.stem(centre))
        estimate = centre
        kept = []
        for index, block in enumerate(self.blocks):
            memory = torch.tanh(self.memory_conv(memory))
            hidden = block(memory, signal)
            estimate = estimate + _attended_channel0(hidden)
            signal = torch.cat([torch.tanh(estimate), hidden[:, 1:]], dim=1)
            if keep == "blocks":
                kept.append(estimate)
            elif keep == "depths" and index + 1 < self.depth:
                kept.append(self._with_tail(estimate, signal) if self.every_depth else estimate)
        output = estimate if self.tail is None else self._with_tail(estimate, signal)
        if keep == "depths":
            kept.append(output)
        return output, kept

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._estimates(x, keep=None)[0]

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image-space estimates y_1 .. y_K after each block (z-scored, like the input)."""
        return self._estimates(x, keep="blocks")[1]

    def depth_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """What ``cut(k)(x)`` returns for k = 1..K, in one pass: [z_1 .. z_K] for an every_depth model,
        [y_1 .. y_{K-1}, output] otherwise."""
        return self._estimates(x, keep="depths")[1]

    def cut(self, depth: int) -> NRRN:
        """A copy that computes only the first ``depth`` blocks: with the tail for an every_depth model,
        returning y_depth otherwise.

        ``cut(self.depth)`` is a plain copy of the full model, tail included.
        """
        if not 1 <= depth <= self.depth:
            raise ValueError(f"cannot cut a depth-{self.depth} NRRN to depth {depth}: choose 1..{self.depth}")
        with_tail = self.tail is not None and (self.every_depth or depth == self.depth)
        cut = NRRN(depth=depth, width=self.width, tail=with_tail, every_depth=self.every_depth)
        wanted = cut.state_dict().keys()
        cut.load_state_dict({k: v.clone() for k, v in self.state_dict().items() if k in wanted})
        if hasattr(self, "metadata"):  # how it was trained (e.g. on registered neighbours) holds for its cuts
            cut.metadata = self.metadata
        return cut
