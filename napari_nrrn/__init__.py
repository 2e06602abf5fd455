"""napari-nrrn: unsupervised NRRN denoising of FIB-SEM stacks.

The public names load lazily, so that ``open_stack`` works without importing torch.
"""

__version__ = "0.1.0"

_PUBLIC = {
    "open_stack": "napari_nrrn.io.stack",
    "voxel_size": "napari_nrrn.io.stack",
    "write_stack": "napari_nrrn.io.writers",
    "NRRN": "napari_nrrn.model.nrrn",
    "load_model": "napari_nrrn.model.checkpoint",
    "save_model": "napari_nrrn.model.checkpoint",
    "consensus_loss": "napari_nrrn.model.loss",
    "denoise_slice": "napari_nrrn.engine.inference",
    "denoise_stack": "napari_nrrn.engine.inference",
    "train": "napari_nrrn.engine.train",
    "TrainConfig": "napari_nrrn.engine.train",
    "line_profile": "napari_nrrn.measures.profiles",
    "iqr": "napari_nrrn.measures.profiles",
    "psnr": "napari_nrrn.measures.metrics",
    "ssim": "napari_nrrn.measures.metrics",
    "estimate_noise": "napari_nrrn.measures.noise",
    "NoiseReport": "napari_nrrn.measures.noise",
    "estimate_drift": "napari_nrrn.measures.drift",
    "DriftReport": "napari_nrrn.measures.drift",
    "export_bioimageio": "napari_nrrn.model.bioimageio",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'napari_nrrn' has no attribute {name!r}")
