"""Training: it learns on real FlyEM data with synthetic noise, it is deterministic on CPU, a cancelled run
resumes to the same weights, checkpoints carry what resuming needs, and bad input is refused."""

import sys
from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch

import napari_nrrn.engine.train as engine_train
from napari_nrrn.engine.inference import denoise_slice
from napari_nrrn.engine.sampling import TripletSampler
from napari_nrrn.engine.train import (
    RANDOM,
    SharedNoiseError,
    TrainConfig,
    branch_inputs,
    hide_pixels,
    learning_rate,
    train,
)
from napari_nrrn.measures.metrics import psnr
from napari_nrrn.model.checkpoint import load_model, save_model, shipped_model_paths
from napari_nrrn.model.loss import consensus_loss
from napari_nrrn.model.nrrn import NRRN

TINY = TrainConfig(depth=1, width=4, patch=24, batch=4, steps=12, validation_every=4, checkpoint_every=5)


def drain(generator, on_event=None):
    """All events of a training generator and the model it returns."""
    events = []
    while True:
        try:
            event = next(generator)
        except StopIteration as stop:
            return events, stop.value
        events.append(event)
        if on_event is not None:
            on_event(event)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def medulla(shared_data):
    """A real FlyEM crop (fairly clean: the ground truth) and the same with synthetic FIB-SEM-like noise."""
    clean = tifffile.imread(shared_data / "fibsem_flyem_medulla_A_250cube.tif")[:24, :96, :96]
    rng = np.random.default_rng(0)
    noisy = rng.poisson(clean / 2.0) * 2.0 + rng.normal(0, 10, clean.shape)
    return clean, np.clip(np.round(noisy), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def gala(shared_data):
    return tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")[:16, :64, :64]


def test_training_lowers_the_validation_loss_and_raises_psnr(medulla):
    clean, noisy = medulla
    config = TrainConfig(
        depth=1, width=8, patch=32, batch=8, steps=150, lr=3e-3, validation_every=25, validation_fraction=0.1
    )
    events, model = drain(train(noisy, config, metadata={"data": {"path": "medulla crop"}}))
    assert [e.done for e in events] == list(range(1, 151)) and all(e.total == 150 for e in events)
    validation = [e.val_loss for e in events if e.done % 25 == 0]
    assert validation[-1] < 0.8 * validation[0]
    assert events[0].val_loss is None and events[-1].val_loss == validation[-1]
    z = 11  # a validation centre: no training sample touched slices 9 to 14
    denoised = denoise_slice(model, noisy[z - 1], noisy[z], noisy[z + 1], device="cpu", precision="float32")
    assert psnr(denoised, clean[z]) > psnr(noisy[z], clean[z]) + 3
    assert model.metadata["data"] == {"shape": [24, 96, 96], "dtype": "uint8", "path": "medulla crop"}
    assert model.metadata["training"]["step"] == 150 and model.metadata["training"]["ended"] == "completed"
    assert not model.training


@pytest.fixture(scope="module")
def flat_slice(shared_data):
    """One clean FlyEM slice, to repeat as a stack whose every slice has the same signal."""
    return tifffile.imread(shared_data / "fibsem_flyem_medulla_A_250cube.tif")[0, :64, :64].astype(np.float64)


def noisy(clean, noise):
    return np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("supervision", ["every-depth", "final"])
def test_the_loss_is_the_mean_over_depths_of_the_consensus_loss(gala, supervision):
    config = replace(TINY, depth=2, steps=1, amp=False, validation_fraction=0, z_distance=1)
    config = replace(config, supervision=supervision)
    events, trained = drain(train(gala, config))
    assert trained.every_depth is (supervision == "every-depth")
    # The same first batch and initial weights, by hand.
    torch.manual_seed(config.seed)
    model = NRRN(depth=2, width=config.width, every_depth=trained.every_depth)
    register = trained.metadata["training"]["register"]  # gala's slices drift: registered by default
    offsets = (-2, -1, 0, 1, 2)
    sampler = TripletSampler(
        gala, config.patch, validation_fraction=0, seed=config.seed, offsets=offsets, register=register
    )
    x1, x2, prev, next_ = branch_inputs(
        torch.from_numpy(sampler.batch(config.batch)), "adjacent", "neighbour-mean"
    )
    with torch.no_grad():
        outputs = (
            model.depth_outputs(torch.cat([x1, x2])) if trained.every_depth else [model(torch.cat([x1, x2]))]
        )
        expected = np.mean([float(consensus_loss(f[:4], f[4:], prev, next_)) for f in outputs])
    assert len(outputs) == (2 if trained.every_depth else 1)
    assert events[0].loss == pytest.approx(expected, rel=1e-5)


def test_the_validation_loss_of_every_depth_is_recorded_and_saved(medulla, tmp_path):
    _, stack = medulla
    config = replace(TINY, depth=2, steps=8, validation_every=4, validation_fraction=0.1)
    events, model = drain(train(stack, config))
    assert events[0].val_loss_by_depth is None  # a budget of 8 steps validates every 2
    by_depth = events[-1].val_loss_by_depth
    assert len(by_depth) == 2 and events[-1].val_loss == by_depth[-1]
    assert model.metadata["training"]["val_loss_by_depth"] == list(by_depth)
    assert model.every_depth and model.metadata["training"]["config"]["supervision"] == "every-depth"
    loaded = load_model(save_model(model, tmp_path / "model.pt", model.metadata))
    assert loaded.metadata["training"]["val_loss_by_depth"] == list(by_depth)
    assert loaded.every_depth
    assert TrainConfig.published().supervision == "final"


def test_correlated_noise_between_adjacent_slices_trains_on_slices_two_apart(shared_data, tmp_path):
    clean = tifffile.imread(shared_data / "fibsem_flyem_medulla_A_250cube.tif")[:14, :64, :64].astype(float)
    white = np.random.default_rng(5).standard_normal((16, 64, 64))
    # Adjacent noise correlation 2c / (1 + 2c^2) = 0.40, at distance 2 0.04 (benchmarks/bench_depth_noise.py)
    c = 0.219
    field = (white[1:-1] + c * (white[:-2] + white[2:])) / np.sqrt(1 + 2 * c**2)
    stack = noisy(clean, 12 * field)
    _, model = drain(train(stack, replace(TINY, steps=2), checkpoint_path=tmp_path / "run.pt"))
    training = load_model(tmp_path / "run.pt").metadata["training"]
    assert training["z_distance"] == training["config"]["z_distance"] == 2
    assert training["z_distance_automatic"] is True
    noise = load_model(tmp_path / "run.pt").metadata["noise"]
    assert noise["z_correlation"][0] == pytest.approx(0.4, abs=0.1) and abs(noise["z_correlation"][1]) < 0.1
    assert model.metadata["noise"] == noise
    # Resuming must pair slices the same way.
    with pytest.raises(ValueError, match="trained with z_distance = 2, this run asks for 1"):
        next(train(stack, replace(TINY, z_distance=1), checkpoint_path=tmp_path / "run.pt", resume=True))


@pytest.mark.parametrize("target", ["neighbour-mean", "neighbours"])
def test_a_loss_below_what_independent_noise_allows_stops_training(flat_slice, tmp_path, target):
    config = replace(TINY, steps=40, lr=3e-3, validation_every=5, validation_fraction=0.1, target=target)
    config = replace(config, z_distance=1)
    rng = np.random.default_rng(6)
    # Every slice the same noisy image: the target's noise is the input's.
    shared = np.stack([noisy(flat_slice, rng.normal(0, 12, flat_slice.shape))] * 30)
    checkpoint = tmp_path / "shared.pt"
    with pytest.raises(
        SharedNoiseError, match=r"the slices paired at z-distance 1 share noise .*\(--z-distance 2\)"
    ):
        drain(train(shared, config, checkpoint_path=checkpoint))
    saved = load_model(checkpoint).metadata["training"]
    assert saved["val_loss"] < saved["shared_noise_threshold"] and saved["step"] == 5
    # The same signal with independent noise never goes below the threshold.
    independent = noisy(flat_slice, rng.normal(0, 12, (30, *flat_slice.shape)))
    events, model = drain(train(independent, config))
    threshold = model.metadata["training"]["shared_noise_threshold"]
    assert threshold > 0 and min(e.val_loss for e in events if e.val_loss is not None) > threshold


def test_a_blind_spot_on_row_correlated_noise_warns(flat_slice):
    white = np.random.default_rng(7).standard_normal((13, 65, 64))
    rows = (white[:, 1:] + white[:, :-1]) / np.sqrt(2)  # neighbouring rows correlate at 0.5
    stack = noisy(flat_slice, 12 * rows)
    with pytest.warns(UserWarning, match=r"neighbouring rows share noise \(correlation 0\.[45]\d\)"):
        events = train(stack, replace(TINY, steps=1, blind_spot=1.0, z_distance=1))
    _, model = drain(events)
    assert model.metadata["training"]["warnings"][0].startswith("neighbouring rows share noise")


def assert_close_weights(model, expected):
    """Weights a step of Adam at a learning rate of 1e-9 moves by no more than about 1e-9."""
    trained = model.state_dict()
    for name, tensor in expected.state_dict().items():
        torch.testing.assert_close(trained[name].cpu(), tensor, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "width", "started_from"),
    [("default", 32, "the shipped model"), ("width 16", 16, "the shipped width 16 model")],
)
def test_training_starts_from_the_shipped_model_of_its_width_cut_to_its_depth(
    gala, name, width, started_from
):
    shipped = load_model(shipped_model_paths()[name]).cut(2)
    assert shipped.width == width
    config = replace(TINY, depth=2, width=width, steps=1, lr=1e-9)
    _, model = drain(train(gala, config))
    assert model.metadata["training"]["started_from"] == started_from
    assert model.metadata["training"]["config"]["start_from"] == "shipped"
    assert_close_weights(model, shipped)
    _, from_random = drain(train(gala, replace(config, start_from=RANDOM)))
    assert not torch.allclose(from_random.stem.weight, shipped.stem.weight, atol=1e-3)


