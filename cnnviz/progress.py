"""The one progress callback type every long operation takes."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as work advances (``done`` of ``total`` units: images, models, channels)."""


def scaled(progress: Progress | None, lo: float, hi: float, resolution: int = 1000) -> Progress | None:
    """A progress for one stage that fills the ``[lo, hi]`` share of an outer ``progress``."""
    if progress is None:
        return None
    return lambda done, total: progress(int(resolution * (lo + (hi - lo) * done / max(total, 1))), resolution)
