"""Batch denoising on a dask.distributed cluster: many worker processes, one GPU each, memory flat in depth.

The client creates the OME-Zarr output up front under a partial name, with the final shape, dtype, chunks of
one slice, every pyramid level and the metadata (``io.ome_zarr_writer``). Each task denoises a chunk of ``n``
slices, reading ``n + 2`` input slices (the one-slice z halo), and writes its slices and their downsampled
levels straight into the output: no pixels travel through the client.
Every worker loads the model once, in a :class:`ModelPlugin`, and keeps it for all its tasks, with one
``InferenceSession`` (the fused network, built once) per tile and precision the tasks ask for.

A task writes a completion record for its chunk AFTER the data: the chunk's range and a checksum of the
slices it wrote at each level. In a re-run of the same job (same input, model, chunking) on the partial
output, the task of a recorded chunk first verifies the record against its slices on disk at every level (on
its worker: the client reads no pixels) and computes nothing when they match, so a crash or a cancel loses
only the chunks in flight. When every chunk is recorded, the records are removed and the partial output is
renamed to its final name: an unfinished output never looks finished. A failed job (a full disk, a vanished
share) also keeps it, and an ``OSError`` about a file in it names the final output instead.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
import uuid
import zlib
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from distributed import Client, WorkerPlugin, as_completed, get_worker

from napari_nrrn import __version__
from napari_nrrn.engine.events import Progress
from napari_nrrn.words import exists_error, for_cli, plural

DEFAULT_CHUNK_SLICES = 8
ZARR_SUFFIXES = (".zarr", ".ome.zarr")
RECORDS_DIR = ".nrrn-chunks"  # inside the partial output: one JSON record per finished chunk
RUN_FILE = ".nrrn-run.json"  # inside the partial output: what the job is, to resume only the same job
PLUGIN_PREFIX = "napari-nrrn-model-"
WORKER_WAIT_S = 60


@dataclass(frozen=True)
class DistributedRun:
    """What a distributed job did: the output, and how many chunks it computed and found already written."""

    path: Path
    chunks_total: int
    chunks_skipped: int
    chunks_computed: int


class ModelPlugin(WorkerPlugin):
    """Holds one NRRN per worker, loaded once from checkpoint bytes sent with the plugin, and the inference
    sessions its tasks run in.

    The device is the one asked for, or CUDA when the worker has it: device ``rank % device_count`` on a
    multi-GPU machine, so that workers spread over the GPUs (a worker started with CUDA_VISIBLE_DEVICES set
    to one GPU sees one device and uses it).
    """

    # The name carries the checkpoint's hash, the device and the threads: registering it again is a no-op.
    idempotent = True

    def __init__(self, checkpoint: bytes, device: str | None = None, torch_threads: int | None = None):
        self.checkpoint = checkpoint
        self.device_request = device
        self.torch_threads = torch_threads
        self.model = None
        self.device = None
        self.sessions = {}

    def setup(self, worker) -> None:
        import torch

        from napari_nrrn.model.checkpoint import load_model

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        self.device = _worker_device(self.device_request, _worker_rank(worker))
        # load_model reads a path: the bytes go to the worker's own scratch folder, read once.
        with tempfile.TemporaryDirectory(dir=worker.local_directory) as scratch:
            path = Path(scratch) / "model.pt"
            path.write_bytes(self.checkpoint)
            self.model = load_model(path, device=self.device)
        self.checkpoint = None  # the model holds the weights now

    def session(self, tile, precision: str):
        """This worker's session for ``tile`` and ``precision``, built at its first task: the plugin's name
        already names the weights and the device, so every chunk after the first reuses the fused network."""
        from napari_nrrn.engine.inference import inference_dtype
        from napari_nrrn.engine.session import InferenceSession

        key = (tile, precision)
        if key not in self.sessions:
            dtype = inference_dtype(self.device, precision)
            self.sessions[key] = InferenceSession(self.model, self.device, dtype, tile)
        return self.sessions[key]


def _worker_rank(worker) -> int:
    """A stable small number per worker: LocalCluster names workers 0, 1, ...; ``dask worker --nworkers``
    names them ``NAME-0``, ``NAME-1``; any other name is hashed."""
    name = str(worker.name)
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else zlib.crc32(name.encode())


def _worker_device(request: str | None, rank: int):
    import torch

    from napari_nrrn.engine.device import select_device

    device = select_device(request)
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    return device


def denoise_chunk(
    model,
    stack,
    start: int,
    stop: int,
    tile=None,
    device=None,
    precision: str = "auto",
    session=None,
    register=False,
) -> np.ndarray:
    """Slices ``start .. stop - 1`` of ``stack`` denoised, reading only slices ``start - 1 .. stop``.

    The same per-slice computation as ``denoise_stack``: each slice with its two neighbours, the one
    existing neighbour used twice at the first and the last slice, shifted onto it with ``register``, all in
    one ``InferenceSession``: ``session``, or one built here for ``tile``, ``device`` and ``precision``.
    """
    from napari_nrrn.engine.device import select_device
    from napari_nrrn.engine.events import run_to_end
    from napari_nrrn.engine.inference import inference_dtype, iter_denoise_slice, prepared_triplet
    from napari_nrrn.engine.session import InferenceSession

    if session is None:
        device = select_device(device)
        session = InferenceSession(model, device, inference_dtype(device, precision), tile)
    depth = stack.shape[0]
    first, last = max(start - 1, 0), min(stop + 1, depth)
    block = np.asarray(stack[first:last])  # the chunk and its halo: n + 2 slices at most
    output = np.empty((stop - start, *block.shape[1:]), dtype=block.dtype)
    for z in range(start, stop):
        previous = block[z - 1 - first] if z > 0 else block[z + 1 - first]
        following = block[z + 1 - first] if z < depth - 1 else block[z - 1 - first]
        triplet, stats = prepared_triplet((previous, block[z - first], following), z, depth, register)
        output[z - start] = run_to_end(iter_denoise_slice(model, *triplet, stats=stats, session=session))
    return output


def _checksums(levels: list[np.ndarray]) -> list[str]:
    """One SHA-256 per pyramid level of a chunk's slices."""
    return [hashlib.sha256(np.ascontiguousarray(slices).tobytes()).hexdigest() for slices in levels]


