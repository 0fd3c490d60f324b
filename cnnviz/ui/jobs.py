"""Background jobs shared by all sessions, on one bounded pool.

Every slow job (LIME, SHAP, feature visualisation) runs on a single
:class:`concurrent.futures.ThreadPoolExecutor` of ``CNNVIZ_MAX_JOBS`` workers
(default 2), so a crowd of visitors queues work instead of starting a thread
each. Jobs submitted with the same key while one is queued or running are
merged (the caller gets the existing job). A job's progress, its place in the
queue and its error (kept, never lost) are readable from any session; results
land in the disk cache, so pages just read the cache again once it finished.
A running job that no page has looked at for ``CNNVIZ_JOB_ABANDON_S`` seconds
(default 30) is stopped at its next progress report when other jobs wait for a
worker (a visitor who switched layers should not make the next one wait);
reading a job's state (``finished``, ``fraction``, ``position``, ``status()``)
counts as looking.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

from ..progress import Progress

log = logging.getLogger(__name__)

MAX_JOBS_ENV = "CNNVIZ_MAX_JOBS"
DEFAULT_MAX_JOBS = 2
ABANDON_ENV = "CNNVIZ_JOB_ABANDON_S"
DEFAULT_ABANDON_S = 30.0  # pages poll a watched job every 1.5-2 s


class JobCancelled(Exception):
    """Raised inside an abandoned job's progress callback to free its worker."""


def abandon_seconds() -> float:
    """A running job nobody has looked at for this long is stopped when other jobs are waiting."""
    raw = os.environ.get(ABANDON_ENV, "").strip()
    try:
        return float(raw) if raw else DEFAULT_ABANDON_S
    except ValueError:
        return DEFAULT_ABANDON_S


def max_jobs() -> int:
    """Workers of the shared pool: ``CNNVIZ_MAX_JOBS`` (at least 1), default 2."""
    raw = os.environ.get(MAX_JOBS_ENV, "").strip()
    try:
        return max(1, int(raw)) if raw else DEFAULT_MAX_JOBS
    except ValueError:
        log.warning("%s=%r is not a whole number; using %d", MAX_JOBS_ENV, raw, DEFAULT_MAX_JOBS)
        return DEFAULT_MAX_JOBS


class BackgroundJob:
    """One unit of work on a :class:`JobPool`: ``work(progress)``; its error is kept for the page to show.

    ``BackgroundJob(name, work)`` submits to the shared pool without merging (kept for old callers);
    :func:`submit` with a key merges identical jobs.
    """

    def __init__(self, name: str, work: Callable[[Progress], object], *, key: Hashable | None = None,
                 pool: JobPool | None = None, _submit: bool = True):
        self.name = name
        self.key = key
        self.done, self.total = 0, 1
        self.error: str | None = None
        self.result: object = None
        self.started = False
        self.cancelled = False
        self.seen = time.monotonic()  # the last time a page read this job's state
        self._work = work
        self._finished = threading.Event()
        self._pool = pool or shared_pool()
        if _submit:
            self._pool._enqueue(self)

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self._pool.abandoned(self):
            raise JobCancelled(self.name)

    def _run(self) -> None:
        self._pool._started(self)
        try:
            self.result = self._work(self._progress)
        except JobCancelled:
            self.cancelled = True
            self.error = ("stopped: no page was watching it while other jobs waited; "
                          "open the page again to restart it")
        except Exception as exc:
            log.exception("background job %s failed", self.name)
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._pool._ended(self)
            self._finished.set()

    @property
    def finished(self) -> bool:
        self.seen = time.monotonic()
        return self._finished.is_set()

    @property
    def fraction(self) -> float:
        self.seen = time.monotonic()
        return min(self.done / max(self.total, 1), 1.0)

    @property
    def position(self) -> int | None:
        """Jobs ahead of this one in the queue (0 = next to start); None once it runs or has finished."""
        self.seen = time.monotonic()
        return self._pool.position(self)

    def status(self) -> str:
        """One line for a page: queued (with its place), running (with progress), failed or done."""
        if self.error:
            return f"failed: {self.error}"
        if self.finished:
            return "done"
        pos = self.position
        if pos is not None:
            ahead = "next in line" if pos == 0 else f"{pos} job{'s' if pos > 1 else ''} ahead"
            return f"queued, {ahead} ({self._pool.workers} run at a time on this server)"
        return f"running: {self.done}/{self.total}"

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)


class JobPool:
    """A bounded pool with a FIFO queue, key-merged jobs and queue positions."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or max_jobs()
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="cnnviz-job")
        self._lock = threading.Lock()
        self._queued: list[BackgroundJob] = []  # submitted, not started, in order
        self._active: dict[Hashable, BackgroundJob] = {}  # key -> queued or running job

    def submit(self, key: Hashable, name: str, work: Callable[[Progress], object]) -> BackgroundJob:
        """The queued or running job with this key, or a new one (a finished or failed job is not reused)."""
        with self._lock:
            job = self._active.get(key)
            if job is not None:
                return job
            job = BackgroundJob(name, work, key=key, pool=self, _submit=False)
            self._active[key] = job
            self._queued.append(job)
        self._executor.submit(job._run)
        return job

    def _enqueue(self, job: BackgroundJob) -> None:
        with self._lock:
            self._queued.append(job)
        self._executor.submit(job._run)

    def _started(self, job: BackgroundJob) -> None:
        with self._lock:
            job.started = True
            if job in self._queued:
                self._queued.remove(job)

    def _ended(self, job: BackgroundJob) -> None:
        with self._lock:
            if job.key is not None and self._active.get(job.key) is job:
                del self._active[job.key]  # a later submit with this key runs again (a retry after a failure)

    def position(self, job: BackgroundJob) -> int | None:
        with self._lock:
            return self._queued.index(job) if job in self._queued else None

    def abandoned(self, job: BackgroundJob) -> bool:
        """A running job holds a worker that others wait for, and no page has read its state lately."""
        with self._lock:
            waiting = bool(self._queued)
        return waiting and time.monotonic() - job.seen > abandon_seconds()

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queued)

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)


_SHARED: JobPool | None = None
_SHARED_LOCK = threading.Lock()


def shared_pool() -> JobPool:
    """The process-wide pool (``CNNVIZ_MAX_JOBS`` workers), created on first use."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = JobPool()
        return _SHARED


def submit(key: Hashable, name: str, work: Callable[[Progress], object]) -> BackgroundJob:
    """Run ``work(progress)`` on the shared pool, merged with a queued or running job of the same key."""
    return shared_pool().submit(key, name, work)
