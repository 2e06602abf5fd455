"""CPU inference speed: the authors' network driven by a tiler with their parameters, against our inference.

Every variant denoises the same uint8 slice triplet with the same weights and runs in its own subprocess
(so its peak RSS is its own), round-robin over ``--repeats`` rounds so that other load on the machine hits
all variants alike; the table gives the fastest round. Each run is preceded by an untimed warm-up on a crop.
The table is printed and written to docs/benchmarks.md under "## CPU inference speed".

    python benchmarks/bench_inference.py [--size 1000] [--repeats 3] [--model MODEL.pt]

Without --model the shipped default model is used, or, if none is installed yet, a randomly initialised
authors' network (K=4, C=32; the initialisation of their code), stated in the output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _docs import cpu_description, replace_section  # noqa: E402

from napari_nrrn.engine.depth import flop_per_pixel  # noqa: E402
from napari_nrrn.engine.fused import FusedNRRN  # noqa: E402
from napari_nrrn.engine.inference import CPU_TILE, run_tiles  # noqa: E402
from napari_nrrn.engine.normalise import slice_stats, unzscore, zscore  # noqa: E402
from napari_nrrn.engine.tiling import plan_tiles  # noqa: E402
from napari_nrrn.model.checkpoint import (  # noqa: E402
    AUTHORS_BLOCK,
    AUTHORS_TOP,
    default_model_path,
    load_model,
)
from tests.authors_nrrn import authors_nrrn  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
CENTRE_SLICE = 100
SECTION = "## CPU inference speed"
DOC = ROOT / "docs" / "benchmarks.md"
AUTHORS_CROP = 256  # the authors' tiler: 256-pixel crops, border effect size K + 5
WARM_UP = 520  # warm-up crop: holds every tile window of the variants but the whole-slice one


def triplet(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slices 99, 100, 101 of the FlyEM medulla stack (250 x 250), mirror-tiled to size x size (real data,
    no seams: each copy is the mirror image of its neighbour)."""
    stack = tifffile.imread(DATA)

    def mirror_tiled(image):
        reps = -(-size // image.shape[0])
        row = np.concatenate([image if i % 2 == 0 else image[:, ::-1] for i in range(reps)], axis=1)
        tiled = np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(reps)], axis=0)
        return np.ascontiguousarray(tiled[:size, :size])

    return tuple(mirror_tiled(stack[z]) for z in (CENTRE_SLICE - 1, CENTRE_SLICE, CENTRE_SLICE + 1))


def authors_state_dict(model) -> dict:
    """Our NRRN's weights under the authors' parameter names (the inverse of load_model's mapping)."""
    ours_to_authors = {v: k for k, v in AUTHORS_TOP.items()}
    block_names = {v: k for k, v in AUTHORS_BLOCK.items()}
    state = {}
    for key, tensor in model.state_dict().items():
        prefix, _, suffix = key.rpartition(".")
        if prefix.startswith("blocks."):
            _, index, name = prefix.split(".")
            state[f"nrrn.BU.{index}.{block_names[name]}.{suffix}"] = tensor
        else:
            state[f"{ours_to_authors[prefix]}.{suffix}"] = tensor
    return state


def authors_positions(length: int, crop: int, border: int) -> list[int]:
    """Crop origins along one axis as the authors' iterator places them: a stride of crop - 2 * border, the
    last crop flush with the image end."""
    positions = list(range(0, length - crop, crop - 2 * border))
    return positions + [length - crop]


def authors_tiler(network, images, depth: int, branches_together: bool = False) -> np.ndarray:
    """Our re-implementation of the authors' tiled inference (_Denoise3_ parameters): 256-pixel crops, border
    K + 5, one crop at a time, Model(prev, centre) and Model(next, centre) called separately (or, with
    ``branches_together``, as one batch of two), averaged, each crop's border dropped except at the image
    edge. Run without autograd (the faster way to run their driver)."""
    border = depth + 5
    prev, centre, next_ = (torch.from_numpy(image)[None, None] for image in images)
    height, width = centre.shape[-2:]
    output = np.empty((height, width), np.float32)
    for top in authors_positions(height, AUTHORS_CROP, border):
        for left in authors_positions(width, AUTHORS_CROP, border):
            window = (..., slice(top, top + AUTHORS_CROP), slice(left, left + AUTHORS_CROP))
            pairs = [
                torch.cat([prev[window], centre[window]], dim=1),
                torch.cat([next_[window], centre[window]], dim=1),
            ]
            if branches_together:
                prediction = network(torch.cat(pairs)).mean(dim=0)[0].numpy()
            else:
                prediction = ((network(pairs[0]) + network(pairs[1])) / 2)[0, 0].numpy()
            skip_top, skip_left = (0 if top == 0 else border), (0 if left == 0 else border)
            output[top + skip_top : top + AUTHORS_CROP, left + skip_left : left + AUTHORS_CROP] = prediction[
                skip_top:, skip_left:
            ]
    return output