def test_a_start_that_does_not_fit_is_random_for_the_shipped_model_and_an_error_for_a_file(gala, tmp_path):
    _, shipped_start = drain(train(gala, TINY))  # width 4: the shipped model's 32 does not fit
    assert shipped_start.metadata["training"]["started_from"] == (
        "random weights (the shipped models, depth 4, width 32 and depth 4, width 16, do not fit)"
    )
    _, random_start = drain(train(gala, replace(TINY, start_from=RANDOM)))
    assert random_start.metadata["training"]["started_from"] == "random weights"
    assert_same_weights(weights(shipped_start), weights(random_start))

    path = save_model(random_start, tmp_path / "start.pt")
    _, from_file = drain(train(gala, replace(TINY, start_from=str(path), steps=1, lr=1e-9)))
    assert from_file.metadata["training"]["started_from"] == str(path)
    assert_close_weights(from_file, random_start)
    with pytest.raises(
        ValueError, match=r"start.pt \(depth 1, width 4\): the run asks for width 4 and depth 2"
    ):
        next(train(gala, replace(TINY, depth=2, start_from=str(path))))
    with pytest.raises(ValueError, match="'shipped' .*'random' .*or a napari-nrrn model file"):
        next(train(gala, replace(TINY, start_from=str(tmp_path / "none.pt"))))


