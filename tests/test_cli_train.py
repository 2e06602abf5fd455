"""``napari-nrrn train`` end to end on real FlyEM slices: the model file loads and says how it was made,
Ctrl-C leaves a checkpoint that --resume continues, repeated scans, and bad input."""

import re
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
    # The progress bar: its total never changes; the time estimate is printed once the first steps are
    # measured.
    assert set(re.findall(r"step \d+/(\d+) \[", out.err)) == {"5"} and "step 5/5 [" in out.err
    assert re.search(r"train: \d+\.\d\d s a step, measured on this machine: about \S+ in all", out.err)
    assert f"napari-nrrn train: 5 steps; checkpoints go to {checkpoint}" in out.err


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
        (lambda d: d[0], [], "a single 2-D image has no neighbour slices): add slices, or give 2 or 3 "
         "repeated scans of the same slices as extra STACKs (napari-nrrn train SCAN_A SCAN_B -o MODEL)"),
        (lambda d: d[:4], [], "add slices, or train toward the neighbours themselves (--target neighbours, 3 "
         "slices), or give 2 or 3 repeated scans"),
        (lambda d: d[:2], [], "needs at least 5 slices, the stack has 2"),
        (lambda d: d[:2], ["--target", "neighbours"], "needs at least 3 slices, the stack has 2"),
        (lambda d: d, ["--patch", "64"], "patch size 64 does not fit slices of 40x48 pixels"),
        (
            lambda d: d,
            ["--z-distance", "2"],
            "at z-distance 2 needs at least 9 slices (4 x 2 + 1), the stack has 8",
        ),
        (lambda d: d, ["--start-from", "none.pt"], "--start-from none.pt: no such model file"),
    ],
)
def test_bad_input_exits_with_a_clear_error(small_stack, tmp_path, capsys, make, extra, message):
    path = tmp_path / "bad.tif"
    # Grey levels, so that 3 or 4 slices do not read as colour samples.
    tifffile.imwrite(path, make(tifffile.imread(small_stack)), photometric="minisblack")
    output = tmp_path / "model.pt"
    assert main(["train", str(path), "-o", str(output), *ADJACENT, "--steps", "2", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    # Command-line words only: no Python arguments, no training modes the command line has no option for.
    assert not re.search(r"\w=|\bmode\b|repeated-|start_from|'neighbours'", err), err
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


def test_train_refuses_an_existing_model_and_a_name_that_is_not_pt(small_stack, tmp_path, capsys):
    existing = tmp_path / "m.pt"
    existing.write_bytes(b"keep me")
    command = ["train", str(small_stack), *ADJACENT, "--steps", "1"]
    assert main([*command, "-o", str(existing)]) == 2
    assert capsys.readouterr().err == (
        f"napari-nrrn train: error: {existing} already exists: choose another name, or add --overwrite to "
        "replace it\n"
    )
    assert existing.read_bytes() == b"keep me"
    assert main([*command, "-o", str(tmp_path / "m.txt")]) == 2
    assert capsys.readouterr().err == (
        f"napari-nrrn train: error: {tmp_path / 'm.txt'}: a model file is a .pt file; give the output a .pt "
        "name\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    assert main([*command, "-o", str(existing), "--overwrite"]) == 0
    assert load_model(existing).metadata["training"]["step"] == 1
    out = capsys.readouterr()
    assert "1 step," in out.out and "1 steps" not in out.out + out.err


def test_the_bar_of_a_short_run_shows_the_validation_loss(shared_data, tmp_path, capsys):
    """50 slices spare a held-out block: 8 steps validate every 2 (at least 4 points), and the bar says so."""
    path = tmp_path / "gala.tif"
    gala = tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")
    tifffile.imwrite(path, gala[:, :40, :48])
    output = tmp_path / "model.pt"
    assert main(["train", str(path), "-o", str(output), *ADJACENT, "--steps", "8"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"step 8/8 \[.*validation loss \d\.\d{4}", err)
    assert load_model(output).metadata["training"]["val_loss"] is not None


def test_a_time_budget_bar_counts_seconds_to_a_fixed_total(small_stack, tmp_path, capsys):
    assert main(["train", str(small_stack), "-o", str(tmp_path / "m.pt"), *ADJACENT, "--seconds", "2"]) == 0
    err = capsys.readouterr().err
    assert "napari-nrrn train: 2 s; checkpoints go to" in err
    assert set(re.findall(r"\d+/(\d+) s \[", err)) == {"2"} and re.search(r"step \d+, about", err)
