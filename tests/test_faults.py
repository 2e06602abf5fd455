"""Faults: non-finite pixels, a cancel in the middle of a slice, disk errors that end in one plain line."""

import errno
import hashlib
import os
import signal
import threading
import types

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_nrrn.cli import main
from napari_nrrn.engine import inference
from napari_nrrn.engine.events import Cancelled, run_to_end
from napari_nrrn.engine.inference import denoise_slice, denoise_stack
from napari_nrrn.engine.normalise import slice_stats
from napari_nrrn.io.writers import iter_write_stack, naming_output, os_error_message
from napari_nrrn.model.nrrn import NRRN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return NRRN(depth=2, width=8)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- non-finite pixels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_non_finite_centre_pixels_stay_and_the_rest_is_the_slice_with_them_at_its_mean(
    model, gala_slices, precision
):
    prev, centre, next_ = (image.astype(np.float32) for image in gala_slices[:3])
    bad = [(10, 20), (60, 150)]
    centre[bad[0]], centre[bad[1]] = np.nan, np.inf
    # Make the finite pixels' mean an integer, so that a pixel set to it z-scores to exactly 0.
    finite = np.isfinite(centre)
    centre[0, 0] -= centre[finite].astype(np.float64).sum() % finite.sum()
    mean, std = slice_stats(centre)
    assert mean == round(mean) and np.isfinite(std)

    got = denoise_slice(model, prev, centre, next_, tile=40, precision=precision)

    filled = centre.copy()
    filled[~finite] = mean
    stats = (slice_stats(prev), (mean, std), slice_stats(next_))
    expected = denoise_slice(model, prev, filled, next_, tile=40, precision=precision, stats=stats)
    assert np.isnan(got[bad[0]]) and got[bad[1]] == np.inf
    assert np.isfinite(got[finite]).all()
    np.testing.assert_array_equal(got[finite], expected[finite])


def test_non_finite_neighbour_pixels_leave_a_finite_output(model, gala_slices):
    prev, centre, next_ = (image.astype(np.float32) for image in gala_slices[:3])
    prev[5:8, 5:8] = np.nan
    next_[50, 50] = -np.inf
    assert np.isfinite(denoise_slice(model, prev, centre, next_, tile=40)).all()


def test_a_slice_without_a_finite_pixel_is_refused_by_name(model, gala_slices):
    prev, centre, next_ = (image.astype(np.float32) for image in gala_slices[:3])
    with pytest.raises(ValueError, match=r"the next slice has no finite pixel \(all NaN or infinite\)"):
        denoise_slice(model, prev, centre, np.full_like(next_, np.nan))
    stack = gala_slices.astype(np.float32)
    stack[2] = np.nan
    with pytest.raises(ValueError, match=r"slice 2 of the stack has no finite pixel"):
        denoise_stack(model, stack, tile=40)[1].compute()


# -- cancelling in the middle of a slice -------------------------------------------------------------------