def test_two_runs_with_one_seed_give_identical_weights(gala):
    _, first = drain(train(gala, TINY))
    _, second = drain(train(gala, TINY))
    assert_same_weights(weights(first), weights(second))
    _, other_seed = drain(train(gala, replace(TINY, seed=1)))
    assert not torch.equal(first.stem.weight, other_seed.stem.weight)


@pytest.mark.parametrize("stop_after", [3, 5])
def test_cancel_then_resume_equals_an_uninterrupted_run(gala, tmp_path, stop_after):
    _, uninterrupted = drain(train(gala, TINY))

    checkpoint = tmp_path / "run.pt"
    seen = []
    generator = train(gala, TINY, should_stop=lambda: len(seen) >= stop_after, checkpoint_path=checkpoint)
    events, cancelled = drain(generator, on_event=seen.append)
    assert [e.done for e in events] == list(range(1, stop_after + 1))
    assert cancelled.metadata["training"]["ended"] == "cancelled"
    saved = load_model(checkpoint)
    assert saved.metadata["training"]["step"] == stop_after
    assert {"optimiser", "sampler", "config"} <= saved.metadata["training"].keys()

    events, resumed = drain(train(gala, TINY, checkpoint_path=checkpoint, resume=True))
    assert [e.done for e in events] == list(range(stop_after + 1, TINY.steps + 1))
    assert_same_weights(weights(resumed), weights(uninterrupted))