def _record_path(records: Path, start: int, stop: int) -> Path:
    return records / f"{start:09d}-{stop:09d}.json"


def _denoise_and_write(
    plugin_name: str,
    source: str,
    channel,
    source_token: str,
    output_path: str,
    levels: int,
    start: int,
    stop: int,
    tile,
    precision: str,
    recorded: bool,
    register: bool = False,
) -> tuple[int, int, bool]:
    """The task: denoise one chunk on this worker's model, write it and its pyramid levels into the output,
    then its record.

    A ``recorded`` chunk (an earlier run wrote its record) is first verified against its slices on disk at
    every level, here on the worker, where the data is: when all match, nothing is computed. Returns
    (start, stop, computed).
    """
    from napari_nrrn.io.ome_zarr_writer import open_levels, write_slices

    arrays = open_levels(output_path, levels)
    record_file = _record_path(Path(output_path) / RECORDS_DIR, start, stop)
    if recorded and _record_matches(record_file, [array[start:stop] for array in arrays]):
        return start, stop, False
    plugin = get_worker().plugins[plugin_name]
    if plugin.torch_threads:
        import torch

        torch.set_num_threads(plugin.torch_threads)  # executor threads do not inherit the setup thread's
    stack = _open_source(source, channel, source_token)
    session = plugin.session(tile, precision)
    slices = denoise_chunk(plugin.model, stack, start, stop, session=session, register=register)
    written = write_slices(arrays, start, slices)
    _write_json(record_file, {"start": start, "stop": stop, "sha256": _checksums(written)})
    return start, stop, True


@functools.lru_cache(maxsize=4)
def _open_source(source: str, channel, source_token: str):
    """The input stack, opened once per worker and job: opening a deep TIFF reads every page's header."""
    from napari_nrrn.io.stack import open_stack

    stack = open_stack(source, channel=channel)
    if stack.name != source_token:
        raise ValueError(
            f"{source} on worker {get_worker().name} is not the file the job was started on (it changed, or "
            "this worker sees another copy): every worker must read the same, unchanged stack"
        )
    return stack


