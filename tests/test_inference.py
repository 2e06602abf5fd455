"""Inference: exact tiling, the fused forward against the network, slice and stack denoising."""

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch

from napari_nrrn.engine import session as session_module
from napari_nrrn.engine.events import Progress
from napari_nrrn.engine.fused import FusedNRRN
from napari_nrrn.engine.inference import (
    check_stack,
    denoise_slice,
    denoise_stack,
    inference_dtype,
    iter_denoise_slice,
    iter_denoise_slices,
    slice_triplet,
)
from napari_nrrn.engine.normalise import slice_stats, zscore
from napari_nrrn.engine.session import cast_like
from napari_nrrn.engine.tiling import plan_tiles
from napari_nrrn.model.nrrn import NRRN


@pytest.fixture(scope="module")
def gala(shared_data) -> np.ndarray:
    """A real, noisy FIB-SEM stack (FlyEM via gala), 8 slices of 100 x 200, uint8."""
    return tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")[10:18]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> NRRN:
    torch.manual_seed(0)
    return NRRN(depth=2, width=8).eval()


def reference_denoise(model, prev, centre, next_):
    """DESIGN.md's inference on the whole image with NRRN.forward: z-score each slice, average both branches,
    de-normalise with the centre's statistics (float64, not cast)."""
    images = [torch.from_numpy(zscore(s, slice_stats(s))) for s in (prev, centre, next_)]
    pairs = torch.stack([torch.stack([images[0], images[1]]), torch.stack([images[2], images[1]])])
    with torch.no_grad():
        output = model(pairs).mean(dim=0)[0].double().numpy()
    mean, std = slice_stats(centre)
    return output * std + mean


def test_tile_plan_covers_the_image_once_with_windows_inside_it():
    for shape, tile, halo in [((100, 200), 37, 5), ((1000, 1000), 240, 7), ((30, 9), 7, 7), ((5, 50), 64, 3)]:
        tiles = plan_tiles(shape, tile, halo)
        covered = np.zeros(shape, int)
        windows = {
            (t.window[0].stop - t.window[0].start, t.window[1].stop - t.window[1].start) for t in tiles
        }
        assert len(windows) == 1  # one window shape: tiles batch together
        for t in tiles:
            covered[t.core] += 1
            for axis, length in enumerate(shape):
                window, core = t.window[axis], t.core[axis]
                assert 0 <= window.start and window.stop <= length
                assert core.stop - core.start <= tile
                # Each core lies `halo` inside its window except where the window meets the image border.
                assert core.start - window.start >= halo or window.start == 0
                assert window.stop - core.stop >= halo or window.stop == length
                assert t.crop[axis] == slice(core.start - window.start, core.stop - window.start)
        assert (covered == 1).all()


@pytest.mark.parametrize(
    ("tile", "crop"), [(5, (40, 60)), (13, (100, 200)), (37, (100, 200)), (64, (100, 200))]
)
def test_tiled_output_equals_whole_image_output(model, gala, tile, crop):
    # Float input: the outputs are not rounded, so they compare in z-score units. Tile 5 is the halo.
    prev, centre, next_ = (s[: crop[0], : crop[1]].astype(np.float32) for s in gala[3:6])
    std = slice_stats(centre)[1]
    whole, whole_blocks = denoise_slice(
        model, prev, centre, next_, tile=max(crop), precision="float32", blocks=True
    )
    tiled, tiled_blocks = denoise_slice(
        model, prev, centre, next_, tile=tile, precision="float32", blocks=True
    )
    assert len(plan_tiles(centre.shape, tile, model.halo)) > 1
    assert np.abs(tiled - whole).max() / std < 1e-4
    for a, b in zip(tiled_blocks, whole_blocks, strict=True):
        assert np.abs(a - b).max() / std < 1e-4


def test_denoise_slice_matches_the_network_on_the_whole_image(model, gala):
    prev, centre, next_ = (s.astype(np.float32) for s in gala[0:3])
    expected = reference_denoise(model, prev, centre, next_)
    got = denoise_slice(model, prev, centre, next_, tile=48, precision="float32")
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() / slice_stats(centre)[1] < 1e-4
    assert np.abs(expected - centre).mean() > 1.0  # the model does change the image


def test_uint8_output_is_the_rounded_clipped_float_output(model, gala):
    prev, centre, next_ = gala[0:3]
    expected = np.clip(np.rint(reference_denoise(model, prev, centre, next_)), 0, 255)
    got = denoise_slice(model, prev, centre, next_, precision="float32")
    assert got.dtype == np.uint8
    different = got.astype(int) != expected
    # Only values within float rounding of a .5 boundary may round the other way.
    assert np.abs(got.astype(int) - expected).max() <= 1 and different.mean() < 1e-3