def test_closing_the_generator_saves_a_checkpoint_that_resumes(gala, tmp_path):
    checkpoint = tmp_path / "closed.pt"
    generator = train(gala, TINY, checkpoint_path=checkpoint)
    for _ in range(4):
        next(generator)
    generator.close()
    assert load_model(checkpoint).metadata["training"]["step"] == 4
    events, resumed = drain(train(gala, TINY, checkpoint_path=checkpoint, resume=True))
    assert events[0].done == 5
    assert_same_weights(weights(resumed), weights(drain(train(gala, TINY))[1]))


def test_periodic_checkpoints_and_resuming_to_more_steps(gala, tmp_path):
    checkpoint = tmp_path / "periodic.pt"
    first = replace(TINY, steps=6, checkpoint_every=5)
    seen = []
    drain(train(gala, first, checkpoint_path=checkpoint), on_event=lambda e: seen.append(_step(checkpoint)))
    assert seen == [None, None, None, None, 5, 5]  # every 5 steps
    assert _step(checkpoint) == 6  # and at the end
    events, _ = drain(train(gala, replace(first, steps=9), checkpoint_path=checkpoint, resume=True))
    assert [e.done for e in events] == [7, 8, 9]


def _step(checkpoint):
    return load_model(checkpoint).metadata["training"]["step"] if checkpoint.exists() else None


def test_a_time_budget_ends_the_run(gala):
    events, model = drain(train(gala, replace(TINY, steps=10**9, seconds=0.5)))
    assert model.metadata["training"]["ended"] == "completed"
    assert model.metadata["training"]["step"] == len(events) < 10**9
    assert all(e.total < 10**9 for e in events)


@pytest.mark.parametrize("mode", ["repeated-2", "repeated-3"])
def test_repeated_scan_modes_train(gala, mode):
    scans = int(mode[-1])
    # Independent noise on each scan of the same slices: the setting these modes are for.
    rng = np.random.default_rng(4)
    stack = np.stack([np.clip(gala + rng.normal(0, 8, gala.shape), 0, 255) for _ in range(scans)], axis=1)
    events, model = drain(train(stack.astype(np.uint8), replace(TINY, mode=mode, validation_fraction=0.2)))
    assert len(events) == TINY.steps and np.isfinite(events[-1].val_loss)
    assert model.metadata["data"]["shape"] == [16, scans, 64, 64]


@pytest.mark.parametrize("variant", [{"target": "neighbours"}, {"blind_spot": 1.0}])
def test_variant_targets_train_and_resume_exactly(gala, tmp_path, variant):
    config = replace(TINY, validation_fraction=0, **variant)
    _, uninterrupted = drain(train(gala, config))
    checkpoint = tmp_path / "variant.pt"
    seen = []
    drain(train(gala, config, should_stop=lambda: len(seen) >= 4, checkpoint_path=checkpoint), seen.append)
    _, resumed = drain(train(gala, config, checkpoint_path=checkpoint, resume=True))
    assert_same_weights(weights(resumed), weights(uninterrupted))


def test_branch_inputs_never_feed_a_target_to_its_own_branch():
    samples = torch.arange(5.0).view(1, 5, 1, 1).expand(2, 5, 3, 3)
    x1, x2, prev, next_ = branch_inputs(samples[:, :3], "adjacent")
    assert x1[0, :, 0, 0].tolist() == [0, 1] and x2[0, :, 0, 0].tolist() == [2, 1]
    assert prev[0, 0, 0, 0] == 0 and next_[0, 0, 0, 0] == 2  # f(x1) -> next, f(x2) -> prev
    x1, x2, prev, next_ = branch_inputs(samples[:, :2], "repeated-2")
    assert x1[0, :, 0, 0].tolist() == [0, 0] and x2[0, :, 0, 0].tolist() == [1, 1]
    assert next_[0, 0, 0, 0] == 1 and prev[0, 0, 0, 0] == 0  # f(a, a) -> b, f(b, b) -> a
    x1, x2, prev, next_ = branch_inputs(samples, "adjacent", "neighbour-mean")
    assert x1[0, :, 0, 0].tolist() == [0, 2] and x2[0, :, 0, 0].tolist() == [4, 2]
    assert prev[0, 0, 0, 0] == next_[0, 0, 0, 0] == 2  # (z-1 + z+1) / 2


