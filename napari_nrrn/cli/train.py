"""``napari-nrrn train STACK -o MODEL``: train an NRRN on a noisy stack, with a progress bar.

One STACK trains on adjacent slices. Two or three STACKs are repeated scans of the same slices (same shape,
scan k of slice z in each): training pairs them as DESIGN.md's repeated-scan rule says.

A checkpoint ``MODEL_STEM.checkpoint.pt`` beside MODEL is written every ``--checkpoint-every`` steps, at the
end and on Ctrl-C; ``--resume`` continues from it with the same step count and optimiser state. MODEL is
written only when training completes, with the command line and the data recorded in its metadata.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path

from napari_nrrn.words import exists_error, plural

# Options that set the TrainConfig field of the same name.
OPTIONS = (
    "depth",
    "width",
    "patch",
    "batch",
    "steps",
    "seconds",
    "lr",
    "target",
    "z_distance",
    "supervision",
    "device",
    "seed",
    "checkpoint_every",
    "start_from",
)
# With only a time budget the step count is not the limit.
UNBOUNDED_STEPS = 10**9
# The steps after which the time estimate is printed: the first one also pays for warming up.
ESTIMATE_AFTER = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from napari_nrrn.engine.train import RANDOM, SHIPPED, SUPERVISIONS, TARGETS, TrainConfig

    defaults = TrainConfig()
    parser.add_argument(
        "stacks",
        nargs="+",
        metavar="STACK",
        help="noisy stack (TIFF, TIFF folder, Zarr/OME-Zarr, .dat); 2 or 3 STACKs: repeated scans of it",
    )
    parser.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write (.pt)")
    parser.add_argument("--depth", type=int, default=defaults.depth, help="blocks K (default %(default)s)")
    parser.add_argument(
        "--width", type=int, default=defaults.width, help="feature maps C (default %(default)s)"
    )
    parser.add_argument("--patch", type=int, default=defaults.patch, help="patch size (default %(default)s)")
    parser.add_argument(
        "--batch", type=int, default=defaults.batch, help="patches per step (default %(default)s)"
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help=f"weight updates (default {defaults.steps})")
    budget.add_argument("--seconds", type=float, default=None, help="wall-time budget instead of --steps")
    parser.add_argument(
        "--lr", type=float, default=defaults.lr, help="peak learning rate (default %(default)s)"
    )
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default=defaults.target,
        help="training target on adjacent slices (default %(default)s; 'neighbours' is the published one, "
        "and trains on stacks of 3 or 4 slices)",
    )
    parser.add_argument(
        "--z-distance",
        type=int,
        default=None,
        metavar="N",
        help="slices between the centre and its neighbours in training (default: chosen from the measured "
        "noise, so that no target shares noise with an input)",
    )
    parser.add_argument(
        "--supervision",
        choices=SUPERVISIONS,
        default=defaults.supervision,
        help="train every depth's output, so that every --depth cut denoises (default %(default)s), or the "
        "final output only (the published form)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default %(default)s)")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=defaults.checkpoint_every,
        help="steps between checkpoints (default %(default)s)",
    )
    parser.add_argument(
        "--start-from",
        default=defaults.start_from,
        metavar="WEIGHTS",
        help=f"weights training starts from: {SHIPPED!r} (the shipped model of --width, 32 or 16, cut to "
        f"--depth; the default), {RANDOM!r} (the published form) or a model file",
    )
    parser.add_argument(
        "--register",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="shift each neighbour onto its centre slice (cubic interpolation), in training and when "
        "denoising with the model (default: when the drift measured between slices calls for it; see "
        "`napari-nrrn info STACK --noise`)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from MODEL's checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace MODEL if it exists")
    parser.add_argument("--channel", type=int, default=None, help="detector channel of a multi-channel file")


def _drive(steps, config, seconds: float | None):
    """Run the training generator with a progress bar and return the model. The bar counts steps, or the
    seconds of a time budget (a constant total either way), and shows the time left at the pace measured on
    this machine, the loss and the validation loss; the estimate is also printed once the first steps are
    measured."""
    from tqdm import tqdm

    if seconds is None:
        total, count = config.steps, "step {n_fmt}/{total_fmt}"
    else:
        total, count = max(1, round(seconds)), "{n_fmt}/{total_fmt} s"
    bar_format = "{desc}: {percentage:3.0f}%|{bar}| " + count + " [{elapsed}{postfix}]"
    options = dict(desc="train", bar_format=bar_format, file=sys.stderr, dynamic_ncols=True)
    estimated = False
    with tqdm(total=total, **options) as bar:
        while True:
            try:
                event = next(steps)
            except StopIteration as stop:
                return stop.value
            bar.update(min(event.done if seconds is None else int(event.elapsed_s), total) - bar.n)
            left = tqdm.format_interval(event.remaining_s)
            if not estimated and event.done >= min(ESTIMATE_AFTER, event.total):
                estimated = True
                bar.write(
                    f"napari-nrrn train: {event.seconds_per_step:.2f} s a step, measured on this machine: "
                    f"about {tqdm.format_interval(event.estimated_total_s)} in all, {left} left",
                    file=sys.stderr,
                )
            shown = [f"about {left} left", f"loss {event.loss:.4f}"]
            if seconds is not None:
                shown.insert(0, f"step {event.done}")
            if event.val_loss is not None:
                shown.append(f"validation loss {event.val_loss:.4f}")
            bar.set_postfix_str(", ".join([*shown, f"lr {event.lr:.1e}"]), refresh=False)


def checkpoint_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(f"{output.stem}.checkpoint.pt")


def command_line(args: argparse.Namespace) -> str:
    """The command with every effective option, so the model file says exactly how it was made."""
    words = ["napari-nrrn", "train", *args.stacks, "-o", args.output]
    for option in OPTIONS:
        value = getattr(args, option)
        if value is not None:
            words += [f"--{option.replace('_', '-')}", str(value)]
    if args.register is not None:
        words.append("--register" if args.register else "--no-register")
    if args.channel is not None:
        words += ["--channel", str(args.channel)]
    if args.resume:
        words.append("--resume")
    return shlex.join(words)


def _config(args: argparse.Namespace, mode: str):
    from napari_nrrn.engine.train import TrainConfig

    names = (*OPTIONS, "register")
    values = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.seconds is not None:
        values["steps"] = UNBOUNDED_STEPS
    return TrainConfig(mode=mode, **values)


def _open(args: argparse.Namespace):
    from napari_nrrn.io.stack import open_stack

    stacks = [open_stack(path, channel=args.channel) for path in args.stacks]
    if len(stacks) == 1:
        return stacks[0], "adjacent"
    if len(stacks) > 3:
        raise ValueError(f"{len(stacks)} stacks given: pass one stack, or 2 or 3 repeated scans of it")
    shapes = {tuple(s.shape) for s in stacks}
    if len(shapes) > 1:
        raise ValueError(
            f"repeated scans must have one shape, got {', '.join(map(str, sorted(shapes)))} "
            f"for {', '.join(args.stacks)}"
        )
    import dask.array as da

    return da.stack(stacks, axis=1), f"repeated-{len(stacks)}"


def run(args: argparse.Namespace) -> int:
    from napari_nrrn.engine.train import train
    from napari_nrrn.model.checkpoint import save_model

    output = Path(args.output)
    if output.is_dir():
        raise ValueError(f"output {output} is a folder: give a model file name such as {output / 'model.pt'}")
    if output.suffix.lower() != ".pt":
        raise ValueError(f"{output}: a model file is a .pt file; give the output a .pt name")
    if (output.exists() or output.is_symlink()) and not args.overwrite:
        raise exists_error(output)
    stack, mode = _open(args)
    config = _config(args, mode)
    metadata = {
        "command": command_line(args),
        "data": {"paths": [str(Path(p).resolve()) for p in args.stacks], "channel": args.channel},
    }
    checkpoint = checkpoint_path(output)

    # Ctrl-C asks the run to stop after the current step (it then saves its checkpoint); a second one aborts.
    interrupted = []

    def on_interrupt(signum, frame):
        interrupted.append(True)
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    steps = train(
        stack,
        config,
        should_stop=lambda: bool(interrupted),
        checkpoint_path=checkpoint,
        resume=args.resume,
        metadata=metadata,
    )
    budget = plural(config.steps, "step") if args.seconds is None else f"{args.seconds:g} s"
    print(f"napari-nrrn train: {budget}; checkpoints go to {checkpoint}", file=sys.stderr)
    try:
        model = _drive(steps, config, args.seconds)
    finally:
        signal.signal(signal.SIGINT, previous)

    step = model.metadata["training"]["step"]
    if interrupted:
        print(
            f"napari-nrrn train: stopped at step {step}; checkpoint saved to {checkpoint}: "
            "run the same command with --resume to continue",
            file=sys.stderr,
        )
        return 130
    save_model(model, output, model.metadata)
    val_loss, distance = model.metadata["training"]["val_loss"], model.metadata["training"]["z_distance"]
    print(
        f"wrote {output} (depth {config.depth}, width {config.width}, {plural(step, 'step')}"
        + (f", z-distance {distance}" if distance is not None else "")
        + f", started from {model.metadata['training']['started_from']}"
        + (", neighbours registered" if model.metadata["training"]["register"] else "")
        + (f", validation loss {val_loss:.4f})" if val_loss is not None else ")")
        + f"; checkpoint for --resume: {checkpoint}"
    )
    return 0