def exact_tiler_module(model, images, tile: int) -> np.ndarray:
    """Our exact tiles (core ``tile``, halo from the model), NRRN.forward with both branches in one batch."""
    prev, centre, next_ = (torch.from_numpy(image)[None, None] for image in images)
    output = np.empty(centre.shape[-2:], np.float32)
    for spec in plan_tiles(output.shape, tile, model.halo):
        window = (..., *spec.window)
        pairs = torch.cat(
            [
                torch.cat([prev[window], centre[window]], dim=1),
                torch.cat([next_[window], centre[window]], dim=1),
            ]
        )
        output[spec.core] = model(pairs).mean(dim=0)[0].numpy()[spec.crop]
    return output


def fused_tiles(model, images, tile: int, dtype, use_mkldnn: bool, per_batch: int = 1) -> np.ndarray:
    fused = FusedNRRN(model, torch.device("cpu"), dtype, use_mkldnn)
    steps = run_tiles(fused, images, tile, model.halo, per_batch=per_batch)
    while True:
        try:
            steps.send(None)
        except StopIteration as done:
            return done.value[0]


def variants(depth: int, size: int) -> dict[str, str]:
    """name -> description, in the order of the table."""
    table = {
        "authors": f"authors' network, their tiler ({AUTHORS_CROP} px crops, border K+5={depth + 5}), "
        "one crop and one branch per call, float32",
        "module-their-tiles": "our NRRN module, their tiler, both branches in one call, float32",
        "module-exact-tiles": f"our NRRN module, exact tiles (core {CPU_TILE}, halo from the model), both "
        "branches in one call, float32",
        "fused-fp32-plain": f"fused forward, channels-last, one conv per gate, plain convs, float32, "
        f"core {CPU_TILE}",
        "fused-fp32": f"fused forward + oneDNN fused activations / sums, float32, core {CPU_TILE} "
        "(= precision='float32')",
        "fused-bf16": f"as above in bfloat16 (AMX), core {CPU_TILE} = denoise_slice defaults on this CPU",
    }
    table["fused-bf16-4-tiles"] = "as fused-bf16, 4 tiles per forward pass instead of 1"
    for tile in sorted({128, 240, 608, size} - {CPU_TILE}):
        table[f"fused-bf16-tile{tile}"] = f"fused bfloat16, core {tile}" + (
            " (whole slice)" if tile == size else ""
        )
    return table


def run_variant(name: str, model, images, depth: int) -> np.ndarray:
    """The z-scored output of one variant."""
    if name == "authors":
        network = authors_nrrn(depth, model.width)
        network.load_state_dict(authors_state_dict(model))
        with torch.no_grad():
            return authors_tiler(network, images, depth)
    with torch.inference_mode():
        if name == "module-their-tiles":
            return authors_tiler(model, images, depth, branches_together=True)
        if name == "module-exact-tiles":
            return exact_tiler_module(model, images, CPU_TILE)
    if name == "fused-fp32-plain":
        return fused_tiles(model, images, CPU_TILE, torch.float32, use_mkldnn=False)
    if name == "fused-fp32":
        return fused_tiles(model, images, CPU_TILE, torch.float32, use_mkldnn=True)
    if name == "fused-bf16-4-tiles":
        return fused_tiles(model, images, CPU_TILE, torch.bfloat16, use_mkldnn=True, per_batch=4)
    tile = int(name.removeprefix("fused-bf16-tile")) if name.startswith("fused-bf16-tile") else CPU_TILE
    return fused_tiles(model, images, tile, torch.bfloat16, use_mkldnn=True)


