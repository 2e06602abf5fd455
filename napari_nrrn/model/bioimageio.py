"""BioImage.IO model packages (spec 0.5): export an NRRN for the BioImage Model Zoo, and load one back.

The package's network is ``triplet.NRRNTriplet``: one input, a (previous, centre, next) slice triplet in raw
grey values, one output, the denoised centre; normalisation and both branches run inside it. Export needs
``bioimageio.spec`` (the ``bioimageio`` extra); loading reads the zip with PyYAML and torch only, so the dock
and ``load_model`` take packages without the extra.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_nrrn import __version__
from napari_nrrn.model import nrrn as nrrn_module
from napari_nrrn.model import triplet as triplet_module
from napari_nrrn.model.nrrn import NRRN
from napari_nrrn.model.triplet import NRRNTriplet
from napari_nrrn.words import exists_error

INSTALL_HINT = 'pip install "napari-nrrn[bioimageio]"'
ARCHITECTURE_CALLABLE = "NRRNTriplet"
ARCHITECTURE_FILE = "nrrn_triplet.py"
STATE_DICT_FILE = "nrrn_state_dict.pt"
TORCHSCRIPT_FILE = "nrrn_torchscript.pt"
# The one line of triplet.py that the exported source replaces with nrrn.py's code.
_NRRN_IMPORT = "from napari_nrrn.model.nrrn import NRRN"
# Where our own record sits in the package's config (the spec allows extra keys there).
CONFIG_KEY = "napari_nrrn"

# Test tensors and cover: three consecutive slices of the shipped gala sample (real FIB-SEM noise), a 96 x 96
# crop of their middle.
TEST_SLICES = slice(15, 18)
TEST_CROP = (slice(2, 98), slice(52, 148))
# The network takes any image size; below this a slice's statistics mean little.
SIZE_MIN = 32
# Training-record keys too large or too internal for the package (they serve resuming a run).
_RESUME_STATE = ("optimiser", "sampler")

TAGS = [
    "fib-sem",
    "volume-em",
    "electron-microscopy",
    "denoising",
    "noise2noise",
    "self-supervised",
    "nrrn",
    "2d",
    "pytorch",
    "napari-nrrn",
]
CITATIONS = [
    {
        # The authors' code, which napari-nrrn re-implements: no paper on NRRN could be confirmed offline.
        "text": (
            "Thibault G.: NRRN, the Noise Reconstruction and Removal Network, in FiReTiTiPyLib 1.5.7 "
            "(PyTorch_Models/Denoising/NRRN.py), the authors' public code."
        ),
        "url": "https://pypi.org/project/FiReTiTiPyLib/",
    },
    {
        "text": (
            "Wu D., Gong K., Kim K., Li X., Li Q.: Consensus Neural Network for Medical Imaging Denoising "
            "with Only Noisy Training Samples. MICCAI 2019 (the consensus Noise2Noise loss)."
        ),
        "url": "https://arxiv.org/abs/1906.03639",
    },
]


class MissingExtraError(ImportError, ValueError):
    """An optional dependency is not installed. A ValueError as well, so that the command line reports it
    as bad input, in one line."""


def architecture_source() -> str:
    """One self-contained Python file (torch only) defining ``NRRN`` and ``NRRNTriplet``."""
    triplet_lines = inspect.getsource(triplet_module).splitlines(keepends=True)
    imports = [line for line in triplet_lines if line.startswith(_NRRN_IMPORT)]
    if len(imports) != 1:
        raise RuntimeError(f"triplet.py must import NRRN with exactly one line starting {_NRRN_IMPORT!r}")
    triplet_lines.remove(imports[0])
    return (
        "# NRRN for one slice triplet, written by napari-nrrn's BioImage.IO export:\n"
        "# napari_nrrn/model/nrrn.py, then napari_nrrn/model/triplet.py without its import of NRRN.\n"
        + inspect.getsource(nrrn_module)
        + "\n\n# ---- napari_nrrn/model/triplet.py ----\n"
        + "".join(triplet_lines)
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bioimageio_spec():
    try:
        import bioimageio.spec
        from bioimageio.spec.model import v0_5
    except ImportError as error:
        raise MissingExtraError(
            f"exporting a BioImage.IO package needs bioimageio.spec, which is not installed: {INSTALL_HINT}"
        ) from error
    return bioimageio.spec, v0_5


def check_export(path: str | os.PathLike, overwrite: bool = False) -> None:
    """The error ``export_bioimageio`` would raise for ``path`` or a missing ``bioimageio.spec``, before
    any work is done (front ends call it before loading or exporting a model)."""
    _check_output(Path(path), overwrite)
    _bioimageio_spec()


def _check_output(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() != ".zip":
        raise ValueError(f"{path}: a BioImage.IO package is a .zip file; give the output a .zip name")
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give the package's file name, e.g. {path / 'model.zip'}")
    if path.exists() and not overwrite:
        raise exists_error(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")


def _training_record(model: NRRN) -> dict:
    """``model.metadata`` without what only resuming a run needs."""
    record = dict(getattr(model, "metadata", None) or {})
    if isinstance(record.get("training"), dict):
        record["training"] = {k: v for k, v in record["training"].items() if k not in _RESUME_STATE}
    return record


def _test_triplet() -> np.ndarray:
    from napari_nrrn.io.samples import SAMPLE_GALA_PATH
    from napari_nrrn.io.stack import open_stack

    crop = open_stack(SAMPLE_GALA_PATH)[TEST_SLICES][(slice(None), *TEST_CROP)].compute()
    return crop.astype(np.float32)[None]


def _write_cover(raw: np.ndarray, denoised: np.ndarray, path: Path) -> None:
    from matplotlib.figure import Figure  # not pyplot: no global backend state

    figure = Figure(figsize=(8, 4), dpi=100, layout="constrained")
    for column, (image, title) in enumerate(((raw, "raw"), (denoised, "NRRN denoised"))):
        axes = figure.add_subplot(1, 2, column + 1)
        axes.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes.set_title(title)
        axes.set_axis_off()
    figure.savefig(path)


def _depth_text(network: NRRN, full_depth: int) -> str:
    if network.depth == full_depth:
        return f"all {full_depth} noise reconstruction blocks"
    kind = "each depth was trained" if network.every_depth else "only the full depth was trained"
    return f"the first {network.depth} of its {full_depth} blocks (cut with --depth {network.depth}; {kind})"


def _record_lines(record, indent: str = "") -> list[str]:
    """A nested record as a markdown list."""
    lines = []
    for key, value in record.items():
        if isinstance(value, dict) and value:
            lines.append(f"{indent}- {key}:")
            lines += _record_lines(value, indent + "  ")
        else:
            lines.append(f"{indent}- {key}: {value}")
    return lines


def _readme(network: NRRN, full_depth: int, record: dict) -> str:
    config = network.config()
    training = record.get("training", {})
    steps = training.get("step")
    trained = f"{steps} training steps" if steps is not None else "a training run not recorded in the model"
    record_text = "\n".join(_record_lines(record)) or "- no training record: the model file held none"
    noise = record.get("noise")
    noise_text = (
        "\n".join(_record_lines(noise)) if isinstance(noise, dict) else "- no noise report in the model"
    )
    return f"""# NRRN FIB-SEM denoiser (exported by napari-nrrn {__version__})

