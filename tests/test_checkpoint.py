"""Model files: our checkpoints round-trip, the authors' state dicts load to the same network, bad files fail
clearly."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from authors_nrrn import authors_nrrn

from napari_nrrn import __version__
from napari_nrrn.engine.normalise import slice_stats, zscore
from napari_nrrn.model import checkpoint
from napari_nrrn.model.checkpoint import default_model_path, load_model, save_model
from napari_nrrn.model.nrrn import NRRN


@pytest.fixture(scope="module")
def real_pairs(shared_data):
    """(prev, centre) and (next, centre) of a real FIB-SEM crop, each slice z-scored on its own."""
    stack = tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")[20:23, 10:74, 20:116]
    prev, centre, next_ = (torch.from_numpy(zscore(s, slice_stats(s))) for s in stack)
    return torch.stack([torch.stack([prev, centre]), torch.stack([next_, centre])])


@pytest.mark.parametrize(("depth", "width"), [(1, 8), (4, 8)])
def test_authors_state_dict_gives_the_authors_network(tmp_path, real_pairs, depth, width):
    torch.manual_seed(depth)
    theirs = authors_nrrn(depth, width)
    path = tmp_path / "authors.pt"
    torch.save(theirs.state_dict(), path)
    ours = load_model(path)
    assert ours.config() == {"depth": depth, "width": width, "tail": True, "every_depth": False}
    assert ours.metadata["source"] == "authors' NRRN state dict"
    with torch.no_grad():
        expected = theirs(real_pairs)
        got = ours(real_pairs)
    assert (got - expected).abs().max().item() < 1e-4
    # Not a vacuous comparison: the network changes the image.
    assert (expected - real_pairs[:, 1:]).abs().mean().item() > 0.05


def test_authors_state_dict_wrapped_or_from_data_parallel(tmp_path, real_pairs):
    torch.manual_seed(0)
    theirs = authors_nrrn(2, 4)
    with torch.no_grad():
        expected = theirs(real_pairs)
    state = theirs.state_dict()
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "parallel.pt")
    for name in ("wrapped.pt", "parallel.pt"):
        with torch.no_grad():
            got = load_model(tmp_path / name)(real_pairs)
        assert (got - expected).abs().max().item() < 1e-4


def test_save_load_round_trip_keeps_weights_config_and_metadata(tmp_path, real_pairs):
    torch.manual_seed(3)
    model = NRRN(depth=3, width=6).cut(2)  # a cut model: no tail
    metadata = {
        "training": {"steps": 500, "lr": 1e-4, "loss": np.float32(0.25)},
        "data": {"paths": [tmp_path / "stack.tif"], "shape": (50, 100, 200)},
    }
    path = save_model(model, tmp_path / "models" / "model.pt", metadata)
    assert path == tmp_path / "models" / "model.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary left
    loaded = load_model(path)
    assert loaded.config() == {"depth": 2, "width": 6, "tail": False, "every_depth": False}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert loaded.metadata["training"] == {"steps": 500, "lr": 1e-4, "loss": 0.25}
    assert loaded.metadata["data"] == {"paths": [str(tmp_path / "stack.tif")], "shape": [50, 100, 200]}
    assert loaded.metadata["normalisation"] == "zscore per slice"
    assert loaded.metadata["package_version"] == __version__
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(real_pairs), model.eval()(real_pairs))


def test_every_depth_is_kept_and_older_files_without_it_load_as_final_output_models(tmp_path, real_pairs):
    torch.manual_seed(4)
    model = NRRN(depth=2, width=4, every_depth=True).eval()
    loaded = load_model(save_model(model, tmp_path / "every_depth.pt"))
    assert loaded.config()["every_depth"] is True
    with torch.no_grad():
        assert torch.equal(loaded.cut(1)(real_pairs), model.cut(1)(real_pairs))

    content = torch.load(save_model(NRRN(2, 4), tmp_path / "new.pt"), weights_only=True)
    del content["config"]["every_depth"]  # as napari-nrrn wrote models before every-depth training
    torch.save(content, tmp_path / "older.pt")
    older = load_model(tmp_path / "older.pt")
    assert older.every_depth is False and older.cut(1).tail is None

    content["config"]["every_depth"] = "yes"
    torch.save(content, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"odd\.pt: NRRN config every_depth = 'yes' must be true or false"):
        load_model(tmp_path / "odd.pt")


def test_metadata_that_cannot_be_stored_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"metadata\['optimiser'\] is a object"):
        save_model(NRRN(1, 2), tmp_path / "m.pt", {"optimiser": object()})
    assert not list(tmp_path.iterdir())


def test_wrong_shapes_are_refused_naming_the_file(tmp_path):
    torch.manual_seed(0)
    state = authors_nrrn(2, 4).state_dict()
    state["nrrn.conv2.weight"] = torch.zeros(4, 5, 3, 3)
    torch.save(state, tmp_path / "bad_tail.pt")
    with pytest.raises(
        ValueError,
        match=r"bad_tail\.pt: the weights do not fit .*: tail\.weight has shape \(4, 5, 3, 3\), "
        r"expected \(4, 4, 3, 3\)",
    ):
        load_model(tmp_path / "bad_tail.pt")

    path = save_model(NRRN(2, 4), tmp_path / "ours.pt")
    content = torch.load(path, weights_only=True)
    content["config"]["width"] = 8
    torch.save(content, tmp_path / "wrong_config.pt")
    with pytest.raises(ValueError, match=r"wrong_config\.pt: the weights do not fit an NRRN with config"):
        load_model(tmp_path / "wrong_config.pt")


def test_unknown_or_missing_parameters_are_refused(tmp_path):
    state = authors_nrrn(2, 4).state_dict()
    torch.save({**state, "nrrn.BU.0.extra.weight": torch.zeros(1)}, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match=r"extra\.pt: unknown parameter 'nrrn\.BU\.0\.extra\.weight'"):
        load_model(tmp_path / "extra.pt")
    torch.save({k: v for k, v in state.items() if not k.startswith("nrrn.BU.0.")}, tmp_path / "gap.pt")
    with pytest.raises(ValueError, match=r"gap\.pt: building units nrrn\.BU\.i must be numbered 0\.\.K-1"):
        load_model(tmp_path / "gap.pt")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other_net.pt")
    with pytest.raises(ValueError, match=r"other_net\.pt is neither a napari-nrrn checkpoint nor"):
        load_model(tmp_path / "other_net.pt")


def test_files_that_are_not_model_files(tmp_path, shared_data):
    with pytest.raises(
        ValueError, match=r"fibsem_flyem_gala_test_50x100x200\.tif is not a PyTorch model file"
    ):
        load_model(shared_data / "fibsem_flyem_gala_test_50x100x200.tif")
    # A pickled Python object is never unpickled (it could run code).
    with open(tmp_path / "pickled.pt", "wb") as file:
        pickle.dump({"model": Path("x")}, file)
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")
    for name in ("pickled.pt", "module.pt"):
        with pytest.raises(ValueError, match=rf"{name} (holds Python objects|is not a PyTorch model file)"):
            load_model(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_missing_default_model_says_what_to_do(tmp_path, monkeypatch):
    assert default_model_path().name == "nrrn_default.pt"
    assert default_model_path().parent.name == "data"
    monkeypatch.setattr(checkpoint, "default_model_path", lambda: tmp_path / "nrrn_default.pt")
    with pytest.raises(FileNotFoundError, match="default NRRN model .* is not installed: train one"):
        load_model(tmp_path / "nrrn_default.pt")


def test_shipped_models_load_with_their_cards():
    paths = checkpoint.shipped_model_paths()
    assert list(paths) == ["default", "width 16"] and paths["default"] == default_model_path()
    sizes = {}
    for name, path in paths.items():
        assert path.with_suffix(".md").is_file(), f"{path} has no card"
        model = load_model(path)
        assert model.every_depth, f"{name}: every depth must be trained for the depth choice"
        sizes[name] = (model.depth, model.width)
    assert sizes == {"default": (4, 32), "width 16": (4, 16)}


def test_load_model_puts_the_model_on_the_device(tmp_path):
    path = save_model(NRRN(1, 2), tmp_path / "m.pt")
    model = load_model(path, device="cpu")
    assert next(model.parameters()).device.type == "cpu"
