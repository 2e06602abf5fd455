"""Progress bars for the command line: a generator of engine ``Progress`` events drawn with tqdm."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from napari_nrrn.engine.events import Progress


def drain(events: Iterator[Progress], desc: str, unit: str):
    """Consume ``events`` with a progress bar (units per second, ETA) and return the generator's value."""
    from tqdm import tqdm

    with tqdm(total=None, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            bar.total = event.total
            bar.update(event.done - bar.n)
