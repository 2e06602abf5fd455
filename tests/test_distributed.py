"""Distributed denoising on a 2-process LocalCluster: same result as one process, resumable, no gather."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from distributed import Client, LocalCluster

from napari_nrrn.cli import main as cli_main
from napari_nrrn.engine import distributed as distributed_engine
from napari_nrrn.engine.distributed import (
    RECORDS_DIR,
    RUN_FILE,
    _worker_rank,
    denoise_distributed,
    iter_denoise_distributed,
    partial_path,
)
from napari_nrrn.engine.events import run_to_end
from napari_nrrn.engine.inference import denoise_stack
from napari_nrrn.io import ome_zarr_writer
from napari_nrrn.io.stack import open_stack, voxel_size
from napari_nrrn.io.writers import write_stack
from napari_nrrn.model.checkpoint import save_model
from napari_nrrn.model.nrrn import NRRN

DEPTH, CHUNK = 16, 2  # 8 chunks of 2 slices; 2 workers hold at most 4 in flight
VOXEL = (10.0, 10.0, 10.0)


@pytest.fixture(scope="module")
def job(tmp_path_factory, shared_data):
    """A small real stack on disk, a tiny model file, and the single-process result."""
    folder = tmp_path_factory.mktemp("distributed")
    crop = tifffile.imread(shared_data / "fibsem_flyem_gala_test_50x100x200.tif")[:DEPTH, :40, :56]
    stack_path = folder / "gala.tif"
    write_stack(crop, stack_path, voxel_size=VOXEL)
    torch.manual_seed(0)
    model = NRRN(depth=1, width=4)
    model_path = save_model(model, folder / "tiny.pt")
    expected = np.asarray(denoise_stack(model, open_stack(stack_path)))
    return stack_path, model_path, expected


def _local_cluster():
    return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)


@pytest.fixture(scope="module")
def client():
    """One 2-process cluster shared by the tests that need no fresh one (a start costs seconds)."""
    with _local_cluster() as cluster, Client(cluster) as client:
        yield client


def _chunk_range(record_file):
    return tuple(int(n) for n in record_file.stem.split("-"))


def _slice_file(ome_zarr, z):
    """The file of slice z in the writers' OME-Zarr layout (Zarr v3, one chunk per slice)."""
    return ome_zarr / "0" / "c" / str(z) / "0" / "0"