def test_hidden_pixels_take_a_value_from_their_window_but_never_their_own():
    centre = torch.arange(40 * 40, dtype=torch.float32).view(1, 1, 40, 40).repeat(8, 1, 1, 1)
    hidden_centre, hidden = hide_pixels(centre, torch.Generator().manual_seed(0))
    assert 0.01 < hidden.float().mean() < 0.03
    assert torch.equal(hidden_centre[~hidden], centre[~hidden])
    stand_ins, own = hidden_centre[hidden].long(), centre[hidden].long()
    rows, cols, own_rows, own_cols = stand_ins // 40, stand_ins % 40, own // 40, own % 40
    assert ((rows - own_rows).abs() <= 2).all() and ((cols - own_cols).abs() <= 2).all()
    assert ((rows != own_rows) & (cols != own_cols)).all()


def test_learning_rate_schedules():
    cosine = TrainConfig(lr=1e-3, warmup_steps=10, steps=100)
    assert learning_rate(cosine, 1, 0.0) == pytest.approx(1e-4)  # warm-up
    assert learning_rate(cosine, 50, 0.5) == pytest.approx(5e-4)
    assert learning_rate(cosine, 100, 0.99) < 1e-6
    step = TrainConfig.published()
    assert (step.lr, step.batch, step.patch, step.schedule, step.target) == (
        1e-4,
        12,
        256,
        "step",
        "neighbours",
    )
    assert [learning_rate(step, s, 0.0) for s in (1, 80, 81, 161)] == pytest.approx(
        [1e-4, 1e-4, 5e-5, 2.5e-5]
    )


@pytest.mark.parametrize(
    ("shape", "config", "message"),
    [
        ((64, 64), TINY, "a 2-D image has no neighbour slices"),
        ((1, 64, 64), TINY, "needs at least 5 slices, the stack has 1 .a single 2-D image"),
        ((4, 64, 64), TINY, "target='neighbours', 3 slices"),
        ((2, 64, 64), replace(TINY, target="neighbours"), "needs at least 3 slices, the stack has 2"),
        ((10, 64, 64), replace(TINY, patch=65), "patch size 65 does not fit slices of 64x64"),
        ((10, 64, 64), replace(TINY, lr=0), "learning rate lr = 0 must be positive"),
        ((10, 64, 64), replace(TINY, schedule="linear"), "schedule 'linear' is unknown"),
        ((10, 64, 64), replace(TINY, batch=0), "batch = 0 must be at least 1"),
        ((10, 2, 64, 64), replace(TINY, mode="repeated-2", blind_spot=1.0), "0 in repeated-2 mode"),
        (
            (10, 2, 64, 64),
            replace(TINY, mode="repeated-2", z_distance=1),
            "z_distance = 1: .* adjacent mode only",
        ),
        ((10, 64, 64), replace(TINY, z_distance=0), "use a distance of at least 1"),
        ((10, 64, 64), replace(TINY, supervision="half"), "supervision 'half' is unknown"),
        (
            (8, 64, 64),
            replace(TINY, z_distance=2),
            r"mean of the neighbours at z-distance 2 needs at least 9 slices \(4 x 2 \+ 1\), the stack has "
            r"8: choose a smaller z-distance \(z_distance; .*, the neighbours themselves as the target "
            r"\(target='neighbours': 5 slices\) or more slices",
        ),
        (
            (6, 64, 64),
            replace(TINY, z_distance=3, target="neighbours"),
            r"needs at least 7 slices \(2 x 3 \+ 1\), the stack has 6",
        ),
        ((10, 64, 64), TINY, "cannot choose the z-distance of training from the noise .*blank or constant"),
    ],
)
def test_bad_input_is_refused_with_the_fix(shape, config, message):
    with pytest.raises(ValueError, match=message):
        next(train(np.zeros(shape, np.uint8), config))