def test_integer_outputs_are_clipped_to_the_dtype_and_floats_are_not():
    image = np.array([[-3.4, 0.5, 1.6], [254.5, 300.0, 70000.2]])
    np.testing.assert_array_equal(
        cast_like(image, np.dtype(np.uint8)), [[0, 0, 2], [254, 255, 255]]
    )
    np.testing.assert_array_equal(
        cast_like(image, np.dtype(np.int16)), [[-3, 0, 2], [254, 300, 32767]]
    )
    np.testing.assert_array_equal(cast_like(image, np.dtype(np.float32)), image.astype(np.float32))


def test_int16_detector_data_keeps_its_dtype(model, shared_data):
    frame = tifffile.imread(shared_data / "fibsem_raw_dat_gemini500_SnC_InLens_ESB_2x1000x1000_int16.tif")
    esb, inlens = frame[1, :96, :96], frame[0, :96, :96]
    out = denoise_slice(model, esb, inlens, esb, precision="float32")
    assert out.dtype == np.int16 and out.shape == (96, 96)
    expected = np.rint(reference_denoise(model, esb, inlens, esb))
    assert np.abs(out - expected).max() <= 1


@pytest.mark.parametrize("every_depth", [False, True])
@pytest.mark.parametrize("use_mkldnn", [True, False])
def test_fused_forward_equals_the_network_with_per_depth_outputs(use_mkldnn, every_depth):
    torch.manual_seed(1)
    model = NRRN(depth=3, width=8, every_depth=every_depth).eval()
    x = torch.randn(2, 3, 40, 52)
    prev, centre, next_ = x[:, :1], x[:, 1:2], x[:, 2:]
    pairs = torch.cat([torch.cat([prev, centre], 1), torch.cat([next_, centre], 1)])
    with torch.no_grad():
        expected = model(pairs).unflatten(0, (2, 2)).mean(0)
        expected_depths = [z.unflatten(0, (2, 2)).mean(0) for z in model.depth_outputs(pairs)]
    fused = FusedNRRN(model, torch.device("cpu"), torch.float32, use_mkldnn=use_mkldnn)
    got, depths = fused(prev, centre, next_, blocks=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert len(depths) == 3
    for a, b in zip(depths, expected_depths, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(depths[-1], got, atol=0, rtol=0)
    # Without blocks=True the same output, and a cut's fused forward is that depth's output.
    torch.testing.assert_close(fused(prev, centre, next_)[0], got, atol=0, rtol=0)
    cut, _ = FusedNRRN(model.cut(2), torch.device("cpu"), torch.float32, use_mkldnn=use_mkldnn)(
        prev, centre, next_
    )
    torch.testing.assert_close(cut, expected_depths[1], atol=1e-5, rtol=0)


def test_default_precision_stays_within_one_grey_level_of_float32(model, gala):
    exact = denoise_slice(model, *gala[2:5], precision="float32")
    fast = denoise_slice(model, *gala[2:5])  # bfloat16 on CPUs with native support, else float32
    assert np.abs(fast.astype(int) - exact).max() <= 1


@pytest.mark.parametrize("every_depth", [False, True])
def test_blocks_are_the_cut_models_outputs(gala, every_depth):
    torch.manual_seed(0)
    model = NRRN(depth=2, width=8, every_depth=every_depth).eval()
    prev, centre, next_ = (s.astype(np.float32) for s in gala[4:7])
    output, blocks = denoise_slice(model, prev, centre, next_, tile=64, precision="float32", blocks=True)
    assert len(blocks) == model.depth and all(b.dtype == np.float32 for b in blocks)
    first = denoise_slice(model.cut(1), prev, centre, next_, tile=64, precision="float32")
    np.testing.assert_allclose(blocks[0], first, atol=1e-3)
    np.testing.assert_array_equal(blocks[-1], output)
    # The two kinds of model differ at depth 1 only by the tail applied there.
    with torch.no_grad():
        tail_at_depth_1 = NRRN(depth=2, width=8, every_depth=not every_depth)
    tail_at_depth_1.load_state_dict(model.state_dict())
    other = denoise_slice(tail_at_depth_1.cut(1), prev, centre, next_, tile=64, precision="float32")
    assert np.abs(other - first).mean() > 0.01


def test_iter_denoise_slice_reports_tiles_and_returns_the_slice(model, gala):
    steps = iter_denoise_slice(model, *gala[0:3], tile=40, precision="float32")
    events = []
    while True:
        try:
            events.append(next(steps))
        except StopIteration as done:
            result = done.value
            break
    assert all(isinstance(e, Progress) and e.stage == "denoise" for e in events)
    assert [e.done for e in events] == list(range(1, 16)) and {e.total for e in events} == {15}  # 3 x 5 tiles
    np.testing.assert_array_equal(result, denoise_slice(model, *gala[0:3], tile=40, precision="float32"))


def test_bad_tiles_precisions_and_slices_are_refused(model, gala):
    with pytest.raises(
        ValueError, match="tile size 4 is smaller than the model's halo of 5 pixels: use a tile of"
    ):
        denoise_slice(model, *gala[0:3], tile=4)
    with pytest.raises(ValueError, match="tile size 3 .* at least 5"):
        denoise_stack(model, gala, tile=3)
    with pytest.raises(ValueError, match="precision must be 'auto' or one of"):
        denoise_slice(model, *gala[0:3], precision="int8")
    with pytest.raises(ValueError, match=r"next has shape \(100, 199\), the centre slice \(100, 200\)"):
        denoise_slice(model, gala[0], gala[1], gala[2][:, 1:])
    with pytest.raises(ValueError, match="prev must be a 2-D slice"):
        denoise_slice(model, gala[0:2], gala[1], gala[2])


def test_check_stack_needs_at_least_two_slices(gala):
    with pytest.raises(ValueError, match="a stack of at least 2 slices is needed"):
        check_stack(gala[0])
    with pytest.raises(ValueError, match="a stack of at least 2 slices is needed .* got 1"):
        check_stack(gala[:1])
    check_stack(gala[:2])


def test_gpu_out_of_memory_retries_with_half_the_tile(model, gala, monkeypatch):
    calls = []
    original = FusedNRRN.__call__

    def first_call_runs_out_of_memory(self, *args, **kwargs):
        calls.append(args[0].shape[-1])
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FusedNRRN, "__call__", first_call_runs_out_of_memory)
    with pytest.warns(
        RuntimeWarning, match="GPU out of memory with 80-pixel tiles: retrying .* 40-pixel tiles"
    ):
        out = denoise_slice(model, *gala[0:3], tile=80, precision="float32")
    monkeypatch.undo()
    window_width = [plan_tiles(gala[0].shape, tile, model.halo)[0].window[1] for tile in (80, 40)]
    assert calls[:2] == [w.stop - w.start for w in window_width]
    np.testing.assert_array_equal(out, denoise_slice(model, *gala[0:3], tile=40, precision="float32"))


class CountingStack:
    """A (Z, Y, X) array that records which slices are read."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.read = []

    def __getitem__(self, index):
        z = index[0] if isinstance(index, tuple) else index
        self.read.extend(range(self.shape[0])[z] if isinstance(z, slice) else [z])
        return self.data[index]


def test_denoise_stack_is_lazy_and_reads_three_slices_per_output_slice(model, gala):
    counting = CountingStack(gala)
    lazy = denoise_stack(model, da.from_array(counting, chunks=(1, -1, -1)), tile=64, precision="float32")
    assert counting.read == []
    assert isinstance(lazy, da.Array) and lazy.shape == gala.shape and lazy.dtype == gala.dtype
    assert lazy.chunks[0] == (1,) * len(gala)
    for z, neighbours in [(4, (3, 5)), (0, (1, 1)), (7, (6, 6))]:
        counting.read.clear()
        got = lazy[z].compute(scheduler="synchronous")
        assert sorted(set(counting.read)) == sorted({z, *neighbours})
        expected = denoise_slice(
            model, gala[neighbours[0]], gala[z], gala[neighbours[1]], tile=64, precision="float32"
        )
        np.testing.assert_array_equal(got, expected)


def test_denoise_stack_of_numpy_and_iter_denoise_slices_agree(model, gala):
    stack = gala[:4]
    lazy = denoise_stack(model, stack, precision="float32")
    computed = lazy.compute()
    assert computed.dtype == np.uint8 and computed.shape == stack.shape
    rechunked = denoise_stack(model, da.from_array(stack, chunks=(2, 50, 100)), precision="float32")
    assert rechunked.chunks == ((1, 1, 1, 1), (100,), (200,))
    np.testing.assert_array_equal(rechunked.compute(), computed)
    pairs = list(iter_denoise_slices(model, stack, precision="float32"))
    assert [z for z, _ in pairs] == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.stack([s for _, s in pairs]), computed)
    assert [z for z, _ in iter_denoise_slices(model, stack, zs=[2], precision="float32")] == [2]
    prev, centre, next_ = slice_triplet(stack, 3)
    np.testing.assert_array_equal(prev, stack[2])
    np.testing.assert_array_equal(next_, stack[2])
    with pytest.raises(ValueError, match="slice 4 is outside the stack of 4 slices"):
        slice_triplet(stack, 4)


def test_precision_choice():
    assert inference_dtype("cpu", "float32") == torch.float32
    assert inference_dtype("cuda", "auto") == torch.float16
    assert inference_dtype("cpu", "auto") in (torch.bfloat16, torch.float32)


def test_a_stack_builds_the_fast_network_once(model, gala, monkeypatch):
    """One inference session per stack, not a FusedNRRN per slice."""
    built = []
    original = session_module.FusedNRRN

    def counted(*args, **kwargs):
        built.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(session_module, "FusedNRRN", counted)
    denoise_stack(model, gala[:4], precision="float32").compute(scheduler="threads")
    list(iter_denoise_slices(model, gala[:3], precision="float32"))
    assert len(built) == 2
