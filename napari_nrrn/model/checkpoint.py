"""Model files: our checkpoints (weights + the config and metadata that made them) and the authors' state
dicts.

Loading uses ``torch.load(weights_only=True)``, so a model file can hold tensors and plain values only and can
never run code. The two kinds are told apart by their keys.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from napari_nrrn import __version__
from napari_nrrn.model.bioimageio import bioimageio_yaml_name, load_bioimageio
from napari_nrrn.model.nrrn import NRRN

FORMAT = "napari-nrrn model"
FORMAT_VERSION = 1
NORMALISATION = "zscore per slice"

# The authors' names (FiReTiTiPyLib NRRN) for our parameters, without the ".weight"/".bias" suffix.
AUTHORS_TOP = {"nrrn.conv1": "stem", "nrrn.conv3": "memory_conv", "nrrn.conv2": "tail"}
AUTHORS_BLOCK = {
    "Gate_reset_a": "reset_memory",
    "Gate_reset_b": "reset_signal",
    "Gate_update_a": "update_memory",
    "Gate_update_b": "update_signal",
    "Gates2_a": "candidate_memory",
    "Gates2_b": "candidate_signal",
}
_AUTHORS_BLOCK_KEY = re.compile(r"nrrn\.BU\.(\d+)\.(\w+)\.(weight|bias)")


def default_model_path() -> Path:
    """The model shipped with the package."""
    return Path(__file__).resolve().parents[1] / "data" / "nrrn_default.pt"


def shipped_model_paths() -> dict[str, Path]:
    """The models shipped with the package, by name, the default first; each has a card (its ``.md``)
    saying how it was trained and what it scores (docs/benchmarks.md, "Quality per compute")."""
    data = default_model_path().parent
    return {"default": default_model_path(), "width 16": data / "nrrn_width16.pt"}


# Each shipped model's PSNR (dB) at depths 1..K on held-out FlyEM medulla slices 121-126 with fresh synthetic
# noise, against the clean data: the tables of their cards (nrrn_default.md, nrrn_width16.md), measured by
# benchmarks/bench_quality_compute.py (docs/benchmarks.md, "Quality per compute"). A benchmark's numbers, not
# the user's data: the dock says so where it uses them ("fastest within 0.3 dB").
SHIPPED_PSNR_DB = {"default": (31.21, 31.32, 31.39, 31.42), "width 16": (30.99, 31.08, 31.16, 31.26)}


def checkpoint_folder() -> Path:
    """Where training keeps its checkpoints unless told otherwise: the user's data folder (platformdirs:
    ~/.local/share/napari-nrrn/checkpoints on Linux), which, unlike the temp folder, survives a reboot."""
    import platformdirs

    return platformdirs.user_data_path("napari-nrrn") / "checkpoints"


def _plain(value, where: str):
    """``value`` as plain Python data (what weights_only loading accepts), or ValueError."""
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(
        f"model metadata {where} is a {type(value).__name__}: only dicts, lists, strings, numbers, "
        "booleans, None and paths can be stored"
    )


def save_model(model: NRRN, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model`` with its config, normalisation, ``metadata`` (training parameters, data provenance)
    and the package version to one file, atomically (a temporary name renamed when complete)."""
    path = Path(path)
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "config": model.config(),
        "normalisation": NORMALISATION,
        "metadata": _plain(dict(metadata or {}), "metadata"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        torch.save(checkpoint, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _read(path: Path):
    if not path.exists():
        if path == default_model_path():
            raise FileNotFoundError(
                f"the default NRRN model {path} is not installed: train one with `napari-nrrn train` "
                "and pass it with --model, or reinstall napari-nrrn"
            )
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give the model file (.pt) inside it")
    with open(path, "rb") as file:
        # torch.save writes a zip archive; older PyTorch wrote a bare pickle (protocol marker 0x80).
        is_zip = zipfile.is_zipfile(file)
        file.seek(0)
        is_pickle = file.read(1) == b"\x80"
    if not (is_zip or is_pickle):
        raise ValueError(f"{path} is not a PyTorch model file (napari-nrrn checkpoint or NRRN state dict)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds Python objects besides tensors, which are never loaded (they could run code): "
            "save the weights with torch.save(model.state_dict(), path)"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{path} is a damaged or unreadable PyTorch file: {error}") from error


def _strip_wrappers(content):
    """The state dict inside {"state_dict": ...}, without DataParallel's "module." prefix."""
    if isinstance(content, dict) and "state_dict" in content and isinstance(content["state_dict"], dict):
        content = content["state_dict"]
    if not isinstance(content, dict) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        return None
    if content and all(k.startswith("module.") for k in content):
        content = {k[len("module.") :]: v for k, v in content.items()}
    return content


def _from_authors(state: dict, path: Path) -> tuple[dict, dict]:
    """Our config and state dict for an authors' state dict; ValueError naming what is wrong."""
    renamed, depth_indices = {}, set()
    for key, tensor in state.items():
        prefix, _, suffix = key.rpartition(".")
        if prefix in AUTHORS_TOP and suffix in ("weight", "bias"):
            renamed[f"{AUTHORS_TOP[prefix]}.{suffix}"] = tensor
            continue
        match = _AUTHORS_BLOCK_KEY.fullmatch(key)
        if match is None or match.group(2) not in AUTHORS_BLOCK:
            raise ValueError(
                f"{path}: unknown parameter {key!r} in what looks like an authors' NRRN state dict"
            )
        index = int(match.group(1))
        depth_indices.add(index)
        renamed[f"blocks.{index}.{AUTHORS_BLOCK[match.group(2)]}.{match.group(3)}"] = tensor
    if "stem.weight" not in renamed:
        raise ValueError(f"{path}: the authors' state dict lacks nrrn.conv1.weight (the stem convolution)")
    depth = len(depth_indices)
    if depth == 0 or depth_indices != set(range(depth)):
        raise ValueError(
            f"{path}: building units nrrn.BU.i must be numbered 0..K-1, found {sorted(depth_indices)}"
        )
    width = int(renamed["stem.weight"].shape[0])
    config = {"depth": depth, "width": width, "tail": "tail.weight" in renamed, "every_depth": False}
    return config, renamed


def _mismatches(expected: dict, found: dict) -> list[str]:
    """What differs between the parameters a model expects and those of a file (at most 4 items)."""
    problems = [f"{k} is missing" for k in expected if k not in found]
    problems += [f"unexpected {k}" for k in found if k not in expected]
    problems += [
        f"{k} has shape {tuple(found[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and found[k].shape != v.shape
    ]
    return problems[:4]


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> NRRN:
    """An NRRN in eval mode from our checkpoint or an authors' state dict, with ``model.metadata``."""
    path = Path(path)
    if bioimageio_yaml_name(path) is not None:
        return load_bioimageio(path, device)
    content = _read(path)
    if isinstance(content, dict) and content.get("format") == FORMAT:
        if content.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} is a napari-nrrn model of format version {content.get('format_version')}, "
                f"this napari-nrrn ({__version__}) reads version {FORMAT_VERSION}: upgrade napari-nrrn"
            )
        config, state = content["config"], content["state_dict"]
        metadata = dict(content.get("metadata", {}))
        metadata.update(
            normalisation=content.get("normalisation", NORMALISATION),
            package_version=content.get("package_version"),
            source="napari-nrrn checkpoint",
        )
    else:
        state = _strip_wrappers(content)
        if not state or not any(k.startswith("nrrn.") for k in state):
            raise ValueError(
                f"{path} is neither a napari-nrrn checkpoint nor an authors' NRRN state dict "
                "(expected keys nrrn.conv1.weight, nrrn.BU.0.Gate_reset_a.weight, ...)"
            )
        config, state = _from_authors(state, path)
        metadata = {"normalisation": NORMALISATION, "source": "authors' NRRN state dict"}
    model = build_model(config, state, path)
    model.metadata = metadata
    return model.to(device).eval()


def build_model(config: dict, state: dict, path: Path) -> NRRN:
    """An NRRN of ``config`` holding ``state``; a ValueError naming ``path`` for a bad config or weights
    that do not fit."""
    # Files from before every-depth training lack the key: NRRN's default (False) is what they are.
    if not isinstance(config.get("every_depth", False), bool):
        raise ValueError(f"{path}: NRRN config every_depth = {config['every_depth']!r} must be true or false")
    try:
        model = NRRN(**config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: invalid NRRN config {config}: {error}") from error
    problems = _mismatches(model.state_dict(), state)
    if problems:
        raise ValueError(
            f"{path}: the weights do not fit an NRRN with config {config}: {'; '.join(problems)}"
        )
    model.load_state_dict(state)
    return model
