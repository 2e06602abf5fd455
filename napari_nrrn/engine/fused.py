"""A fast inference-only forward pass of NRRN, built at inference time from an NRRN's parameters.

It computes the same function as ``NRRN`` for both branches (prev, centre) and (next, centre) in one batch and
returns their average. What makes it faster on CPU (measured, see docs/benchmarks.md):
- channels-last activations and, on CPUs with native bfloat16 (AMX / AVX512-BF16), bfloat16 convolutions;
- every gate its own convolution, so each result is a contiguous tensor: elementwise work on slices of one
  wide fused output was slower than what the wider convolution saved;
- the two gates that are summed, Ar(P) + Br(X) and Az(P) + Bz(X), as one convolution of cat(P, X) with
  weights [A | B], the sigmoid fused into it; the memory conv's tanh, r * Ah(P) and Bh(X) + ... fused into
  their convolutions as well (oneDNN post-ops, as torch.compile uses them);
- the one-channel stem input padded to ``STEM_CHANNELS`` channels, which oneDNN handles far faster; in low
  precision the second channel carries the rounding error of the first (x = hi + lo), so the image itself
  enters at nearly float32 precision. The running estimate y stays float32 throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from napari_nrrn.model.nrrn import NRRN

CHANNELS_LAST = torch.channels_last
STEM_CHANNELS = 8
_UNIT = [1, 1]


def cpu_has_native_bfloat16() -> bool:
    """True where bfloat16 convolutions run on dedicated hardware (AMX or AVX512-BF16), not emulated."""
    checks = (
        getattr(torch.cpu, "_is_amx_tile_supported", None),
        getattr(torch.cpu, "_is_avx512_bf16_supported", None),
    )
    return any(check is not None and check() for check in checks)


def _mkldnn_pointwise():
    """oneDNN convolution with fused activation or sum (what torch.compile uses on CPU); None if absent."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._convolution_pointwise
    except (AttributeError, RuntimeError):
        return None


_ACTIVATIONS = {"none": lambda x: x, "relu": torch.relu_, "tanh": torch.tanh_, "sigmoid": torch.sigmoid_}


