"""Events of long engine jobs: ``Progress`` and ``Cancelled`` (defined in ``napari_nrrn.progress``, which the
I/O layer uses too), the training step's ``TrainProgress``, and draining a generator of events."""

from __future__ import annotations

from dataclasses import dataclass

from napari_nrrn.progress import Cancelled, Progress

__all__ = ["Cancelled", "Progress", "TrainProgress", "run_to_end"]


@dataclass(frozen=True)
class TrainProgress(Progress):
    """A training step: the loss of this step, the last validation loss (also at each depth 1..K, where the
    trainer measures it) and the learning rate. The time estimate is measured on this machine as the run goes:
    ``seconds_per_step`` over the latest steps (validation and checkpoints included), ``remaining_s`` the time
    left at that pace (or of the time budget), ``estimated_total_s`` elapsed plus remaining."""

    loss: float = float("nan")
    val_loss: float | None = None
    val_loss_by_depth: tuple[float, ...] | None = None
    lr: float = 0.0
    seconds_per_step: float | None = None
    remaining_s: float | None = None

    @property
    def estimated_total_s(self) -> float | None:
        return None if self.remaining_s is None else self.elapsed_s + self.remaining_s

    @property
    def eta_s(self) -> float | None:
        return self.remaining_s


def run_to_end(events):
    """Consume a generator of events without looking at them and return its value (StopIteration.value)."""
    while True:
        try:
            next(events)
        except StopIteration as finished:
            return finished.value
