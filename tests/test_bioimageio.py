"""BioImage.IO export: the package passes `bioimageio test`, loads back to the same network bit for bit, a cut
depth travels, and bad input fails clearly with nothing written."""

import ast
import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml

from napari_nrrn.cli import main
from napari_nrrn.model import bioimageio
from napari_nrrn.model.bioimageio import INSTALL_HINT, MissingExtraError, export_bioimageio
from napari_nrrn.model.checkpoint import AUTHORS_BLOCK, AUTHORS_TOP, load_model, save_model
from napari_nrrn.model.nrrn import NRRN

NOISE_REPORT = {"sigma": 11.5, "z_correlation": 0.02, "row_correlation": 0.01}


def _tiny_model(depth=3, every_depth=True) -> NRRN:
    torch.manual_seed(depth)
    model = NRRN(depth=depth, width=4, every_depth=every_depth).eval()
    model.metadata = {
        "data": {"paths": ["stack.tif"], "shape": [20, 64, 64]},
        "training": {"step": 7, "optimiser": {"state": "large"}, "config": {"batch": 2, "lr": 0.001}},
        "noise": NOISE_REPORT,
    }
    return model


def _read_package(path):
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        description = yaml.safe_load(archive.read("rdf.yaml"))
        readme = archive.read("README.md").decode()
        source = archive.read(bioimageio.ARCHITECTURE_FILE).decode()
        test_input = np.load(archive.open("test_input.npy"))
        test_output = np.load(archive.open("test_output.npy"))
    return names, description, readme, source, test_input, test_output


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = _tiny_model()
    path = export_bioimageio(model, tmp_path_factory.mktemp("package") / "nrrn.zip")
    return model, path


def test_package_passes_bioimageio_test(exported):
    from bioimageio.core import test_model

    _, path = exported
    summary = test_model(path)
    assert summary.status == "passed", summary.format()
    tested = {detail.name for detail in summary.details}
    assert any("torchscript" in name for name in tested)
    assert any("pytorch_state_dict" in name for name in tested)


def test_bioimageio_core_predicts_what_napari_nrrn_computes(exported):
    """Whole-image prediction by bioimageio.core pads nothing, so it reproduces the packaged output."""
    from bioimageio.core import predict

    _, path = exported
    _, _, _, _, test_input, test_output = _read_package(path)
    predicted = predict(model=path, inputs=test_input).members["denoised"].data.to_numpy()
    assert np.array_equal(predicted, test_output)


def test_package_loads_back_to_the_same_network_bit_for_bit(exported):
    model, path = exported
    loaded = load_model(path)
    assert type(loaded) is NRRN
    assert loaded.config() == model.config()
    x = torch.randn(2, 2, 37, 53)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.metadata["source"] == "BioImage.IO package"
    assert loaded.metadata["training"] == {"step": 7, "config": {"batch": 2, "lr": 0.001}}
    assert loaded.metadata["noise"] == NOISE_REPORT


def test_package_contents_and_record(exported):
    model, path = exported
    names, description, readme, _, _, _ = _read_package(path)
    assert {"rdf.yaml", "README.md", "cover.png", "test_input.npy", "test_output.npy"} <= names
    assert {bioimageio.STATE_DICT_FILE, bioimageio.TORCHSCRIPT_FILE, bioimageio.ARCHITECTURE_FILE} <= names
    assert description["format_version"].startswith("0.5")
    assert description["license"] == "BSD-3-Clause"
    assert {"fib-sem", "denoising", "electron-microscopy", "noise2noise"} <= set(description["tags"])
    urls = {entry["url"] for entry in description["cite"]}
    assert urls == {"https://arxiv.org/abs/1906.03639", "https://pypi.org/project/FiReTiTiPyLib/"}
    weights = description["weights"]
    assert weights["pytorch_state_dict"]["architecture"]["kwargs"] == model.config()
    assert weights["torchscript"]["parent"] == "pytorch_state_dict"
    assert [c for c in description["inputs"][0]["axes"][1]["channel_names"]] == ["previous", "centre", "next"]
    assert all("halo" not in axis for axis in description["outputs"][0]["axes"])
    record = description["config"]["napari_nrrn"]["metadata"]
    assert "optimiser" not in record["training"]
    assert record["noise"] == NOISE_REPORT
    assert "- step: 7" in readme and "- sigma: 11.5" in readme and "## Validation" in readme


def test_architecture_source_imports_torch_only_and_reproduces_the_test_output(exported):
    model, path = exported
    _, _, _, source, test_input, test_output = _read_package(path)
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == {"__future__", "torch"}
    namespace = {"__name__": "nrrn_triplet"}
    exec(compile(source, bioimageio.ARCHITECTURE_FILE, "exec"), namespace)
    packaged = namespace["NRRNTriplet"](**model.config())
    packaged.network.load_state_dict(model.state_dict())
    with torch.no_grad():
        again = packaged.eval()(torch.from_numpy(test_input)).numpy()
    assert np.array_equal(again, test_output)


def test_test_output_is_both_branches_averaged_and_denormalised(exported):
    """The packaged network computes what DESIGN.md says inference is, on the real crop in the package."""
    model, path = exported
    _, _, _, _, test_input, test_output = _read_package(path)
    slices = test_input[0].astype(np.float64)
    mean = slices.mean(axis=(1, 2), keepdims=True)
    scored = torch.from_numpy(((slices - mean) / slices.std(axis=(1, 2), keepdims=True)).astype(np.float32))
    with torch.no_grad():
        first = model(torch.stack([scored[0], scored[1]])[None])
        second = model(torch.stack([scored[2], scored[1]])[None])
    expected = ((first + second) / 2)[0, 0].numpy() * slices[1].std() + mean[1, 0, 0]
    assert test_output.shape == (1, 1, *test_input.shape[2:])
    np.testing.assert_allclose(test_output[0, 0], expected, atol=1e-3)
    assert np.abs(test_output[0, 0] - test_input[0, 1]).mean() > 0.5  # the network changed the image


