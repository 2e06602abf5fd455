"""Background jobs of the denoise widget: one engine generator per napari thread worker.

A job drives an engine generator of ``Progress`` events in a worker thread and turns each event into an
update of a napari progress bar. Cancelling (the widget's Cancel button, or the Cancel button of the
progress bar in napari's activity dock) sets a stop flag checked between events, never an abort of the
worker's loop: an aborted ``GeneratorWorker`` leaves its generator open, and a writer whose generator is
never closed keeps its temporary file. Here the engine generator is either told to stop (``should_stop``,
for training, which then saves its checkpoint and returns the model) or closed in the worker thread (for
writing, whose cleanup removes the temporary output).

napari's progress bar widget runs ``QApplication.processEvents()`` when it is updated, so the next queued
event of a job (or its end) can be handled *inside* the handler of the previous one. The relay therefore
does the widget's bookkeeping before it touches the progress bar, and a job's outcome (finished or stopped)
is decided in the worker thread, not from the order in which its events arrive.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Generator, Iterator
from datetime import timedelta
from functools import partial

from napari.utils.notifications import show_error
from napari.utils.progress import cancelable_progress
from qtpy.QtCore import QObject
from superqt.utils import GeneratorWorker

from napari_nrrn.progress import Cancelled

ShouldStop = Callable[[], bool]
# What a job returns when it was closed before its generator ended.
STOPPED = object()


def _drive(events: Iterator, stop: threading.Event, stop_by_closing: bool) -> Generator:
    """Forward ``events`` until they end; on ``stop``, close them (if ``stop_by_closing``).

    Returns what the engine generator returns, or ``STOPPED`` when it was closed early or stopped itself on
    the stop flag (raising ``Cancelled``, as a stack being denoised does between two tiles).
    """
    try:
        while not (stop_by_closing and stop.is_set()):
            try:
                event = next(events)
            except StopIteration as finished:
                return finished.value
            except Cancelled:
                return STOPPED
            yield event
        return STOPPED
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


class JobWorker(GeneratorWorker):
    """A generator worker cancelled through a stop flag, so that its job ends cleanly in its own thread.

    Errors are not relayed to napari's notification manager as raw exceptions (as napari's own workers
    do): the job's error handler shows a plain message instead.
    """

    def __init__(self, events: Iterator, stop: threading.Event, stop_by_closing: bool):
        super().__init__(_drive, events, stop, stop_by_closing)
        self._stop = stop

    def quit(self) -> None:
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()


def plain_message(exc: BaseException, doing: str) -> str:
    """A message a microscopist can act on, for an error raised while ``doing`` something."""
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        return (
            f"The GPU ran out of memory while {doing}. Use a smaller tile (or a smaller patch/batch for "
            "training), or choose the CPU as device."
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"The disk is full{where} while {doing}: free some space or write to another folder."
    if isinstance(exc, OSError) and exc.errno is not None:
        from napari_nrrn.io.writers import os_error_message

        text = os_error_message(exc)
        return f"Error while {doing}: {text[0].upper()}{text[1:]}."
    return f"Error while {doing}: {text}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return str(timedelta(seconds=round(seconds)))


class _CancellableBar(cancelable_progress):
    """A napari progress bar whose Cancel button (in the activity dock) stops the job.

    napari's own ``cancelable_progress`` only calls its callback while it is iterated, which a bar updated
    by hand never is.
    """

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


class _Relay(QObject):
    """Receives one job's signals on behalf of the widget that started it.

    A child of that widget, connected through bound methods: if the widget is deleted mid-job, Qt deletes
    the relay, PyQt drops its connections (no call into deleted widgets), and the job is told to stop.
    """

    def __init__(
        self,
        owner: QObject,
        worker: JobWorker,
        bar,
        describe,
        on_event,
        on_done,
        on_stopped,
        on_finished,
        on_error=None,
    ):
        super().__init__(owner)
        self.worker, self.bar, self.describe = worker, bar, describe
        self.on_event, self.on_done, self.on_stopped, self.on_finished, self.on_error = (
            on_event,
            on_done,
            on_stopped,
            on_finished,
            on_error,
        )
        self.destroyed.connect(worker.quit)

    def yielded(self, event) -> None:
        if self.on_event is not None:
            self.on_event(event)
        # Last: updating the bar may handle the job's next events before it returns.
        if event.total and event.total != self.bar.total:
            self.bar.total = event.total
        if event.done > self.bar.n:
            self.bar.update(event.done - self.bar.n)
        self.bar.set_description(self.describe(event))

    def errored(self, exc: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(exc)

    def returned(self, result) -> None:
        if result is STOPPED:
            if self.on_stopped is not None:
                self.on_stopped()
        else:
            self.on_done(result, self.worker.cancelled)

    def finished(self) -> None:
        self.on_finished()
        self.deleteLater()


def start_job(
    owner: QObject,
    make_events: Callable[[ShouldStop], Iterator],
    *,
    doing: str,
    total: int,
    describe: Callable[[object], str],
    on_done: Callable[[object, bool], None],
    on_finished: Callable[[], None],
    on_event: Callable[[object], None] | None = None,
    on_stopped: Callable[[], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    stop_by_closing: bool = True,
) -> JobWorker:
    """Start ``make_events(should_stop)`` in a thread worker with a napari progress bar, for ``owner``.

    In the GUI thread: ``on_event(event)`` for each event (then the bar shows ``describe(event)``);
    ``on_done(result, stop_requested)`` when the generator ended by itself (a trainer told to stop ends so,
    returning its model); ``on_stopped()`` when it was closed early; neither after an error, which becomes a
    notification "Error while <doing>: ..." and ``on_error(that message)``; ``on_finished()`` always, last.
    If ``owner`` is deleted first, the job is stopped and none of these run.
    """
    stop = threading.Event()
    events = make_events(stop.is_set)
    worker = JobWorker(events, stop, stop_by_closing)
    worker.pbar = bar = _CancellableBar(total=total, desc=doing, cancel_callback=worker.quit)
    plain_error = None if on_error is None else (lambda exc: on_error(plain_message(exc, doing)))
    relay = _Relay(owner, worker, bar, describe, on_event, on_done, on_stopped, on_finished, plain_error)
    worker.yielded.connect(relay.yielded)
    worker.returned.connect(relay.returned)
    worker.errored.connect(partial(_notify_error, doing))
    worker.errored.connect(relay.errored)
    worker.finished.connect(bar.close)  # not through the relay: the bar must go even if the owner has
    worker.finished.connect(relay.finished)
    worker.start()
    return worker


def _notify_error(doing: str, exc: BaseException) -> None:
    show_error(plain_message(exc, doing))
