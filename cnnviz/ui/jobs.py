"""Background jobs shared by all sessions (held in st.cache_resource).

A job runs one library call in a thread, with the call's progress readable
from any session; its results land in the disk cache, so pages just read the
cache again once the job has finished.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class BackgroundJob:
    """Runs ``work(progress)`` in a daemon thread; errors are kept for the page to show, never lost."""

    def __init__(self, name: str, work: Callable[[Progress], object]):
        self.name = name
        self.done, self.total = 0, 1
        self.error: str | None = None
        self.result: object = None
        self._work = work
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _run(self) -> None:
        try:
            self.result = self._work(self._progress)
        except Exception as exc:
            log.exception("background job %s failed", self.name)
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._finished.set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def fraction(self) -> float:
        return min(self.done / max(self.total, 1), 1.0)

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)