def child(args) -> None:
    """Run one variant: warm up on a crop, time the whole slice, save the uint8 output and the numbers."""
    torch.set_num_threads(args.threads[0])
    model = load_model(args.model_file)
    raw = triplet(args.size)
    stats = [slice_stats(image) for image in raw]
    images = tuple(zscore(image, stat) for image, stat in zip(raw, stats, strict=True))
    warm = tuple(np.ascontiguousarray(image[:WARM_UP, :WARM_UP]) for image in images)
    run_variant(args.variant, model, warm, model.depth)
    start, cpu_start = time.perf_counter(), time.process_time()
    output = run_variant(args.variant, model, images, model.depth)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    denoised = np.clip(np.rint(unzscore(output, stats[1])), 0, 255).astype(np.uint8)
    np.save(args.out, denoised)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).with_suffix(".json").write_text(
        json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": peak_mib})
    )


def run_rounds(names, args, threads: int, model_file: Path, scratch: Path):
    """Wall and CPU seconds per round, peak RSS and the uint8 output of every variant."""
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    peaks = dict.fromkeys(names, 0.0)
    outputs = {}
    for round_index in range(args.repeats):
        for name in names:
            out = scratch / f"{name}.npy"
            child_args = ["--variant", name, "--model-file", str(model_file), "--out", str(out)]
            child_args += ["--size", str(args.size), "--threads", str(threads)]
            subprocess.run([sys.executable, __file__, *child_args], check=True)
            result = json.loads(out.with_suffix(".json").read_text())
            wall[name].append(result["seconds"])
            cpu[name].append(result["cpu_seconds"])
            peaks[name] = max(peaks[name], result["peak_rss_mib"])
            outputs[name] = np.load(out)
            print(
                f"{threads} threads, round {round_index + 1}: {name}: {result['seconds']:.2f} s", flush=True
            )
    return wall, cpu, peaks, outputs