def test_resume_skips_verified_chunks_and_equals_single_process(job, client, tmp_path):
    stack_path, model_path, expected = job
    output = tmp_path / "out.ome.zarr"
    with _local_cluster() as cluster, Client(cluster, set_as_default=False) as crashing:
        events = iter_denoise_distributed(crashing, model_path, stack_path, output, chunk_slices=CHUNK)
        assert next(events).done == 0
        next(events)  # one chunk written, then a cancel (the generator closed) with the others in flight
        events.close()
    # The cluster is gone: whatever it wrote is on disk. The output does not look finished.
    assert not output.exists()
    partial = partial_path(output)
    records = sorted((partial / RECORDS_DIR).glob("*.json"))
    assert 1 <= len(records) < DEPTH // CHUNK
    # Damage one recorded chunk after its record was written: verification must catch it.
    damaged = _chunk_range(records[0])
    zarr.open_array(str(partial / "0"), mode="r+")[damaged[0]] = 0
    kept = [_chunk_range(record) for record in records[1:]]
    written = {
        z: _slice_file(partial, z).stat().st_mtime_ns for start, stop in kept for z in range(start, stop)
    }

    # Another cluster resumes, as after a crash.
    run = run_to_end(iter_denoise_distributed(client, model_path, stack_path, output, chunk_slices=CHUNK))

    assert (run.chunks_skipped, run.chunks_computed) == (len(kept), DEPTH // CHUNK - len(kept))
    # The verified chunks' slices were not written again; all others were written by this run.
    assert {z: _slice_file(output, z).stat().st_mtime_ns for z in written} == written
    first_run_ended = max(written.values())
    rewritten = [z for z in range(DEPTH) if z not in written]
    assert all(_slice_file(output, z).stat().st_mtime_ns > first_run_ended for z in rewritten)
    result = open_stack(output)
    np.testing.assert_array_equal(result.compute(), expected)
    assert result.dtype == expected.dtype
    assert voxel_size(output) == VOXEL
    assert not partial.exists()
    assert not (output / RECORDS_DIR).exists() and not (output / RUN_FILE).exists()


def test_each_worker_builds_the_fused_network_once(job, tmp_path, monkeypatch):
    """8 chunks of 2 slices on one in-process worker: one FusedNRRN for all 16 slices, not one per slice,
    and the same pixels as one process."""
    from napari_nrrn.engine import session as session_module

    stack_path, model_path, expected = job
    built = []

    class Counted(session_module.FusedNRRN):
        def __init__(self, *args, **kwargs):
            built.append(args[1:])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(session_module, "FusedNRRN", Counted)
    output = tmp_path / "out.zarr"
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, Client(cluster, set_as_default=False) as local:
        run = run_to_end(iter_denoise_distributed(local, model_path, stack_path, output, chunk_slices=CHUNK))
    assert run.chunks_computed == DEPTH // CHUNK
    assert len(built) == 1
    np.testing.assert_array_equal(open_stack(output).compute(), expected)


def test_partial_output_of_another_job_is_not_resumed(job, client, tmp_path):
    stack_path, model_path, expected = job
    output = tmp_path / "out.zarr"
    partial = partial_path(output)
    events = iter_denoise_distributed(client, model_path, stack_path, output, chunk_slices=CHUNK)
    next(events)
    next(events)
    events.close()  # returns once the chunks running on the workers have finished
    job_record = json.loads((partial / RUN_FILE).read_text())
    recorded = len(list((partial / RECORDS_DIR).glob("*.json")))
    # A different chunking is a different job: its records describe other ranges.
    run = run_to_end(iter_denoise_distributed(client, model_path, stack_path, output, chunk_slices=3))
    assert job_record["chunk_slices"] == CHUNK
    assert 1 <= recorded < DEPTH // CHUNK
    assert (run.chunks_skipped, run.chunks_computed) == (0, -(-DEPTH // 3))
    np.testing.assert_array_equal(open_stack(output).compute(), expected)


def test_distributed_output_must_be_zarr(job, tmp_path):
    stack_path, model_path, _ = job
    with pytest.raises(ValueError, match=r"out\.tif.*name the output \.zarr or \.ome\.zarr"):
        denoise_distributed(model_path, stack_path, tmp_path / "out.tif", workers=2)


def test_existing_output_is_refused_without_overwrite(job, tmp_path):
    stack_path, model_path, _ = job
    (tmp_path / "out.zarr").mkdir()
    with pytest.raises(FileExistsError, match=r"out\.zarr already exists.*overwrite"):
        denoise_distributed(model_path, stack_path, tmp_path / "out.zarr", workers=2)


def test_cli_workers_and_scheduler_equal_the_single_process_cli(job, client, tmp_path, capsys):
    stack_path, model_path, _ = job
    outputs = {name: tmp_path / f"{name}.ome.zarr" for name in ("one", "workers", "scheduler")}
    arguments = ["--model", str(model_path)]
    assert cli_main(["denoise", str(stack_path), str(outputs["one"]), *arguments]) == 0
    assert cli_main(["denoise", str(stack_path), str(outputs["workers"]), *arguments, "--workers", "2"]) == 0
    address = client.scheduler.address
    assert (
        cli_main(["denoise", str(stack_path), str(outputs["scheduler"]), *arguments, "--scheduler", address])
        == 0
    )
    # 16 slices in chunks of the default 8, nothing to resume
    assert capsys.readouterr().err.count("2 chunks denoised, 0 already written") == 2
    single = open_stack(outputs["one"]).compute()
    for name in ("workers", "scheduler"):
        np.testing.assert_array_equal(open_stack(outputs[name]).compute(), single)
        assert voxel_size(outputs[name]) == voxel_size(outputs["one"]) == VOXEL


def test_cli_refuses_workers_with_tiff_output_and_both_flags(job, tmp_path, capsys):
    stack_path, model_path, _ = job
    common = ["denoise", str(stack_path), str(tmp_path / "out.tif"), "--model", str(model_path)]
    assert cli_main([*common, "--workers", "2"]) == 2
    assert "name the output .zarr or .ome.zarr" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main([*common, "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_scheduler_without_workers_is_a_clear_error(job, tmp_path, monkeypatch):
    stack_path, model_path, _ = job
    monkeypatch.setattr(distributed_engine, "WORKER_WAIT_S", 0.5)
    with LocalCluster(n_workers=0, dashboard_address=None) as empty:
        address = empty.scheduler_address
        with pytest.raises(ValueError, match=f"scheduler at {address} has no workers.*dask worker {address}"):
            denoise_distributed(model_path, stack_path, tmp_path / "out.zarr", scheduler=address)
    assert not partial_path(tmp_path / "out.zarr").exists()


def test_either_workers_or_scheduler():
    with pytest.raises(ValueError, match="either workers .* or scheduler"):
        denoise_distributed("m.pt", "in.tif", "out.zarr", workers=2, scheduler="tcp://127.0.0.1:8786")


class _NamedWorker:
    def __init__(self, name):
        self.name = name


@pytest.mark.parametrize(("name", "rank"), [(0, 0), (3, 3), ("gpu-node-1", 1), ("tcp://10.0.0.2:4000-2", 2)])
def test_worker_rank_from_local_and_dask_worker_names(name, rank):
    assert _worker_rank(_NamedWorker(name)) == rank


CRASHING_RUN = """
import sys, time
from distributed import Client, LocalCluster
from napari_nrrn.engine.distributed import iter_denoise_distributed
from napari_nrrn.io import ome_zarr_writer

ome_zarr_writer.MIN_LEVEL_SIDE = int(sys.argv[4])
if __name__ == "__main__":
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    events = iter_denoise_distributed(Client(cluster), *sys.argv[1:4], chunk_slices=int(sys.argv[5]))
    next(events)
    next(events)
    print("one chunk written", flush=True)
    time.sleep(600)  # killed here, chunks still in flight
"""


def _levels(path):
    group = zarr.open_group(str(path), mode="r")
    return [group[str(level)][:] for level in range(len(list(group.array_keys())))]


def test_sigkill_then_resume_gives_the_single_process_pyramid(job, client, tmp_path, monkeypatch):
    """A crash (SIGKILL of the client, its scheduler and its workers), then a resume: every pyramid level
    equals the one-process writer's; a recorded chunk damaged at its smallest level is found and redone."""
    stack_path, model_path, expected = job
    min_side = 8  # 40x56 slices: levels of 40x56, 20x28 and 10x14
    monkeypatch.setattr(ome_zarr_writer, "MIN_LEVEL_SIDE", min_side)
    output = tmp_path / "out.ome.zarr"
    script = tmp_path / "crashing_run.py"
    script.write_text(CRASHING_RUN)
    arguments = [model_path, stack_path, output, min_side, CHUNK]
    repo = Path(__file__).resolve().parents[1]
    crashing = subprocess.Popen(
        [sys.executable, script, *map(str, arguments)],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the client, the scheduler and the workers
    )
    try:
        assert crashing.stdout.readline() == "one chunk written\n"
    finally:
        os.killpg(crashing.pid, signal.SIGKILL)
        crashing.wait()
    for _ in range(100):  # until no process of the group is left to write into the partial output
        try:
            os.killpg(crashing.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the killed run survive")

    assert not output.exists()
    partial = partial_path(output)
    records = sorted((partial / RECORDS_DIR).glob("*.json"))
    assert 1 <= len(records) < DEPTH // CHUNK
    damaged_start, _ = _chunk_range(records[0])
    smallest = zarr.open_array(str(partial / "2"), mode="r+")
    smallest[damaged_start] = smallest[damaged_start] + 1

    run = run_to_end(iter_denoise_distributed(client, model_path, stack_path, output, chunk_slices=CHUNK))

    assert (run.chunks_skipped, run.chunks_computed) == (len(records) - 1, DEPTH // CHUNK - len(records) + 1)
    single = write_stack(expected, tmp_path / "single.ome.zarr", voxel_size=VOXEL)
    levels = _levels(output)
    assert [level.shape for level in levels] == [(DEPTH, 40, 56), (DEPTH, 20, 28), (DEPTH, 10, 14)]
    for resumed, one_process in zip(levels, _levels(single), strict=True):
        np.testing.assert_array_equal(resumed, one_process)
    resumed_meta, single_meta = (
        json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
        for path in (output, single)
    )
    assert resumed_meta["datasets"] == single_meta["datasets"] and resumed_meta["axes"] == single_meta["axes"]
    assert not partial.exists() and not (output / RECORDS_DIR).exists()


def test_cli_ngff_04_pyramid_from_one_process_and_from_a_cluster(
    job, client, tmp_path, monkeypatch, capsys
):
    """``--ngff 0.4``: Zarr v2 at every level, the same pixels from one process and from the cluster."""
    stack_path, model_path, expected = job
    monkeypatch.setattr(ome_zarr_writer, "MIN_LEVEL_SIDE", 8)
    one, cluster = tmp_path / "one.ome.zarr", tmp_path / "cluster.ome.zarr"
    arguments = ["--model", str(model_path), "--ngff", "0.4"]
    assert cli_main(["denoise", str(stack_path), str(one), *arguments]) == 0
    address = client.scheduler.address
    assert cli_main(["denoise", str(stack_path), str(cluster), *arguments, "--scheduler", address]) == 0
    for output in (one, cluster):
        attributes = json.loads((output / ".zattrs").read_text())
        assert attributes["multiscales"][0]["version"] == "0.4" and not (output / "zarr.json").exists()
        assert voxel_size(output) == VOXEL
    levels = _levels(one)
    assert len(levels) == 3
    np.testing.assert_array_equal(levels[0], expected)
    for from_cluster, from_one in zip(_levels(cluster), levels, strict=True):
        np.testing.assert_array_equal(from_cluster, from_one)
    assert cli_main(["denoise", str(stack_path), str(tmp_path / "out.tif"), *arguments]) == 2
    assert "an NGFF version applies to OME-Zarr output" in capsys.readouterr().err
