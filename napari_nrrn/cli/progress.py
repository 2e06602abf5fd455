"""Progress bars for the command line: a generator of engine ``Progress`` events drawn with tqdm."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from napari_nrrn.engine.events import Progress


def drain(events: Iterator[Progress], desc: str, unit: str, total: int):
    """Consume ``events`` with a progress bar (units per second, ETA) and return the generator's value.
    ``total``: the units to expect, so that the bar's first line, drawn before any event, shows it."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=f" {unit}", file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            bar.total = event.total
            bar.update(event.done - bar.n)
