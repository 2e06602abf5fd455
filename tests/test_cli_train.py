"""``napari-nrrn train`` end to end on real FlyEM slices: the model file loads and says how it was made,
Ctrl-C leaves a checkpoint that --resume continues, repeated scans, and bad input."""

import signal

import numpy as np
import pytest
import tifffile

import napari_nrrn.engine.train as engine_train
from napari_nrrn.cli import main
from napari_nrrn.model.checkpoint import load_model

FAST = ["--depth", "1", "--width", "4", "--patch", "16", "--batch", "2", "--checkpoint-every", "3"]
# gala's noise correlates between adjacent slices: its own choice is z-distance 3, too far for 8 slices.
ADJACENT = [*FAST, "--z-distance", "1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_stack(shared_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("stacks") / "gala crop.tif"
    tifffile.imwrite(
        path, tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")[:8, :40, :48]
    )
    return path


def test_train_writes_a_model_that_loads_and_records_how_it_was_made(small_stack, tmp_path, capsys):
    output = tmp_path / "model.pt"
    assert main(["train", str(small_stack), "-o", str(output), *ADJACENT, "--steps", "5", "--seed", "3"]) == 0
    model = load_model(output)
    assert (model.depth, model.width) == (1, 4)
    metadata = model.metadata
    assert metadata["command"].startswith(
        f"napari-nrrn train '{small_stack}' -o {output} --depth 1 --width 4"
    )
    assert "--steps 5" in metadata["command"] and "--seed 3" in metadata["command"]
    assert "--z-distance 1 --supervision every-depth" in metadata["command"]
    assert metadata["data"]["paths"] == [str(small_stack.resolve())]
    assert metadata["data"]["shape"] == [8, 40, 48]
    assert metadata["training"]["step"] == 5 and metadata["training"]["config"]["seed"] == 3
    assert metadata["training"]["started_from"].startswith("random weights (the shipped model")
    assert "optimiser" not in metadata["training"]  # the model file stays small; the checkpoint resumes
    checkpoint = tmp_path / "model.checkpoint.pt"
    assert "optimiser" in load_model(checkpoint).metadata["training"]
    out = capsys.readouterr()
    assert (
        f"wrote {output}" in out.out and "5 steps, z-distance 1, started from random weights (the" in out.out
    )
    assert "5/5" in out.err  # the progress bar


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(small_stack, tmp_path, monkeypatch, capsys):
    real_train = engine_train.train
    output = tmp_path / "model.pt"
    command = ["train", str(small_stack), "-o", str(output), *ADJACENT, "--steps", "6"]
    monkeypatch.setattr(engine_train, "train", lambda *a, **k: _relay(real_train(*a, **k)))
    handler = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest runs as a background job
    assert main(command) == 130
    assert "stopped at step 2" in capsys.readouterr().err
    assert not output.exists()  # an unfinished model is never presented as the result
    assert load_model(tmp_path / "model.checkpoint.pt").metadata["training"]["step"] == 2
    assert signal.getsignal(signal.SIGINT) is handler  # restored

    monkeypatch.setattr(engine_train, "train", real_train)
    assert main([*command, "--resume"]) == 0
    assert load_model(output).metadata["training"]["step"] == 6
    assert load_model(output).metadata["command"].endswith("--resume")


def _relay(generator):
    """The training events, with a Ctrl-C (SIGINT) delivered after step 2."""
    while True:
        try:
            event = next(generator)
        except StopIteration as stop:
            return stop.value
        yield event
        if event.done == 2:
            signal.raise_signal(signal.SIGINT)


def test_two_stacks_train_as_repeated_scans(small_stack, tmp_path, shared_data):
    rng = np.random.default_rng(0)
    second = tmp_path / "second scan.tif"
    scan = tifffile.imread(small_stack).astype(float)
    tifffile.imwrite(second, np.clip(scan + rng.normal(0, 5, scan.shape), 0, 255).astype(np.uint8))
    output = tmp_path / "pair.pt"
    assert main(["train", str(small_stack), str(second), "-o", str(output), *FAST, "--steps", "2"]) == 0
    metadata = load_model(output).metadata
    assert metadata["training"]["config"]["mode"] == "repeated-2"
    assert metadata["data"]["shape"] == [8, 2, 40, 48]


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: d[0], [], "a single 2-D image has no neighbour slices"),
        (lambda d: d[:2], [], "needs at least 5 slices, the stack has 2"),
        (lambda d: d[:2], ["--target", "neighbours"], "needs at least 3 slices, the stack has 2"),
        (lambda d: d, ["--patch", "64"], "patch size 64 does not fit slices of 40x48 pixels"),
        (
            lambda d: d,
            ["--z-distance", "2"],
            "at z-distance 2 needs at least 9 slices (4 x 2 + 1), the stack has 8",
        ),
        (lambda d: d, ["--start-from", "none.pt"], "start_from 'none.pt': no such model file"),
    ],
)
def test_bad_input_exits_with_a_clear_error(small_stack, tmp_path, capsys, make, extra, message):
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, make(tifffile.imread(small_stack)))
    output = tmp_path / "model.pt"
    assert main(["train", str(path), "-o", str(output), *ADJACENT, "--steps", "2", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_the_z_distance_is_chosen_from_the_noise_and_supervision_is_recorded(small_stack, tmp_path, capsys):
    output = tmp_path / "model.pt"
    assert main(["train", str(small_stack), "-o", str(output), *FAST, "--steps", "2"]) == 2
    # gala's noise correlates at 0.4 between adjacent slices, 0.14 two apart: slices 3 apart are needed.
    assert "at z-distance 3 (chosen because the noise of slices 1, 2, 3 apart correlates at 0.4" in (
        capsys.readouterr().err
    )
    command = ["train", str(small_stack), "-o", str(output), *FAST, "--steps", "2", "--target", "neighbours"]
    assert main([*command, "--supervision", "final"]) == 0
    model = load_model(output)
    training = model.metadata["training"]
    assert (
        training["z_distance"] == 3 and training["config"]["supervision"] == "final" and not model.every_depth
    )
    assert "--z-distance" not in model.metadata["command"]  # chosen, not given: rerunning chooses again
    assert model.metadata["command"].endswith(
        "--target neighbours --supervision final --seed 0 --checkpoint-every 3 --start-from shipped"
    )


def test_missing_stack_mismatched_scans_and_two_budgets(small_stack, tmp_path, capsys):
    assert main(["train", str(tmp_path / "none.tif"), "-o", str(tmp_path / "m.pt")]) == 2
    assert "none.tif" in capsys.readouterr().err
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, tifffile.imread(small_stack)[:, :32])
    assert main(["train", str(small_stack), str(other), "-o", str(tmp_path / "m.pt")]) == 2
    assert "repeated scans must have one shape" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", str(small_stack), "-o", str(tmp_path / "m.pt"), "--steps", "3", "--seconds", "5"])
