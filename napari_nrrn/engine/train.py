"""Training NRRN on a noisy stack: a generator of ``TrainProgress`` events that returns the trained model.

The caller drives it (a napari thread worker, the CLI's progress bar, a test), stops it with
``should_stop()`` or by closing the generator, and gets a checkpoint it can resume from with the same step
count, optimiser state and random state: a run cancelled and resumed ends with the same weights as one
left alone (on CPU, for the same config).
"""

from __future__ import annotations

import base64
import collections
import math
import time
import warnings
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from napari_nrrn.engine.device import select_device
from napari_nrrn.engine.events import TrainProgress
from napari_nrrn.engine.fused import cpu_has_native_bfloat16
from napari_nrrn.engine.registration import noise_variance_factor
from napari_nrrn.engine.sampling import MODES, TripletSampler, check_training_stack
from napari_nrrn.measures.drift import DriftReport, estimate_drift
from napari_nrrn.measures.noise import INDEPENDENT_BELOW, NoiseReport, estimate_noise
from napari_nrrn.model.loss import consensus_loss
from napari_nrrn.model.nrrn import NRRN
from napari_nrrn.words import for_cli

SCHEDULES = ("cosine", "step", "constant")
# Training targets in adjacent mode at z-distance s (repeated-scan modes pair scans as DESIGN.md says,
# whatever the target); no target is nearer than s to an input:
# neighbour-mean: f(z-2s, z) and f(z+2s, z) -> (z-s + z+s) / 2: nearer the centre's signal, half the noise
#   variance; +3.5 dB over the published target at the same CPU time (docs/training.md).
# neighbours: the published targets, f(z-s, z) -> z+s and f(z+s, z) -> z-s.
TARGETS = ("neighbour-mean", "neighbours")
# What the loss is computed on: every depth's output z_k (the mean of their consensus losses; the network is
# built with every_depth=True, so each cut is a denoiser: 0.1 to 0.7 dB below full depth measured, against
# 6 to 9 dB for cuts of a model trained on its final output, DESIGN.md section 1), or the final output alone
# (the published form).
SUPERVISIONS = ("every-depth", "final")
# The weights training starts from (``TrainConfig.start_from``): the shipped model of the run's width
# (SHIPPED: width 32 the default one, width 16 the fast one) cut to the run's depth, where it has at least
# the run's depth (random weights otherwise, recorded),
# RANDOM weights (the published form), or a model file, which must fit. docs/training.md measures what the
# shipped start is worth.
SHIPPED = "shipped"
RANDOM = "random"
# Fraction of centre pixels the blind-spot term hides, and the window their stand-ins come from.
BLIND_SPOT_FRACTION = 0.02
BLIND_SPOT_RADIUS = 2
# The fewest validation points a run records (at evenly spread steps or times, the last at its end), however
# short its budget: the depth explorer reads a per-depth loss from them.
VALIDATION_POINTS = 4
# The latest steps the pace (seconds per step) is measured over: recent enough to follow the machine's load.
PACE_WINDOW = 20
# A resumed run must build the same network and draw from the same samples and held-out block.
RESUME_MUST_MATCH = (
    "depth",
    "width",
    "mode",
    "target",
    "supervision",
    "z_distance",
    "seed",
    "validation_fraction",
    "register",
)
# With independent noise the validation loss cannot fall below the target's noise variance (in z-score
# units; see shared_noise_threshold); below this fraction of it the paired slices must share noise. The
# margin covers the noise estimate's error (its variance within about 10%, docs/noise.md) and clipping.
SHARED_NOISE_FRACTION = 0.8


class SharedNoiseError(ValueError):
    """Training stopped because its loss fell below what independent noise allows: the slices it pairs share
    noise, and the network was learning to reproduce it."""