class FusedNRRN:
    """``(prev, centre, next) -> ((f(prev, centre) + f(next, centre)) / 2, [per-depth averages])``.

    With ``blocks=True`` the second item holds, for k = 1..K, what the model cut at depth k returns
    (``NRRN.depth_outputs``), averaged over both branches; its last item is the output itself.

    Inputs are z-scored float32 tensors (B, 1, H, W) on ``device``; outputs are float32 (B, 1, H, W).
    ``dtype`` is the precision of the convolutions and features (float32, bfloat16 or float16).
    ``use_mkldnn`` fuses activations into oneDNN convolutions (CPU only; None: where available).
    """

    def __init__(self, model: NRRN, device: torch.device, dtype: torch.dtype, use_mkldnn: bool | None = None):
        self.device, self.dtype = torch.device(device), dtype
        available = _mkldnn_pointwise() if self.device.type == "cpu" else None
        if use_mkldnn and available is None:
            raise ValueError("fused oneDNN convolutions need a CPU device and a PyTorch built with oneDNN")
        self._pointwise = available if use_mkldnn is not False else None
        self.width = model.width
        self.every_depth = model.every_depth

        def prepared(weight, bias):
            weight = weight.detach().to(self.device, dtype).contiguous(memory_format=CHANNELS_LAST)
            return weight, bias.detach().to(self.device, dtype).contiguous()

        stem = torch.zeros(model.width, STEM_CHANNELS, 3, 3, dtype=model.stem.weight.dtype)
        stem[:, 0] = stem[:, 1] = model.stem.weight.detach()[:, 0]  # hi and lo parts of the input
        self.stem = prepared(stem, model.stem.bias)
        self.memory_conv = prepared(model.memory_conv.weight, model.memory_conv.bias)
        self.blocks = []
        for block in model.blocks:
            reset = prepared(
                torch.cat([block.reset_memory.weight, block.reset_signal.weight], dim=1),
                block.reset_memory.bias + block.reset_signal.bias,
            )
            update = prepared(
                torch.cat([block.update_memory.weight, block.update_signal.weight], dim=1),
                block.update_memory.bias + block.update_signal.bias,
            )
            candidate_memory = prepared(block.candidate_memory.weight, block.candidate_memory.bias)
            candidate_signal = prepared(block.candidate_signal.weight, block.candidate_signal.bias)
            self.blocks.append((reset, update, candidate_memory, candidate_signal))
        self.tail = None if model.tail is None else prepared(model.tail.weight, model.tail.bias)

    def _conv(self, x, weight_bias, activation="none"):
        if self._pointwise is not None:
            return self._pointwise(x, *weight_bias, _UNIT, _UNIT, _UNIT, 1, activation, [], "")
        return _ACTIVATIONS[activation](F.conv2d(x, *weight_bias, padding=1))

    def _conv_times(self, x, other, weight_bias):
        """conv(x) * other (``other`` may be overwritten)."""
        if self._pointwise is not None:
            return self._pointwise.binary(
                x, other, *weight_bias, _UNIT, _UNIT, _UNIT, 1, "mul", None, None, [], ""
            )
        return other.mul_(F.conv2d(x, *weight_bias, padding=1))

    def _conv_plus(self, x, other, weight_bias):
        """conv(x) + other (``other`` may be overwritten)."""
        if self._pointwise is not None:
            return self._pointwise.binary(
                x, other, *weight_bias, _UNIT, _UNIT, _UNIT, 1, "add", None, None, [], ""
            )
        return other.add_(F.conv2d(x, *weight_bias, padding=1))

    def _stem_input(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) float32 -> (N, STEM_CHANNELS, H, W) in ``dtype``: channel 0 hi, channel 1 lo part."""
        shape = (images.shape[0], STEM_CHANNELS, *images.shape[2:])
        stem_input = torch.empty(shape, dtype=self.dtype, device=self.device, memory_format=CHANNELS_LAST)
        stem_input.zero_()
        high = images.to(self.dtype)
        stem_input[:, :1] = high
        if self.dtype != torch.float32:
            stem_input[:, 1:2] = images - high.float()
        return stem_input

    @torch.inference_mode()
    def __call__(self, prev: torch.Tensor, centre: torch.Tensor, next: torch.Tensor, blocks: bool = False):
        batch = centre.shape[0]
        features = self._conv(self._stem_input(torch.cat([prev, next, centre, centre])), self.stem, "relu")
        memory, signal = features[: 2 * batch], features[2 * batch :]
        estimate = torch.cat([centre, centre]).float()  # y for both branches, kept in float32
        memory = self._conv(memory, self.memory_conv, "tanh")  # P_1
        per_block = []
        for index, (reset_conv, update_conv, candidate_memory, candidate_signal) in enumerate(self.blocks):
            both = torch.cat([memory, signal], dim=1)
            reset = self._conv(both, reset_conv, "sigmoid")
            update = self._conv(both, update_conv, "sigmoid")
            gated_memory = self._conv_times(memory, reset, candidate_memory)  # r * Ah(P)
            candidate = self._conv_plus(signal, gated_memory, candidate_signal).tanh_()
            hidden = candidate.lerp_(memory, update)  # z * P + (1 - z) * candidate
            if index + 1 < len(self.blocks):
                memory = self._conv(memory, self.memory_conv, "tanh")  # P_{k+1}
            estimate.addcmul_(hidden[:, :1], hidden.amax(dim=1, keepdim=True).sigmoid_())  # y_k
            torch.tanh(estimate, out=hidden[:, :1])  # signal boosting: X_k = H with channel 0 = tanh(y_k)
            signal = hidden
            if blocks and index + 1 < len(self.blocks):
                depth_output = (
                    self._with_tail(estimate.clone(), signal.relu()) if self.every_depth else estimate
                )
                per_block.append(self._branch_mean(depth_output))
        if self.tail is not None:
            self._with_tail(estimate, signal.relu_())
        output = self._branch_mean(estimate)
        if blocks:
            per_block.append(output)
        return output, per_block

    def _with_tail(self, estimate: torch.Tensor, rectified_signal: torch.Tensor) -> torch.Tensor:
        """``estimate`` + the tail's attended channel 0 of relu(X), in place."""
        tail = self._conv(rectified_signal, self.tail)
        return estimate.addcmul_(tail[:, :1], tail.amax(dim=1, keepdim=True).sigmoid_())

    @staticmethod
    def _branch_mean(estimate: torch.Tensor) -> torch.Tensor:
        return estimate.unflatten(0, (2, len(estimate) // 2)).mean(dim=0)
