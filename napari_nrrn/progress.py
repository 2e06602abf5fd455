"""Progress events and the cancel signal of long jobs, free of dependencies so that every layer can use them:
the engine and the writers yield ``Progress``, the widget and the CLI turn it into progress bars."""

from __future__ import annotations

from dataclasses import dataclass


class Cancelled(Exception):
    """A job stopped because its caller asked it to (``should_stop()`` returned True)."""


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