This model removes noise from FIB-SEM (focused ion beam scanning electron microscopy) image stacks. It is an
NRRN, a Noise Reconstruction and Removal Network, trained without clean images on noisy stacks: adjacent
slices serve as independent noise realisations of nearly the same image. This package computes
{_depth_text(network, full_depth)}: depth {config["depth"]}, width {config["width"]}, {trained}.

## How to use it

- **Input** `triplet`: three consecutive slices of a stack, in this order: previous, centre, next, as
  channels of one float32 tensor (batch, 3, y, x), in the stack's own grey values (no normalisation needed:
  the model z-scores each slice with its own mean and standard deviation), any height and width from
  {SIZE_MIN} pixels. For the first or last slice of a stack, which has one neighbour only, pass that
  neighbour twice.
- **Output** `denoised`: the denoised centre slice (batch, 1, y, x), float32, in the same grey values. Round
  and clip it to your data type yourself (0..255 for 8-bit data).
- Give the model whole slices where you can: it then computes exactly what napari-nrrn computes. Each
  output pixel depends on the input within {network.halo} pixels, so tiles must overlap by at least that
  much, cropped away after; even then a tile differs slightly from the whole slice, because the model
  normalises with the statistics of the image it gets.
- To denoise a whole stack, run the model once per slice, with that slice as centre.
- In napari-nrrn, `napari_nrrn.load_model("this.zip")` (or the dock's Load) returns the network itself, with
  the same output bit for bit; `napari-nrrn denoise STACK --model this.zip` denoises a stack, tiled, with
  whole-slice normalisation.

## Validation

The package holds a test input, three consecutive 96 x 96 crops of the FlyEM gala FIB-SEM sample shipped with
napari-nrrn, and the output this model computed for it at export; the cover shows both. `bioimageio test`
recomputes the output with the state-dict weights (architecture in `{ARCHITECTURE_FILE}`) and with the
TorchScript weights and compares. No quality measure is part of the package: judge the model on your own
data, for instance by the flatness (interquartile range) of grey levels along a line through resin.

## Training record

{record_text}

### Noise

{noise_text}

## Method and citations

The network follows the authors' published description and public code (FiReTiTiPyLib); training uses the
consensus Noise2Noise loss after Wu et al., MICCAI 2019 (arXiv:1906.03639). Cite both (listed in the
package's `cite` field) when you use this model.

Licence: BSD-3-Clause (napari-nrrn).
"""


def _training_details(v0_5, record: dict):
    """The spec's training summary, for a model napari-nrrn trained (others have no record to read)."""
    training = record.get("training")
    if not isinstance(training, dict):
        return v0_5.TrainingDetails()
    config = training.get("config", {})
    elapsed = training.get("elapsed_s")
    return v0_5.TrainingDetails(
        training_preprocessing="each slice z-scored with its own mean and standard deviation",
        training_batch_size=config.get("batch"),
        initial_learning_rate=config.get("lr"),
        learning_rate_schedule=config.get("schedule"),
        loss_function="consensus Noise2Noise (Wu et al., MICCAI 2019)",
        optimizer="torch.optim.Adam",
        training_duration=None if elapsed is None else elapsed / 3600,
    )


def export_bioimageio(
    model: NRRN,
    path: str | os.PathLike,
    overwrite: bool = False,
    depth: int | None = None,
    author: str | None = None,
) -> Path:
    """Write ``model`` (its cut to ``depth`` blocks, when given) as a BioImage.IO model package (spec 0.5) at
    ``path`` (.zip), atomically: nothing is written when any check fails. ``author``: who trained the weights,
    named in the package. Returns ``path``."""
    path = Path(path)
    _check_output(path, overwrite)
    if depth is not None and not 1 <= depth <= model.depth:
        raise ValueError(f"depth {depth} is not a depth of this model: choose 1..{model.depth}")
    spec, v0_5 = _bioimageio_spec()

    network = model.cut(model.depth if depth is None else depth)
    packaged = NRRNTriplet(**network.config())
    packaged.network.load_state_dict(network.state_dict())
    packaged.eval()
    record = _training_record(model)
    triplet = _test_triplet()
    with torch.no_grad():
        denoised = packaged(torch.from_numpy(triplet)).numpy()
        with warnings.catch_warnings():
            # The input-shape checks become constants of the trace, which is what they should be.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # torch deprecates TorchScript, but it is what BioImage.IO tools such as deepImageJ run.
            warnings.filterwarnings("ignore", "`torch.jit.trace", DeprecationWarning)
            # No check_trace: `bioimageio test` reruns the TorchScript on the test input, and the check
            # itself costs seconds of imports.
            torchscript = torch.jit.trace(packaged, torch.from_numpy(triplet), check_trace=False)

    with tempfile.TemporaryDirectory(prefix="napari-nrrn-bioimageio-") as folder:
        folder = Path(folder)
        files = {
            name: folder / name
            for name in (
                "test_input.npy",
                "test_output.npy",
                "sample_input.tif",
                "sample_output.tif",
                "cover.png",
                "README.md",
                ARCHITECTURE_FILE,
                STATE_DICT_FILE,
                TORCHSCRIPT_FILE,
            )
        }
        np.save(files["test_input.npy"], triplet)
        np.save(files["test_output.npy"], denoised)
        tifffile.imwrite(files["sample_input.tif"], triplet[0], photometric="minisblack")
        tifffile.imwrite(files["sample_output.tif"], denoised[0, 0], photometric="minisblack")
        _write_cover(triplet[0, 1], denoised[0, 0], files["cover.png"])
        files["README.md"].write_text(_readme(network, model.depth, record), encoding="utf-8")
        files[ARCHITECTURE_FILE].write_text(architecture_source(), encoding="utf-8")
        torch.save(packaged.state_dict(), files[STATE_DICT_FILE])
        torchscript.save(str(files[TORCHSCRIPT_FILE]))

        description = _describe(v0_5, network, model.depth, record, files, author)
        partial = path.with_name(f".{path.stem}.partial.zip")
        try:
            spec.save_bioimageio_package(description, output_path=partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return path


def _describe(v0_5, network: NRRN, full_depth: int, record: dict, files: dict, author: str | None = None):
    config = network.config()
    torch_version = v0_5.Version(torch.__version__.split("+")[0])
    spatial_in = [
        v0_5.SpaceInputAxis(id=v0_5.AxisId(name), size=v0_5.ParameterizedSize(min=SIZE_MIN, step=1))
        for name in ("y", "x")
    ]
    # No halo on the output axes: bioimageio.core would pad the input by it (mirrored), which changes the
    # border and the slice statistics; without one it computes napari-nrrn's output exactly.
    spatial_out = [
        v0_5.SpaceOutputAxis(
            id=v0_5.AxisId(name),
            size=v0_5.SizeReference(tensor_id=v0_5.TensorId("triplet"), axis_id=v0_5.AxisId(name)),
        )
        for name in ("y", "x")
    ]
    remarks = (
        ""
        if network.depth == full_depth
        else f" This package holds the model cut to depth {network.depth} of {full_depth}."
    )
    if record.get("training", {}).get("register"):
        remarks += (
            " Trained on registered neighbours: shift the previous and next slice onto the centre (by their "
            "measured sub-pixel shift, cubic interpolation, as napari-nrrn does) before the model sees them."
        )
    return v0_5.ModelDescr(
        name=f"NRRN FIB-SEM denoiser depth {config['depth']} width {config['width']}",
        description=(
            "Unsupervised denoising of FIB-SEM slices with NRRN (Noise Reconstruction and Removal Network), "
            "trained with napari-nrrn on noisy stacks only. Input: three consecutive slices (previous, "
            "centre, next) in raw grey values; output: the denoised centre slice." + remarks
        ),
        authors=[v0_5.Author(name=author or "napari-nrrn user (trained the weights)")],
        packaged_by=[v0_5.Author(name=f"napari-nrrn {__version__}")],
        cite=[v0_5.CiteEntry(text=entry["text"], url=v0_5.HttpUrl(entry["url"])) for entry in CITATIONS],
        license=v0_5.LicenseId("BSD-3-Clause"),
        tags=TAGS,
        documentation=v0_5.FileDescr(source=files["README.md"]),
        covers=[v0_5.FileDescr(source=files["cover.png"])],
        inputs=[
            v0_5.InputTensorDescr(
                id=v0_5.TensorId("triplet"),
                description="previous, centre and next slice, raw grey values",
                axes=[
                    v0_5.BatchAxis(),
                    v0_5.ChannelAxis(
                        channel_names=[v0_5.Identifier(n) for n in ("previous", "centre", "next")]
                    ),
                    *spatial_in,
                ],
                test_tensor=v0_5.FileDescr(source=files["test_input.npy"]),
                sample_tensor=v0_5.FileDescr(source=files["sample_input.tif"]),
                data=v0_5.IntervalOrRatioDataDescr(type="float32"),
            )
        ],
        outputs=[
            v0_5.OutputTensorDescr(
                id=v0_5.TensorId("denoised"),
                description="the denoised centre slice, in the input's grey values",
                axes=[
                    v0_5.BatchAxis(),
                    v0_5.ChannelAxis(channel_names=[v0_5.Identifier("denoised")]),
                    *spatial_out,
                ],
                test_tensor=v0_5.FileDescr(source=files["test_output.npy"]),
                sample_tensor=v0_5.FileDescr(source=files["sample_output.tif"]),
                data=v0_5.IntervalOrRatioDataDescr(type="float32"),
            )
        ],
        weights=v0_5.WeightsDescr(
            pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(
                source=files[STATE_DICT_FILE],
                architecture=v0_5.ArchitectureFromFileDescr(
                    source=files[ARCHITECTURE_FILE],
                    callable=v0_5.Identifier(ARCHITECTURE_CALLABLE),
                    kwargs=config,
                ),
                pytorch_version=torch_version,
            ),
            torchscript=v0_5.TorchscriptWeightsDescr(
                source=files[TORCHSCRIPT_FILE], pytorch_version=torch_version, parent="pytorch_state_dict"
            ),
        ),
        config=v0_5.Config(
            bioimageio=v0_5.BioimageioConfig(training=_training_details(v0_5, record)),
            **{CONFIG_KEY: {"full_depth": full_depth, "metadata": record}},
        ),
    )


def bioimageio_yaml_name(path: Path) -> str | None:
    """The name of the description file at the root of the zip ``path``, or None where it is no package."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if "/" not in n]
    for name in names:
        if name == "rdf.yaml" or name.endswith("bioimageio.yaml"):
            return name
    return None


def load_bioimageio(path: Path, device: str | torch.device = "cpu") -> NRRN:
    """The NRRN in a package that napari-nrrn exported, in eval mode, with ``model.metadata``."""
    import yaml

    from napari_nrrn.model.checkpoint import NORMALISATION, build_model

    with zipfile.ZipFile(path) as archive:
        try:
            description = yaml.safe_load(archive.read(bioimageio_yaml_name(path)))
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: the package's description file is not valid YAML: {error}") from error
        weights = ((description or {}).get("weights") or {}).get("pytorch_state_dict") or {}
        architecture = weights.get("architecture") or {}
        if architecture.get("callable") != ARCHITECTURE_CALLABLE:
            raise ValueError(
                f"{path} is a BioImage.IO package, but not of an NRRN exported by napari-nrrn (no "
                f"pytorch_state_dict weights with architecture {ARCHITECTURE_CALLABLE}): run it with "
                "bioimageio.core, or give napari-nrrn one of its own models"
            )
        try:
            data = archive.read(weights["source"])
        except KeyError as error:
            raise ValueError(
                f"{path}: the package lacks its weights file {weights.get('source')!r}"
            ) from error
    if weights.get("sha256") not in (None, _sha256(data)):
        raise ValueError(f"{path}: the weights file {weights['source']} is damaged (its SHA-256 differs)")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    prefix = "network."
    state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    config = dict(architecture.get("kwargs") or {})
    model = build_model(config, state, path)
    ours = ((description.get("config") or {}).get(CONFIG_KEY)) or {}
    model.metadata = {
        **(ours.get("metadata") or {}),
        "normalisation": NORMALISATION,
        "source": "BioImage.IO package",
        "bioimageio_full_depth": ours.get("full_depth", model.depth),
    }
    return model.to(device).eval()