def test_a_cancel_stops_within_one_tile_and_leaves_no_file(model, tmp_path, stack_file, monkeypatch):
    from napari_nrrn.plugin._denoise_jobs import STOPPED, _drive

    before = _digest(stack_file)
    stop = threading.Event()
    passes = {"all": 0, "after_stop": 0}
    forward = inference.FusedNRRN.__call__

    def counted(self, *args, **kwargs):
        passes["all"] += 1
        passes["after_stop"] += stop.is_set()
        if passes["all"] == 20:  # 15 tiles per slice at tile 40: the 5th tile of slice 1
            stop.set()
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(inference.FusedNRRN, "__call__", counted)
    out = tmp_path / "cancelled.tif"
    stack = tifffile.imread(stack_file)
    # As the widget wires it: the job's stop flag is the engine's should_stop.
    writing = iter_write_stack(denoise_stack(model, stack, tile=40, should_stop=stop.is_set), out)

    assert run_to_end(_drive(writing, stop, stop_by_closing=True)) is STOPPED
    assert passes == {"all": 20, "after_stop": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noisy.tif"]
    assert _digest(stack_file) == before


def test_should_stop_is_asked_before_every_batch_of_tiles(model, gala_slices, monkeypatch):
    passes, answers = [], []
    forward = inference.FusedNRRN.__call__
    monkeypatch.setattr(
        inference.FusedNRRN, "__call__", lambda self, *a, **k: passes.append(None) or forward(self, *a, **k)
    )

    def stop_on_third_question():
        answers.append(len(answers) == 2)
        return answers[-1]

    with pytest.raises(Cancelled, match="denoising was cancelled"):
        denoise_stack(model, gala_slices, tile=40, should_stop=stop_on_third_question)[0].compute()
    assert (len(answers), len(passes)) == (3, 2)


def test_ctrl_c_stops_the_cli_within_one_tile_and_leaves_no_file(
    tmp_path, stack_file, model_file, monkeypatch, capsys
):
    from napari_nrrn.cli import denoise as cli_denoise

    before = _digest(stack_file)
    flags = []

    class RecordedEvent(threading.Event):
        def __init__(self):
            super().__init__()
            flags.append(self)

    passes = []
    forward = inference.FusedNRRN.__call__

    def interrupted(self, *args, **kwargs):
        passes.append(flags[0].is_set())
        if len(passes) == 20:  # in slice 1, as a real Ctrl-C would come
            os.kill(os.getpid(), signal.SIGINT)
            assert flags[0].wait(timeout=60)  # this thread is dask's: hold the pass until the CLI has reacted
        return forward(self, *args, **kwargs)

    slice_stopped, stopped_by = threading.Event(), []
    run_slice = inference.run_unless_stopped

    def watched(events, should_stop):
        try:
            return run_slice(events, should_stop)
        except BaseException as error:
            stopped_by.append(type(error))
            slice_stopped.set()
            raise

    monkeypatch.setattr(inference, "run_unless_stopped", watched)
    # Only the CLI's own stop flag is recorded: patching threading.Event itself would record every event
    # any thread (dask's pool, tqdm) makes.
    monkeypatch.setattr(cli_denoise, "threading", types.SimpleNamespace(Event=RecordedEvent))
    monkeypatch.setattr(inference.FusedNRRN, "__call__", interrupted)
    out = tmp_path / "interrupted.tif"
    # A napari viewer of an earlier test may have left its own SIGINT handler: Ctrl-C as in a shell.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main(["denoise", str(stack_file), str(out), "--model", str(model_file), "--tile", "40"])
    finally:
        signal.signal(signal.SIGINT, previous)

    assert code == 130

    assert capsys.readouterr().err.splitlines()[-1] == "napari-nrrn denoise: cancelled"
    assert slice_stopped.wait(timeout=60)  # the slice in flight stops in its own thread
    assert stopped_by == [Cancelled]
    assert len(passes) == 20 and not any(passes)  # no forward pass began after the stop
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noisy.tif", "tiny.pt"]
    assert _digest(stack_file) == before


# -- disk errors -------------------------------------------------------------------------------------------


def _fail_on_second_call(error):
    calls = []

    def fail(*args, **kwargs):
        calls.append(None)
        if len(calls) == 2:
            raise error
        return fail.original(*args, **kwargs)

    return fail


def test_full_disk_writing_tiff_is_one_line_exit_2_and_nothing_left(
    tmp_path, stack_file, model_file, monkeypatch, capsys
):
    before = _digest(stack_file)
    fail = _fail_on_second_call(OSError(errno.ENOSPC, "No space left on device"))
    fail.original = tifffile.TiffWriter.write
    monkeypatch.setattr(tifffile.TiffWriter, "write", fail)
    out = tmp_path / "denoised.tif"

    assert main(["denoise", str(stack_file), str(out), "--model", str(model_file), "--tile", "40"]) == 2

    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"napari-nrrn denoise: error: no space left on device writing {out}: "
        "free space or write to another disk"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noisy.tif", "tiny.pt"]
    assert _digest(stack_file) == before


def test_vanished_share_writing_zarr_names_the_output_not_its_temporary_chunk(
    tmp_path, stack_file, model_file, monkeypatch, capsys
):
    out = tmp_path / "denoised.ome.zarr"

    def fail(self, key, value):
        chunk = tmp_path / f"{out.name}.partial-{os.getpid()}" / "0" / "c" / "1"
        raise OSError(errno.EIO, "Input/output error", str(chunk))

    monkeypatch.setattr(zarr.Array, "__setitem__", fail)
    assert main(["denoise", str(stack_file), str(out), "--model", str(model_file), "--tile", "40"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"napari-nrrn denoise: error: Input/output error on {out}: check the disk or the network share "
        "(is it still mounted?), then run again"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noisy.tif", "tiny.pt"]


def test_os_error_messages_name_the_file_and_what_to_do(tmp_path):
    partial, out = tmp_path / "out.zarr.partial", tmp_path / "out.zarr"
    inside = naming_output(OSError(errno.EACCES, "Permission denied", str(partial / "0" / "c")), partial, out)
    assert isinstance(inside, PermissionError) and inside.filename == str(out)
    assert os_error_message(inside) == (
        f"permission denied on {out} (Permission denied): "
        "choose a folder you can write to, or a file you can read"
    )
    source = OSError(errno.ENOENT, "No such file or directory", "/mnt/share/stack.tif")
    assert naming_output(source, partial, out) is source
    assert os_error_message(source, out) == (
        "/mnt/share/stack.tif does not exist (No such file or directory): "
        "check the path, and that its disk or network share is still mounted"
    )
    assert naming_output(OSError(errno.ENOSPC, "No space left"), partial, out).filename == str(out)
    ours = FileExistsError("out.zarr already exists: choose another name")
    assert naming_output(ours, partial, out) is ours


def test_distributed_full_disk_keeps_the_partial_output_and_says_so(
    tmp_path, stack_file, model_file, monkeypatch, capsys
):
    from distributed import LocalCluster

    from napari_nrrn.engine.distributed import partial_path

    def full(self, key, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "denoised.ome.zarr"
    # Worker threads in this process, so that the patched zarr reaches them.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        monkeypatch.setattr(zarr.Array, "__setitem__", full)
        arguments = ["--model", str(model_file), "--tile", "40", "--scheduler", cluster.scheduler_address]
        assert main(["denoise", str(stack_file), str(out), *arguments]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"napari-nrrn denoise: error: no space left on device writing {out}: free space or write to another "
        f"disk; the slices written so far are kept in {partial_path(out)}, and the same command resumes them"
    )
    assert not out.exists() and partial_path(out).is_dir()


def test_the_dock_reads_any_system_error_as_one_plain_sentence():
    from napari_nrrn.plugin._denoise_jobs import plain_message

    share = OSError(errno.EIO, "Input/output error", "/mnt/share/out.tif")
    assert plain_message(share, "denoising gala") == (
        "Error while denoising gala: Input/output error on /mnt/share/out.tif: check the disk or the network "
        "share (is it still mounted?), then run again."
    )