@dataclass
class TrainConfig:
    """Training parameters. The defaults are the measured recipe of docs/training.md; the published one is
    ``TrainConfig.published()``."""

    depth: int = 4
    width: int = 32
    patch: int = 64
    batch: int = 8
    steps: int = 2000
    seconds: float | None = None  # time budget of the whole run, resumed parts included (train's clock)
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine: decay to 0 over the budget; step: x step_gamma every step_every steps
    step_every: int = 100
    step_gamma: float = 0.5
    warmup_steps: int = 20  # linear warm-up of the learning rate, any schedule
    seed: int = 0
    device: str | None = None  # None: CUDA, then Apple MPS, then CPU
    mode: str = "adjacent"  # adjacent | repeated-2 | repeated-3 (engine/sampling.py)
    target: str = "neighbour-mean"  # see TARGETS; adjacent mode only
    z_distance: int | None = None  # s of TARGETS, adjacent mode only; None: from the measured noise
    supervision: str = "every-depth"  # see SUPERVISIONS
    blind_spot: float = 0.0  # weight of a Noise2Void term on the centre slice (0: off)
    validation_fraction: float = 0.1
    validation_every: int = 50
    validation_patches: int = 16
    checkpoint_every: int = 200
    cache_mb: int = 1024  # slice cache of the sampler
    amp: bool = True  # mixed precision on CUDA and on CPUs with native bf16; float32 elsewhere
    start_from: str = SHIPPED  # SHIPPED, RANDOM or a model file
    # Shift neighbours onto the centre (engine/registration.py); None: when the drift measured
    # on the stack calls for it (adjacent mode; DriftReport.calls_for_registration).
    register: bool | None = None

    @classmethod
    def published(cls, **overrides) -> TrainConfig:
        """The recipe published with the method: Adam 1e-4, x0.5 every 10 epochs, batch 12, 256 px crops,
        each branch trained toward the other neighbour, on the final output only, in float32.

        ``step_every`` stands for 10 epochs of one pass over a 100-slice stack; pass the value for yours.
        """
        recipe = dict(lr=1e-4, schedule="step", step_every=80, step_gamma=0.5, warmup_steps=0, batch=12)
        recipe.update(patch=256, target="neighbours", supervision="final", amp=False, start_from=RANDOM)
        return cls(**{**recipe, **overrides})

    def check(self) -> None:
        """ValueError naming the parameter and a valid range."""
        positive = ("depth", "width", "patch", "batch", "steps", "step_every", "validation_every")
        positive += ("validation_patches", "checkpoint_every", "cache_mb")
        for name in positive:
            if getattr(self, name) < 1:
                error = ValueError(f"training parameter {name} = {getattr(self, name)} must be at least 1")
                raise for_cli(error, f"{_option(name)} {getattr(self, name)}: give at least 1")
        if self.seconds is not None and self.seconds <= 0:
            error = ValueError(f"training time budget seconds = {self.seconds} must be positive")
            raise for_cli(error, f"--seconds {self.seconds:g}: give a positive number of seconds")
        if not self.lr > 0:
            error = ValueError(f"learning rate lr = {self.lr} must be positive")
            raise for_cli(error, f"--lr {self.lr:g}: give a positive learning rate")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} is unknown: choose one of {', '.join(SCHEDULES)}")
        if self.mode not in MODES:
            raise ValueError(f"training mode {self.mode!r} is unknown: choose one of {', '.join(MODES)}")
        if self.target not in TARGETS:
            raise ValueError(f"target {self.target!r} is unknown: choose one of {', '.join(TARGETS)}")
        if self.z_distance is not None and (self.z_distance < 1 or self.mode != "adjacent"):
            error = ValueError(
                f"z_distance = {self.z_distance}: use a distance of at least 1 slice, in adjacent mode only "
                "(repeated scans pair the scans of one slice), or None to choose it from the measured noise"
            )
            raise for_cli(
                error,
                f"--z-distance {self.z_distance}: give at least 1 slice, with one STACK only (repeated scans "
                "pair the scans of one slice), or leave it out to choose it from the measured noise",
            )
        if self.supervision not in SUPERVISIONS:
            raise ValueError(
                f"supervision {self.supervision!r} is unknown: choose one of {', '.join(SUPERVISIONS)}"
            )
        if self.blind_spot < 0 or (self.blind_spot > 0 and self.mode == "repeated-2"):
            raise ValueError(
                f"blind_spot = {self.blind_spot}: use a weight >= 0, and 0 in repeated-2 mode "
                "(its inputs hold the centre twice, so a hidden pixel would still be seen)"
            )
        if self.blind_spot > 0 and self.patch <= 2 * BLIND_SPOT_RADIUS:
            raise ValueError(f"the blind-spot term needs patches larger than {2 * BLIND_SPOT_RADIUS} pixels")
        if self.register and self.mode != "adjacent":
            raise ValueError(
                "register = True: registration pairs neighbouring slices, in adjacent mode only "
                f"({self.mode} pairs scans of one slice, which show the same place)"
            )
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps = {self.warmup_steps} must be 0 or more")
        if self.start_from not in (SHIPPED, RANDOM) and not Path(self.start_from).is_file():
            choices = "{} (the shipped model), {} (random weights) or a napari-nrrn model file"
            error = ValueError(
                f"start_from {self.start_from!r}: no such model file; start from "
                + choices.format(repr(SHIPPED), repr(RANDOM))
            )
            cli = f"--start-from {self.start_from}: no such model file; start from "
            raise for_cli(error, cli + choices.format(SHIPPED, RANDOM))


