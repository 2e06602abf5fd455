"""Progress events yielded by long engine jobs; the widget and the CLI turn them into progress bars."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units (steps, tiles, slices) of one ``stage`` after ``elapsed_s`` seconds."""

    stage: str
    done: int
    total: int
    elapsed_s: float
    message: str = ""

    @property
    def eta_s(self) -> float | None:
        if self.done <= 0 or self.total <= 0:
            return None
        return self.elapsed_s * (self.total - self.done) / self.done

    @property
    def rate(self) -> float:
        """Units per second."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class TrainProgress(Progress):
    """A training step: the loss of this step, the last validation loss and the learning rate."""

    loss: float = float("nan")
    val_loss: float | None = None
    lr: float = 0.0


def run_to_end(events):
    """Consume a generator of events without looking at them and return its value (StopIteration.value)."""
    while True:
        try:
            next(events)
        except StopIteration as finished:
            return finished.value