def _record_matches(record_file: Path, levels: list[np.ndarray]) -> bool:
    try:
        return json.loads(record_file.read_text()).get("sha256") == _checksums(levels)
    except (OSError, ValueError, AttributeError):
        return False


def _write_json(path: Path, content: dict) -> None:
    """Atomically: a record is either absent or complete."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    partial.write_text(json.dumps(content))
    os.replace(partial, path)


def _chunks(depth: int, chunk_slices: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk_slices, depth)) for start in range(0, depth, chunk_slices)]


def _checkpoint_bytes(model) -> bytes:
    """The model as checkpoint bytes: read from its file, or saved from an NRRN in memory."""
    if isinstance(model, (str, os.PathLike)):
        from napari_nrrn.model.checkpoint import load_model

        load_model(model)  # a bad file fails here, on the client, with its clear message
        return Path(model).read_bytes()
    from napari_nrrn.model.checkpoint import save_model

    with tempfile.TemporaryDirectory() as scratch:
        return save_model(model, Path(scratch) / "model.pt", getattr(model, "metadata", None)).read_bytes()


def partial_path(output: str | os.PathLike) -> Path:
    """Where a distributed job writes ``output`` until it is complete: a name no reader takes for a stack,
    kept after a crash or a cancel so that the same job resumes it."""
    output = Path(output)
    return output.with_name(f"{output.name}.partial")


def check_output(output: str | os.PathLike, overwrite: bool = False) -> Path:
    """``output`` as a Path, checked to be an OME-Zarr name in a writable folder, new unless ``overwrite``."""
    from napari_nrrn.io.writers import check_writable_folder

    output = Path(output).expanduser()
    if not output.name.lower().endswith(ZARR_SUFFIXES):
        raise ValueError(
            f"cannot write {output} from several workers: each writes its own slices into an OME-Zarr; "
            "name the output .zarr or .ome.zarr (or denoise in one process to write TIFF)"
        )
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise exists_error(output)
    check_writable_folder(output.parent)
    return output


def iter_denoise_distributed(
    client: Client,
    model,
    source: str | os.PathLike,
    output: str | os.PathLike,
    chunk_slices: int = DEFAULT_CHUNK_SLICES,
    tile: int | None = None,
    device: str | None = None,
    precision: str = "auto",
    channel: int | None = None,
    voxel_size=None,
    overwrite: bool = False,
    torch_threads: int | None = None,
    ngff: str | None = None,
    register: bool | None = None,
) -> Generator[Progress, None, DistributedRun]:
    """Denoise the stack at ``source`` into the OME-Zarr ``output`` on the workers of ``client``.

    ``model`` is an NRRN or a checkpoint path; ``source`` a path every worker can open (``open_stack``).
    ``voxel_size`` defaults to the source's; ``ngff`` is the OME-Zarr version, "0.5" (default) or "0.4";
    ``register`` as for ``denoise_stack`` (None: as the model was trained).
    Yields ``Progress(stage="denoise")`` counting finished slices, those verified as already written by an
    earlier run of the same job included (see the module docstring); returns a :class:`DistributedRun`.
    Closing the generator early cancels the chunks not yet started, waits for the running ones and keeps the
    partial output, so that the same call resumes it.
    """
    from napari_nrrn.engine.inference import check_stack, inference_dtype
    from napari_nrrn.engine.registration import model_registers
    from napari_nrrn.io.ome_zarr_writer import NGFF_VERSIONS, level_shapes
    from napari_nrrn.io.stack import open_stack
    from napari_nrrn.io.stack import voxel_size as read_voxel_size
    from napari_nrrn.io.writers import check_ngff, checked_voxel_size, naming_output

    output = check_output(output, overwrite)
    check_ngff(ngff, output)
    ngff = ngff or NGFF_VERSIONS[0]
    inference_dtype("cpu", precision)  # an unknown precision fails here, not on every worker
    if chunk_slices < 1:
        raise ValueError(f"chunk_slices = {chunk_slices}: each task needs at least 1 slice")
    source = os.fspath(Path(source).expanduser().resolve())
    stack = open_stack(source, channel=channel)
    check_stack(stack)
    voxel_size = checked_voxel_size(read_voxel_size(source) if voxel_size is None else voxel_size)
    checkpoint = _checkpoint_bytes(model)
    if register is None:
        from napari_nrrn.model.checkpoint import load_model

        register = model_registers(load_model(model) if isinstance(model, (str, os.PathLike)) else model)
    job = {
        "source": source,
        "source_token": stack.name,  # open_stack's token: the path and the files' modification times
        "channel": channel,
        "shape": list(stack.shape),
        "dtype": str(stack.dtype),
        "voxel_size": voxel_size and list(voxel_size),
        "model_sha256": hashlib.sha256(checkpoint).hexdigest(),
        "chunk_slices": chunk_slices,
        "ngff": ngff,
        "levels": len(level_shapes(stack.shape)),
        "tile": tile,
        "precision": precision,
        "register": bool(register),
        "package_version": __version__,  # a default tile or precision may change between versions
    }
    partial = partial_path(output)
    name = output.name.removesuffix(".zarr").removesuffix(".ome")
    _prepare_partial(partial, job, name, stack.shape, stack.dtype, voxel_size)
    chunks = _chunks(stack.shape[0], chunk_slices)
    # Chunks with a record are verified by their task, on a worker: the client reads no pixels.
    recorded = {
        tuple(int(n) for n in record.stem.split("-")) for record in (partial / RECORDS_DIR).glob("*.json")
    }

    plugin_name = f"{PLUGIN_PREFIX}{job['model_sha256'][:16]}-{device}-{torch_threads}"
    client.register_plugin(ModelPlugin(checkpoint, device, torch_threads), name=plugin_name)
    run_prefix = f"napari-nrrn-{uuid.uuid4().hex[:8]}-"

    def submit(start: int, stop: int):
        return client.submit(
            _denoise_and_write,
            *(plugin_name, source, channel, stack.name, str(partial), job["levels"], start, stop),
            *(tile, precision),
            recorded=(start, stop) in recorded,
            register=bool(register),
            key=f"{run_prefix}{start}-{stop}",
            pure=False,
        )

    # A window of chunks in flight, two per worker thread: every worker always has its next chunk, the
    # output fills in roughly from the top, and a cancel leaves only the window to stop.
    window = 2 * max(1, sum(client.nthreads().values()))
    waiting = iter(chunks)
    in_flight = as_completed(
        [submit(*chunk) for chunk in itertools.islice(waiting, window)], loop=client.loop
    )
    began = time.perf_counter()
    done, computed, total = 0, 0, stack.shape[0]
    try:
        verify = f"{plural(len(recorded), 'chunk')} to verify and skip"
        yield Progress("denoise", 0, total, 0.0, message=verify)
        for future in in_flight:
            start, stop, was_computed = future.result()  # a task's error is raised here, with its traceback
            for chunk in itertools.islice(waiting, 1):
                in_flight.add(submit(*chunk))
            done += stop - start
            computed += was_computed
            yield Progress("denoise", done, total, time.perf_counter() - began)
    except BaseException as error:
        # Closed early, cancelled or failed: the partial output stays for a resume. Chunks already running
        # finish on their workers; wait for them, so that nothing writes into the partial output afterwards.
        client.cancel(list(in_flight.futures))
        _wait_until_stopped(client, run_prefix)
        renamed = naming_output(error, partial, output) if isinstance(error, OSError) else error
        if renamed is not error:
            raise renamed from error  # a full disk is the output's, not one chunk file's in the partial one
        raise
    _finish(partial, output)
    return DistributedRun(output, len(chunks), len(chunks) - computed, computed)


def _running_tasks(prefix: str, dask_worker=None) -> int:
    """On a worker (``client.run``): how many tasks whose key starts with ``prefix`` occupy a thread."""
    return sum(str(task.key).startswith(prefix) for task in dask_worker.state.all_running_tasks)


def _wait_until_stopped(client: Client, prefix: str) -> None:
    while True:
        try:
            running = client.run(_running_tasks, prefix)
        except Exception:  # the workers are gone (a Ctrl-C reaches local workers too): nothing runs
            return
        if not any(running.values()):
            return
        time.sleep(0.1)


def _prepare_partial(partial: Path, job: dict, name: str, shape, dtype, voxel_size) -> None:
    """Keep the OME-Zarr ``partial`` when it was made for the same ``job``, else make a fresh one (a partial
    output of another job cannot be resumed, and is nobody's result)."""
    from napari_nrrn.io.ome_zarr_writer import create_ome_zarr

    run_file = partial / RUN_FILE
    try:
        same_job = json.loads(run_file.read_text()) == job
    except (OSError, ValueError):
        same_job = False
    if not same_job:
        if partial.exists():
            shutil.rmtree(partial)
        # The group, every level's array and the metadata exist now; the workers write the pixels.
        shape = tuple(int(n) for n in shape)
        create_ome_zarr(partial, shape, np.dtype(dtype), voxel_size, name, job["ngff"])
        (partial / RECORDS_DIR).mkdir()
        _write_json(run_file, job)


def _finish(partial: Path, output: Path) -> None:
    """Drop the resume bookkeeping and give the output its final name (replacing an old one, which
    ``overwrite`` allowed)."""
    from napari_nrrn.io.writers import move_into_place

    shutil.rmtree(partial / RECORDS_DIR)
    (partial / RUN_FILE).unlink()
    move_into_place(partial, output)


def denoise_distributed(
    model,
    source: str | os.PathLike,
    output: str | os.PathLike,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    **options,
) -> DistributedRun:
    """Denoise ``source`` into the OME-Zarr ``output`` on ``workers`` local worker processes, or on the
    running cluster whose scheduler is at ``scheduler`` (an address such as ``tcp://host:8786``).

    Local workers run one task at a time each, and torch in each uses its share of the CPU cores. ``options``
    go to :func:`iter_denoise_distributed`. Shows a tqdm bar counting slices when ``progress``.
    """
    from distributed import LocalCluster
    from tqdm import tqdm

    if (workers is None) == (scheduler is None):
        raise ValueError("give either workers (a number of local worker processes) or scheduler (an address)")
    check_output(output, overwrite)  # before minutes of cluster start-up
    cluster = None
    if workers is not None:
        if workers < 1:
            error = ValueError(f"workers = {workers}: start at least 1 worker process")
            raise for_cli(error, f"--workers {workers}: start at least 1 worker process")
        options.setdefault("torch_threads", max(1, (os.cpu_count() or 1) // workers))
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    try:
        with _connect(cluster if cluster is not None else scheduler) as client:
            events = iter_denoise_distributed(client, model, source, output, overwrite=overwrite, **options)
            try:
                # The first event, before any chunk is done, gives the total the bar's first line shows.
                first = next(events)
                with tqdm(total=first.total, desc="denoise", unit=" slice", disable=not progress) as bar:
                    while True:
                        event = next(events)
                        bar.update(event.done - bar.n)
            except StopIteration as finished:
                return finished.value
            finally:
                events.close()  # on Ctrl-C: cancel the chunks not yet done, before the cluster goes
    finally:
        if cluster is not None:
            cluster.close()


def _connect(cluster_or_address) -> Client:
    """A client of a cluster with at least one worker; ValueError saying what to start when there is none."""
    address = getattr(cluster_or_address, "scheduler_address", cluster_or_address)
    try:
        client = Client(cluster_or_address)
    except OSError as error:
        raise ValueError(
            f"cannot reach a dask scheduler at {address} ({error}): start one with `dask scheduler` and "
            f"workers with `dask worker {address}`, or check the address"
        ) from None
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        client.close()
        raise ValueError(
            f"the dask scheduler at {address} has no workers after {WORKER_WAIT_S} s: "
            f"start some with `dask worker {address}`"
        ) from None
    return client