def test_resume_refuses_a_different_network_or_a_missing_checkpoint(gala, tmp_path):
    checkpoint = tmp_path / "run.pt"
    drain(train(gala, replace(TINY, steps=2), checkpoint_path=checkpoint))
    with pytest.raises(ValueError, match="trained with width = 4, this run asks for 8"):
        next(train(gala, replace(TINY, width=8), checkpoint_path=checkpoint, resume=True))
    unregistered = tmp_path / "unregistered.pt"
    drain(train(gala, replace(TINY, steps=2, register=False), checkpoint_path=unregistered))
    with pytest.raises(ValueError, match="trained with register = False, this run asks for True"):
        next(train(gala, replace(TINY, register=True), checkpoint_path=unregistered, resume=True))
    with pytest.raises(FileNotFoundError, match="does not exist: train without resume first"):
        next(train(gala, TINY, checkpoint_path=tmp_path / "none.pt", resume=True))
    with pytest.raises(ValueError, match="needs the checkpoint_path"):
        next(train(gala, TINY, resume=True))


@pytest.mark.parametrize("budget", [{"steps": 18}, {"steps": 10**9, "seconds": 60.0}])
def test_a_short_run_records_validation_points_and_a_loss_per_depth(medulla, monkeypatch, budget):
    """18 steps, or 60 s of a clock that ticks 1 s each time it is read (about 10 steps), with the default
    cadence of every 50 steps:
    still at least VALIDATION_POINTS validations, the last at the end."""
    validated = []
    real = engine_train.validation_losses
    monkeypatch.setattr(
        engine_train, "validation_losses", lambda model, *a: validated.append(step[0]) or real(model, *a)
    )
    step = [0]
    ticks = iter(range(10**6))
    config = replace(TINY, depth=2, validation_every=50, validation_fraction=0.1, **budget)
    events, model = drain(
        train(medulla[1], config, clock=lambda: float(next(ticks))), lambda e: step.__setitem__(0, e.done)
    )
    assert len(validated) >= engine_train.VALIDATION_POINTS
    assert events[-1].val_loss_by_depth is not None and len(events[-1].val_loss_by_depth) == 2
    assert model.metadata["training"]["val_loss_by_depth"] == list(events[-1].val_loss_by_depth)
    if "seconds" not in budget:
        # Steps 4, 8, 12, 16 and the last (the validation runs within a step, before its event).
        assert validated == [3, 7, 11, 15, 17]


def test_the_time_estimate_follows_the_measured_pace():
    """A clock that advances 0.5 s each time it is read (once a step, with a step budget): the pace is 0.5 s
    a step, and the time left is the steps left at that pace, falling to 0."""
    ticks = iter(range(10**6))
    stack = np.random.default_rng(0).integers(0, 255, (12, 32, 32), dtype=np.uint8)
    config = replace(TINY, patch=16, steps=6, start_from=RANDOM, z_distance=1, validation_fraction=0)
    events, _ = drain(train(stack, config, clock=lambda: 0.5 * next(ticks)))
    assert [e.seconds_per_step for e in events] == [0.5] * 6
    assert [e.remaining_s for e in events] == [2.5, 2.0, 1.5, 1.0, 0.5, 0.0]
    assert [e.eta_s for e in events] == [e.remaining_s for e in events]
    assert {e.estimated_total_s for e in events} == {3.0}
    assert {e.total for e in events} == {6}


def test_checkpoints_default_to_the_user_data_folder(monkeypatch, tmp_path):
    """Not the temp folder, which a reboot empties; platformdirs honours XDG_DATA_HOME on Linux."""
    import platformdirs

    from napari_nrrn.model.checkpoint import checkpoint_folder

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert checkpoint_folder() == platformdirs.user_data_path("napari-nrrn") / "checkpoints"
    if sys.platform.startswith("linux"):
        assert checkpoint_folder() == tmp_path / "napari-nrrn" / "checkpoints"