def test_cut_depth_export_holds_that_depth(tmp_path):
    model = _tiny_model(depth=3)
    path = export_bioimageio(model, tmp_path / "cut.zip", depth=2)
    _, description, readme, _, _, _ = _read_package(path)
    assert description["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["depth"] == 2
    assert "cut to depth 2 of 3" in description["description"]
    assert "registered neighbours" not in description["description"]
    assert "the first 2 of its 3 blocks" in readme
    model.metadata["training"]["register"] = True
    _, registered, _, _, _, _ = _read_package(export_bioimageio(model, tmp_path / "registered.zip"))
    assert "Trained on registered neighbours: shift the previous and next slice" in registered["description"]
    loaded = load_model(path)
    assert loaded.depth == 2
    x = torch.randn(1, 2, 30, 30)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.cut(2)(x))


def test_cli_exports_an_authors_state_dict(tmp_path, capsys):
    model = _tiny_model(depth=2, every_depth=False)
    authors = {}
    for key, tensor in model.state_dict().items():
        prefix, _, suffix = key.rpartition(".")
        top = {ours: theirs for theirs, ours in AUTHORS_TOP.items()}
        if prefix in top:
            authors[f"{top[prefix]}.{suffix}"] = tensor
        else:
            _, index, name = prefix.split(".")
            block = {ours: theirs for theirs, ours in AUTHORS_BLOCK.items()}
            authors[f"nrrn.BU.{index}.{block[name]}.{suffix}"] = tensor
    torch.save(authors, tmp_path / "authors.pt")
    out = tmp_path / "authors.zip"
    assert main(["export", str(tmp_path / "authors.pt"), str(out)]) == 0
    assert f"wrote {out}: NRRN depth 2 of 2, width 4" in capsys.readouterr().out
    x = torch.randn(1, 2, 24, 24)
    with torch.no_grad():
        assert torch.equal(load_model(out)(x), model(x))


def test_existing_output_is_kept_unless_overwrite(tmp_path, capsys):
    model = _tiny_model(depth=1)
    save_model(model, tmp_path / "model.pt")
    out = tmp_path / "out.zip"
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="out.zip already exists"):
        export_bioimageio(model, out)
    assert main(["export", str(tmp_path / "model.pt"), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["export", str(tmp_path / "model.pt"), str(out), "--overwrite"]) == 0
    assert load_model(out).depth == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "out.zip"]


@pytest.mark.parametrize("content", [b"not a model\n", b"PK\x03\x04 a broken zip"])
def test_a_model_file_that_is_not_ours_is_refused(tmp_path, capsys, content):
    (tmp_path / "notes.pt").write_bytes(content)
    assert main(["export", str(tmp_path / "notes.pt"), str(tmp_path / "out.zip")]) == 2
    assert "notes.pt" in capsys.readouterr().err
    assert not (tmp_path / "out.zip").exists()


def test_a_foreign_bioimageio_package_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "unet.zip", "w") as archive:
        archive.writestr(
            "rdf.yaml", yaml.safe_dump({"type": "model", "weights": {"onnx": {"source": "w.onnx"}}})
        )
    with pytest.raises(ValueError, match="unet.zip is a BioImage.IO package, but not of an NRRN"):
        load_model(tmp_path / "unet.zip")


def test_damaged_package_weights_are_refused(exported, tmp_path):
    _, path = exported
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == bioimageio.STATE_DICT_FILE:
                data = data[:-8] + bytes(8)
            target.writestr(item, data)
    with pytest.raises(ValueError, match="damaged.zip: the weights file nrrn_state_dict.pt is damaged"):
        load_model(damaged)


@pytest.mark.parametrize("depth", [0, 4])
def test_depth_outside_the_model_is_refused(tmp_path, capsys, depth):
    model = _tiny_model(depth=3)
    with pytest.raises(ValueError, match=r"choose 1\.\.3"):
        export_bioimageio(model, tmp_path / "out.zip", depth=depth)
    save_model(model, tmp_path / "model.pt")
    assert main(["export", str(tmp_path / "model.pt"), str(tmp_path / "out.zip"), "--depth", str(depth)]) == 2
    assert "model.pt has depth 3; choose 1..3" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_output_must_be_a_zip_file(tmp_path):
    with pytest.raises(ValueError, match="give the output a .zip name"):
        export_bioimageio(_tiny_model(depth=1), tmp_path / "package")
    assert list(tmp_path.iterdir()) == []


def test_missing_bioimageio_spec_names_the_extra(tmp_path, monkeypatch, capsys):
    # A None entry in sys.modules makes the import raise ImportError, as when the package is absent.
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)
    monkeypatch.setitem(sys.modules, "bioimageio.spec.model", None)
    with pytest.raises(MissingExtraError, match="bioimageio.spec") as raised:
        export_bioimageio(_tiny_model(depth=1), tmp_path / "out.zip")
    assert INSTALL_HINT in str(raised.value) and isinstance(raised.value, ImportError)
    save_model(_tiny_model(depth=1), tmp_path / "model.pt")
    assert main(["export", str(tmp_path / "model.pt"), str(tmp_path / "out.zip")]) == 2
    assert 'pip install "napari-nrrn[bioimageio]"' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