def speed_table(descriptions, wall, cpu, peaks, outputs, size: int, model) -> list[str]:
    megapixels = size**2 / 1e6
    useful_gflop = flop_per_pixel(model.depth, model.width) * size**2 / 1e9
    reference = outputs.get("authors")
    rows = [
        "| variant | Mpx/s | s/Mpx | CPU s/Mpx | useful GFLOP/s | speed-up vs authors (wall / CPU) | "
        "max grey-level diff vs authors | peak RSS MiB | rounds, wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in wall:
        best, best_cpu = min(wall[name]), min(cpu[name])
        speedup = diff = ""
        if reference is not None:
            speedup = f"{min(wall['authors']) / best:.1f}x / {min(cpu['authors']) / best_cpu:.1f}x"
            diff = str(int(np.abs(outputs[name].astype(int) - reference).max()))
        rounds = ", ".join(f"{t:.1f}" for t in wall[name])
        rows.append(
            f"| `{name}`: {descriptions[name]} | {megapixels / best:.3f} | {best / megapixels:.2f} | "
            f"{best_cpu / megapixels:.2f} | {useful_gflop / best:.0f} | {speedup} | {diff} | "
            f"{peaks[name]:.0f} | {rounds} |"
        )
    return rows


# What the variants do not show: alternatives measured once by hand during development (one torch thread,
# process CPU time, a 254 x 254 window = one 240-pixel tile with its halo, K=4, C=32), and why each was
# dropped.
NOTES = """\
What the table's steps change, in order: the tiler (pixels computed per output pixel above); batching both
branches in one call; the fused forward (channels-last, one convolution per gate, oneDNN post-ops for the
activations, the gate sums and r * Ah(P)); then bfloat16 on this CPU's AMX units. In float32 the
convolutions already run near this core's peak, so float32 is conv-bound; in bfloat16 the convolutions take
about a third of the time and the elementwise work (tanh, channel maximum, lerp, concatenation) the rest.

Measured and dropped (one thread, CPU time of one 254 x 254 window, K=4, C=32):
- One wide convolution per input (Ar, Az, Ah, S of P as C->4C; Br, Bz, Bh of X as C->3C), as first planned:
  the C->4C convolution ran at 117 GFLOP/s against 165 for C->C in float32, and the elementwise steps on
  channel slices of its channels-last output were 2 to 7 times slower than on contiguous tensors.
- The one-channel stem as a plain convolution: 92 ms for four 384 x 384 images in bfloat16, 24 ms with the
  input padded to 4 channels (so 8 channels are used: room for the hi/lo split of the input).
- torch.compile of the fused forward (inductor, CPU): 29 s to compile one tile shape, then 13% slower than
  the eager fused forward with oneDNN post-ops (0.273 s against 0.241 s per window in bfloat16).
- float16 on this CPU (AVX512-FP16, no AMX-FP16): 3.9x slower than bfloat16.
- tanh as 2 sigmoid(2x) - 1 (faster kernel, weights doubled) and the channel maximum taken in float32: gains
  within the noise of repeated runs (under 5%), float32 slower: not kept.
- Sharing the centre's first-block convolutions between the branches: at most 3 of the 56 convolutions, and
  it does not combine with the cat(P, X) convolution that computes Ar(P) + Br(X) in one pass.
- Several tiles per forward pass on CPU: see the `fused-bf16-4-tiles` row.
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1000, help="slice side in pixels (default 1000)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all variants; fastest kept")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="torch thread counts, one table each"
    )
    parser.add_argument("--model", type=Path, help="model file (default: the shipped default model)")
    parser.add_argument("--only", nargs="+", help="run only these variants (docs/ is not written)")
    parser.add_argument("--no-write", action="store_true", help="print the tables, do not touch docs/")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--model-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return child(args)

    command = shlex.join(["python", "benchmarks/bench_inference.py", *sys.argv[1:]])
    load_before = os.getloadavg()
    tables = []
    with tempfile.TemporaryDirectory() as scratch:
        model_file = args.model or default_model_path()
        if args.model is None and not model_file.exists():
            torch.manual_seed(0)
            model_file = Path(scratch) / "authors_random_init.pt"
            torch.save(authors_nrrn(4, 32).state_dict(), model_file)
            model_note = (
                "no default model installed yet, so a randomly initialised authors' network (K=4, C=32)"
            )
        else:
            model_note = f"`{model_file.name}`"
        model = load_model(model_file)
        descriptions = variants(model.depth, args.size)
        chosen = args.only or list(descriptions)
        for threads in args.threads:
            wall, cpu, peaks, outputs = run_rounds(chosen, args, threads, model_file, Path(scratch))
            rows = speed_table(descriptions, wall, cpu, peaks, outputs, args.size, model)
            tables += [f"{threads} torch thread{'s' if threads > 1 else ''}:", "", *rows, ""]
    load_after = os.getloadavg()
    crops = len(authors_positions(args.size, AUTHORS_CROP, model.depth + 5)) ** 2
    coverage_authors = crops * AUTHORS_CROP**2 / args.size**2
    coverage_exact = (
        sum(
            (t.window[0].stop - t.window[0].start) * (t.window[1].stop - t.window[1].start)
            for t in plan_tiles((args.size, args.size), CPU_TILE, model.halo)
        )
        / args.size**2
    )
    text = "\n".join(
        [
            f"Command: `{command}`",
            "",
            f"Machine: {cpu_description()}, {os.cpu_count()} cores, torch {torch.__version__}, Python "
            f"{platform.python_version()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
            "after: other jobs shared the cores, so wall times are noisy (with 2 threads, each waits for "
            "the other at every operation) and CPU seconds less so. Data: FlyEM medulla slices "
            f"{CENTRE_SLICE - 1}-{CENTRE_SLICE + 1} (`{DATA.name}`), mirror-tiled to {args.size}x{args.size} "
            f"uint8. Model: {model_note}: depth {model.depth}, width {model.width}, "
            f"{flop_per_pixel(model.depth, model.width) / 1e6:.2f} MFLOP of useful work per output pixel "
            f"(both branches). Pixels computed per output pixel: {coverage_authors:.2f} with the authors' "
            f"tiler, {coverage_exact:.2f} with exact tiles of core {CPU_TILE}.",
            "",
            f"Fastest of {args.repeats} rounds; each variant runs in its own process after a warm-up on a "
            f"{WARM_UP}x{WARM_UP} crop, variants interleaved. Grey-level differences are between uint8 "
            "outputs.",
            "",
            *tables,
            NOTES,
        ]
    )
    print(f"{SECTION}\n\n{text}")
    if not args.only and not args.no_write:
        replace_section(DOC, SECTION, text)


if __name__ == "__main__":
    main()