def validation_interval(config: TrainConfig) -> int:
    """Steps between validation points: ``validation_every``, or fewer where a step budget would give less
    than ``VALIDATION_POINTS`` of them. (A time budget also validates at evenly spread times.)"""
    return max(1, min(config.validation_every, config.steps // VALIDATION_POINTS))


def _option(name: str) -> str:
    """The command-line option that sets the TrainConfig field ``name``."""
    return "--" + name.replace("_", "-")


def learning_rate(config: TrainConfig, step: int, progress: float) -> float:
    """The learning rate of ``step`` (1-based) when ``progress`` (0..1) of the budget was spent before it."""
    warmup = min(1.0, step / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule == "cosine":
        return config.lr * warmup * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if config.schedule == "step":
        return config.lr * warmup * config.step_gamma ** ((step - 1) // config.step_every)
    return config.lr * warmup


def branch_inputs(samples: torch.Tensor, mode: str, target: str = "neighbours"):
    """The two branches' inputs (B, 2, P, P) as (neighbour, centre) and the targets of the loss.

    Returns ``(x1, x2, prev, next)`` for ``consensus_loss(f(x1), f(x2), prev, next)``: f(x1) is trained
    toward ``next`` and f(x2) toward ``prev``. Repeated-2 samples (a, b) give f(a, a) -> b and f(b, b) -> a.
    Neighbour-mean samples (5 slices) give f(z-2, z) and f(z+2, z), both toward (z-1 + z+1) / 2.
    """
    if mode == "repeated-2":
        a, b = samples[:, :1], samples[:, 1:2]
        return torch.cat([a, a], 1), torch.cat([b, b], 1), a, b
    if mode == "adjacent" and target == "neighbour-mean":
        far_prev, prev, centre, next_, far_next = samples.split(1, dim=1)
        mean = (prev + next_) / 2
        return torch.cat([far_prev, centre], 1), torch.cat([far_next, centre], 1), mean, mean
    prev, centre, next_ = samples[:, :1], samples[:, 1:2], samples[:, 2:3]
    return torch.cat([prev, centre], 1), torch.cat([next_, centre], 1), prev, next_


def _offset_inside(index: torch.Tensor, offset: torch.Tensor, size: int) -> torch.Tensor:
    """``index + offset``, or ``index - offset`` where that would leave the image: never ``index`` itself."""
    moved = index + offset
    return torch.where((moved < 0) | (moved > size - 1), index - offset, moved)


def hide_pixels(centre: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise2Void masking: a random ``BLIND_SPOT_FRACTION`` of pixels replaced by a random pixel of their
    (2 * BLIND_SPOT_RADIUS + 1)^2 window off their own row and column (so a hidden pixel never stands in
    for itself, nor does a pixel whose noise is correlated with it along a scan line). Returns (masked
    centre, boolean mask)."""
    batch, _, height, width = centre.shape
    mask = torch.rand(centre.shape, generator=generator) < BLIND_SPOT_FRACTION
    offsets = torch.randint(-BLIND_SPOT_RADIUS, BLIND_SPOT_RADIUS, (2, *centre.shape), generator=generator)
    offsets += (offsets >= 0).long()  # -R..R without 0, so a hidden pixel never stands in for itself
    rows = _offset_inside(torch.arange(height).view(1, 1, -1, 1), offsets[0], height)
    cols = _offset_inside(torch.arange(width).view(1, 1, 1, -1), offsets[1], width)
    flat = centre.reshape(batch, -1).cpu()
    stand_ins = flat.gather(1, (rows * width + cols).reshape(batch, -1)).reshape(centre.shape)
    mask, stand_ins = mask.to(centre.device), stand_ins.to(centre.device)
    return torch.where(mask, stand_ins, centre), mask


def _encode(value):
    """Optimiser state as plain values (model files hold no pickled objects): tensors become base64 bytes."""
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().contiguous().numpy()
        return {
            "tensor": str(array.dtype),
            "shape": list(array.shape),
            "base64": base64.b64encode(array).decode(),
        }
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value):
    if isinstance(value, dict) and "tensor" in value and "base64" in value:
        data = np.frombuffer(base64.b64decode(value["base64"]), dtype=value["tensor"])
        return torch.from_numpy(data.reshape(value["shape"]).copy())
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _optimiser_state(encoded: dict) -> dict:
    state = _decode(encoded)
    state["state"] = {int(k): v for k, v in state["state"].items()}
    return state


def sample_offsets(config: TrainConfig) -> tuple[int, ...]:
    """The slices of a sample relative to its centre (z-distance 1 where it is not chosen yet)."""
    if config.mode != "adjacent":
        return (0,)
    s = config.z_distance or 1
    return (-2 * s, -s, 0, s, 2 * s) if config.target == "neighbour-mean" else (-s, 0, s)


def _check_stack_depth(slices: int, config: TrainConfig, report: NoiseReport | None) -> None:
    """ValueError naming the shortest usable stack and the options when ``slices`` are too few for the
    z-distance of ``config``."""
    s = config.z_distance
    mean_target = config.target == "neighbour-mean"
    needed = 4 * s + 1 if mean_target else 2 * s + 1
    if slices >= needed:
        return
    chosen = ""
    if report is not None and s > 1:
        measured = ", ".join("not measured" if c is None else f"{c:.2f}" for c in report.z_correlation)
        chosen = f" (chosen because the noise of slices 1, 2, 3 apart correlates at {measured})"
    needs = (
        f"training toward the {'mean of the neighbours' if mean_target else 'neighbours'} at z-distance "
        f"{s}{chosen} needs at least {needed} slices ({4 if mean_target else 2} x {s} + 1), the stack has "
        f"{slices}: choose a smaller z-distance ({{}}; closer slices that share noise teach it), "
    )
    if mean_target:
        needs += f"the neighbours themselves as the target ({{}}: {2 * s + 1} slices) "
    needs += "or more slices"
    api = needs.format("z_distance", "target='neighbours'")
    raise for_cli(ValueError(api), needs.format("--z-distance N", "--target neighbours"))


def _measure_noise(stack, config: TrainConfig) -> NoiseReport | None:
    """The noise report of an adjacent-mode stack; None where it cannot be measured and the z-distance is
    given."""
    if config.mode != "adjacent":
        return None
    try:
        return estimate_noise(stack)
    except ValueError as error:
        if config.z_distance is None:
            cannot = f"cannot choose the z-distance of training from the noise ({error})"
            raise for_cli(
                ValueError(f"{cannot}: give it (z_distance=N)"), f"{cannot}: give it (--z-distance N)"
            ) from error
        return None


def _measure_drift(stack, config: TrainConfig) -> DriftReport | None:
    """The drift report of an adjacent-mode stack; None in repeated-scan modes, or where slices are too small
    to measure a shift on."""
    if config.mode != "adjacent":
        return None
    try:
        return estimate_drift(stack)
    except ValueError:
        return None


def _blind_spot_warnings(report: NoiseReport | None, config: TrainConfig) -> list[str]:
    if report is None or not config.blind_spot:
        return []
    found = []
    for correlation, neighbours in ((report.row_correlation, "rows"), (report.column_correlation, "columns")):
        if abs(correlation) >= INDEPENDENT_BELOW:
            found.append(
                f"neighbouring {neighbours} share noise (correlation {correlation:.2f}), so the blind-spot "
                f"term (blind_spot = {config.blind_spot:g}) partly learns to reproduce it from the pixels "
                "around a hidden one: set blind_spot to 0 for this stack"
            )
    return found


def shared_noise_threshold(
    report: NoiseReport | None, sampler: TripletSampler, validation, config: TrainConfig
) -> float | None:
    """The validation loss below which the slices paired in training must share noise (None without a noise
    report or validation samples).

    A target's noise variance in z-score units, from the report's variance model at each validation target
    slice's mean over that slice's variance, is a floor for independent noise: for neighbour-mean the loss
    is |mean of the branches - target|^2, whose expectation is the error to the target's signal plus the
    noise variance of the mean of two slices. For the published neighbours target the loss can also fall
    below it by extrapolating the signal difference of the two targets from the inputs, so their whole
    squared signal difference (from the validation samples) is allowed on top. A registered target read
    between pixels has its noise variance scaled by ``noise_variance_factor`` of its shift.
    """
    if report is None or validation is None:
        return None
    s = config.z_distance

    def noise_variance(centre: int, offset: int) -> float:
        mean, std = sampler.cache.get(centre + offset)[1][0]
        shift = dict(zip(sampler.offsets, sampler.shifts_of(centre), strict=True))[offset]
        variance = max(report.variance_intercept + report.variance_slope * mean, 0.0) / std**2
        return variance * noise_variance_factor(shift)

    centres = [int(v) for v in sampler.split.validation]
    target_variance = float(np.mean([(noise_variance(v, -s) + noise_variance(v, s)) / 2 for v in centres]))
    if config.target == "neighbour-mean":
        return SHARED_NOISE_FRACTION * target_variance / 2
    difference = float((validation[:, 0] - validation[:, 2]).square().mean())
    signal_difference = max(difference - 2 * target_variance, 0.0)
    return SHARED_NOISE_FRACTION * target_variance - signal_difference


def starting_weights(config: TrainConfig) -> tuple[dict | None, str]:
    """The weights ``config.start_from`` names, cut to ``config.depth`` (None: random), and what they are,
    for the training record. ValueError for a model file that does not fit the run."""
    from napari_nrrn.model.checkpoint import load_model

    if config.start_from == RANDOM:
        return None, "random weights"
    if config.start_from == SHIPPED:
        return _shipped_start(config)
    start = load_model(config.start_from)
    if start.width != config.width or start.depth < config.depth:
        raise ValueError(
            f"cannot start training from {config.start_from} (depth {start.depth}, width {start.width}): "
            f"the run asks for width {config.width} and depth {config.depth}; start from a model of that "
            f"width and at least that depth, or from {RANDOM!r} weights"
        )
    return start.cut(config.depth).state_dict(), str(config.start_from)


def _shipped_start(config: TrainConfig) -> tuple[dict | None, str]:
    """The shipped model of the run's width (the default one first), cut to the run's depth; random weights
    where none fits."""
    from napari_nrrn.model.checkpoint import load_model, shipped_model_paths

    found = []
    for name, path in shipped_model_paths().items():
        start = load_model(path)
        if start.width == config.width and start.depth >= config.depth:
            return start.cut(config.depth).state_dict(), (
                "the shipped model" if name == "default" else f"the shipped {name} model"
            )
        found.append(f"depth {start.depth}, width {start.width}")
    return None, f"random weights (the shipped models, {' and '.join(found)}, do not fit)"


def _data_provenance(stack) -> dict:
    return {"shape": [int(n) for n in stack.shape], "dtype": str(np.dtype(stack.dtype))}


class _Run:
    """One training run's mutable state, saved to and restored from a checkpoint."""

    def __init__(self, stack, config: TrainConfig, device: torch.device, metadata: dict, notes: dict, start):
        torch.manual_seed(config.seed)
        self.config = config
        self.device = device
        every_depth = config.supervision == "every-depth"
        self.model = NRRN(depth=config.depth, width=config.width, every_depth=every_depth)
        if start is not None:
            # A final-output model cut below its depth has no tail: the run's tail then starts random.
            self.model.load_state_dict(start, strict=False)
        self.model.to(device)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.sampler = TripletSampler(
            stack,
            config.patch,
            mode=config.mode,
            validation_fraction=config.validation_fraction,
            seed=config.seed,
            cache_bytes=config.cache_mb << 20,
            offsets=sample_offsets(config),
            register=bool(config.register),
        )
        self.step = 0
        self.elapsed_before = 0.0
        self.loss = float("nan")
        self.val_loss: float | None = None
        self.val_loss_by_depth: list[float] | None = None
        self.metadata = {**metadata, "data": {**_data_provenance(stack), **metadata.get("data", {})}}
        self.notes = notes  # what train() found before the first step, recorded under "training"

    def summary(self, elapsed_s: float) -> dict:
        """What the model file records about how it was made."""
        return {
            **self.metadata,
            "training": {
                "config": asdict(self.config),
                "step": self.step,
                "elapsed_s": elapsed_s,
                "loss": self.loss,
                "val_loss": self.val_loss,
                "val_loss_by_depth": self.val_loss_by_depth,
                **self.notes,
            },
        }

    def save(self, path: Path, elapsed_s: float) -> None:
        from napari_nrrn.model.checkpoint import save_model

        metadata = self.summary(elapsed_s)
        metadata["training"]["optimiser"] = _encode(self.optimiser.state_dict())
        metadata["training"]["sampler"] = self.sampler.state()
        save_model(self.model, path, metadata)

    def restore(self, path: Path) -> None:
        from napari_nrrn.model.checkpoint import load_model

        checkpoint = load_model(path)
        saved = checkpoint.metadata.get("training", {})
        if "optimiser" not in saved:
            raise ValueError(f"{path} is a model without training state, so it cannot be resumed: train anew")
        for name in RESUME_MUST_MATCH:
            if saved["config"].get(name) != getattr(self.config, name):
                raise ValueError(
                    f"cannot resume from {path}: it was trained with {name} = {saved['config'].get(name)!r}, "
                    f"this run asks for {getattr(self.config, name)!r}; use the same {name} or train anew"
                )
        self.model.load_state_dict(checkpoint.state_dict())
        self.optimiser.load_state_dict(_optimiser_state(saved["optimiser"]))
        self.sampler.restore(saved["sampler"])
        self.step = int(saved["step"])
        self.elapsed_before = float(saved["elapsed_s"])
        self.loss = float(saved["loss"])
        self.val_loss = saved["val_loss"]
        self.val_loss_by_depth = saved.get("val_loss_by_depth")


def _autocast(device: torch.device, enabled: bool):
    """Mixed precision where it is fast: CUDA (bf16, else fp16) and CPUs with native bf16 (AMX or
    AVX512-BF16: 1.8x faster steps measured, docs/training.md); float32 elsewhere."""
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if enabled and device.type == "cpu" and cpu_has_native_bfloat16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def _branch_outputs(model: NRRN, x1: torch.Tensor, x2: torch.Tensor, all_depths: bool):
    """[(f(x1), f(x2))] of the final output, or of every depth's output (what each cut returns), in one call
    of the network (one batch of 2B), as float32."""
    both = torch.cat([x1, x2])
    outputs = model.depth_outputs(both) if all_depths else [model(both)]
    return [(out.float()[: len(x1)], out.float()[len(x1) :]) for out in outputs]


def validation_losses(model: NRRN, samples: torch.Tensor, config: TrainConfig) -> list[float]:
    """Mean consensus loss (without the blind-spot term) over fixed validation samples, for the output of
    every depth (``model.depth_outputs``): the last is the full model's."""
    totals = np.zeros(model.depth)
    with torch.no_grad():
        for start in range(0, len(samples), config.batch):
            chunk = samples[start : start + config.batch]
            x1, x2, prev, next_ = branch_inputs(chunk, config.mode, config.target)
            for k, (f1, f2) in enumerate(_branch_outputs(model, x1, x2, all_depths=True)):
                totals[k] += float(consensus_loss(f1, f2, prev, next_)) * len(chunk)
    return [float(total) / len(samples) for total in totals]


def _shared_noise_message(run: _Run, threshold: float, checkpoint_path: Path | None) -> str:
    s = run.config.z_distance
    saved = f" The checkpoint is saved to {checkpoint_path}." if checkpoint_path is not None else ""
    return (
        f"training stopped at step {run.step}: the validation loss {run.val_loss:.4f} fell below "
        f"{threshold:.4f}, less than independent noise allows, so the slices paired at z-distance {s} share "
        f"noise and the network is learning to reproduce it. Train with a larger z-distance "
        f"(--z-distance {s + 1}), after checking the noise with `napari-nrrn info STACK --noise`.{saved}"
    )


def train(
    stack,
    config: TrainConfig | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    metadata: dict | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Generator[TrainProgress, None, NRRN]:
    """Train an NRRN on ``stack`` (see engine/sampling.py for the layouts of each ``config.mode``).

    Yields a ``TrainProgress`` after every step, with the time left at the pace measured over the latest
    steps; the validation loss is recomputed on fixed patches of held-out slices every
    ``validation_interval(config)`` steps, at ``VALIDATION_POINTS`` evenly spread times of a time budget,
    and at the last step. Saves a checkpoint to ``checkpoint_path`` every ``checkpoint_every`` steps, at the
    end, and when stopped (``should_stop()`` true, checked before every step, or the generator closed).
    ``resume=True`` continues from that checkpoint. ``metadata``
    (e.g. the data path, the command line) is recorded in checkpoints and in the returned model's
    ``metadata``. Returns the trained model (in eval mode, on the training device). ``clock`` measures
    ``config.seconds`` and the elapsed times: wall time by default; ``time.process_time`` budgets CPU time,
    the fair measure on a shared machine (benchmarks/bench_training.py).

    In adjacent mode the noise is measured first (``estimate_noise``, recorded as ``metadata["noise"]``);
    ``config.z_distance`` None becomes the report's ``safe_z_distance()``, and the distance used is in
    ``metadata["training"]["z_distance"]`` and the recorded config. A validation loss below what independent
    noise allows (``shared_noise_threshold``) stops the run with ``SharedNoiseError``, after saving the
    checkpoint. With a blind-spot term on rows or columns that share noise, a warning (also recorded). The
    weights start from ``config.start_from`` (``starting_weights``), recorded as
    ``metadata["training"]["started_from"]``. The drift between slices is measured too (``estimate_drift``,
    ``metadata["drift"]``); ``config.register`` None becomes whether it calls for registered neighbours,
    recorded as ``metadata["training"]["register"]`` (inference then registers with this model).

    Bad input (config, stack shape, device, a missing checkpoint) raises here, before the first step.
    """
    config = config or TrainConfig()
    config.check()
    shape = tuple(stack.shape)
    check_training_stack(
        shape, config.mode, config.patch, reach=max(sample_offsets(replace(config, z_distance=1)))
    )
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs the checkpoint_path of the run to continue")
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    if resume and not checkpoint_path.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint_path} does not exist: train without resume first")
    report = _measure_noise(stack, config)
    notes = {"z_distance_automatic": config.z_distance is None and report is not None}
    if config.mode == "adjacent":
        config = replace(config, z_distance=config.z_distance or report.safe_z_distance())
        _check_stack_depth(shape[0], config, report if notes["z_distance_automatic"] else None)
    notes["z_distance"] = config.z_distance
    drift = _measure_drift(stack, config)
    notes["register_automatic"] = config.register is None
    if config.mode != "adjacent":
        config = replace(config, register=False)
    elif config.register is None:
        config = replace(config, register=drift is not None and drift.calls_for_registration())
    notes["register"] = config.register
    start, notes["started_from"] = starting_weights(config)
    notes["warnings"] = _blind_spot_warnings(report, config)
    notes["warnings"] += [] if drift is None else drift.warnings(config.register)
    for warning in notes["warnings"]:
        warnings.warn(warning, stacklevel=2)
    metadata = dict(metadata or {})
    if report is not None:
        metadata["noise"] = report.to_dict()
    if drift is not None:
        metadata["drift"] = drift.to_dict()
    device = select_device(config.device)
    return _steps(
        stack, config, device, report, notes, start, should_stop, checkpoint_path, resume, metadata, clock
    )


def _steps(
    stack, config, device, report, notes, start, should_stop, checkpoint_path, resume, metadata, clock
):
    """The training loop of ``train``."""
    run = _Run(stack, config, device, metadata, notes, start)
    if resume:
        run.restore(checkpoint_path)
    model, optimiser = run.model, run.optimiser
    # bf16 keeps float32's range; only fp16 needs its gradients scaled.
    fp16 = device.type == "cuda" and config.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    samples = run.sampler.validation_batch(config.validation_patches)
    validation = torch.from_numpy(samples).to(device) if samples is not None else None
    threshold = shared_noise_threshold(report, run.sampler, validation, config)
    notes["shared_noise_threshold"] = threshold

    start = clock()
    every = validation_interval(config)
    step_ends = collections.deque([start], maxlen=PACE_WINDOW + 1)

    def elapsed() -> float:
        return run.elapsed_before + clock() - start

    def time_mark() -> int:
        """The evenly spread times of a time budget passed so far."""
        return int(elapsed() * VALIDATION_POINTS / config.seconds) if config.seconds else 0

    mark = time_mark()

    def progress() -> float:
        spent = run.step / config.steps
        return max(spent, elapsed() / config.seconds) if config.seconds else spent

    def finish(reason: str) -> NRRN:
        if checkpoint_path is not None:
            run.save(checkpoint_path, elapsed())
        model.eval()
        model.metadata = run.summary(elapsed())
        model.metadata["training"]["ended"] = reason
        return model

    try:
        while run.step < config.steps and not (config.seconds and elapsed() >= config.seconds):
            if should_stop is not None and should_stop():
                return finish("cancelled")
            lr = learning_rate(config, run.step + 1, progress())
            run.step += 1
            for group in optimiser.param_groups:
                group["lr"] = lr
            model.train()
            batch = torch.from_numpy(run.sampler.batch(config.batch)).to(device)
            x1, x2, prev, next_ = branch_inputs(batch, config.mode, config.target)
            if config.blind_spot:
                # The same pixels hidden in both branches, seeded by step: a resumed run hides the same ones.
                generator = torch.Generator().manual_seed(config.seed * 1_000_003 + run.step)
                centre = x1[:, 1:2]
                hidden_centre, hidden = hide_pixels(centre, generator)
                x1 = torch.cat([x1[:, :1], hidden_centre], 1)
                x2 = torch.cat([x2[:, :1], hidden_centre], 1)
            with _autocast(device, config.amp):
                outputs = _branch_outputs(model, x1, x2, all_depths=model.every_depth)
            losses = []
            for f1, f2 in outputs:
                loss = consensus_loss(f1, f2, prev, next_)
                if config.blind_spot:
                    blind_error = ((f1 + f2) / 2 - centre).square()[hidden]
                    loss = loss + config.blind_spot * (blind_error.mean() if blind_error.numel() else 0.0)
                losses.append(loss)
            loss = torch.stack(losses).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged at step {run.step} (loss {float(loss)}): lower the learning rate "
                    f"(lr = {config.lr})"
                )
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            run.loss = float(loss.detach())

            passed = time_mark()
            last = run.step == config.steps or passed >= VALIDATION_POINTS
            if validation is not None and (run.step % every == 0 or last or passed > mark):
                mark = passed
                model.eval()
                run.val_loss_by_depth = validation_losses(model, validation, config)
                run.val_loss = run.val_loss_by_depth[-1]
                if threshold is not None and run.val_loss < threshold:
                    if checkpoint_path is not None:
                        run.save(checkpoint_path, elapsed())
                    raise SharedNoiseError(_shared_noise_message(run, threshold, checkpoint_path))
            if checkpoint_path is not None and run.step % config.checkpoint_every == 0:
                run.save(checkpoint_path, elapsed())

            now = clock()
            step_ends.append(now)
            pace = (now - step_ends[0]) / (len(step_ends) - 1)
            remaining = (config.steps - run.step) * pace
            total = config.steps
            if config.seconds:
                remaining = min(remaining, max(config.seconds - (run.elapsed_before + now - start), 0.0))
                total = min(config.steps, run.step + round(remaining / max(pace, 1e-9)))
            yield TrainProgress(
                stage="train",
                done=run.step,
                total=total,
                elapsed_s=run.elapsed_before + now - start,
                loss=run.loss,
                val_loss=run.val_loss,
                val_loss_by_depth=None if run.val_loss_by_depth is None else tuple(run.val_loss_by_depth),
                lr=lr,
                seconds_per_step=pace,
                remaining_s=remaining,
            )
    except GeneratorExit:
        finish("cancelled")
        raise
    return finish("completed")
