"""Background jobs shared by all sessions (held in st.cache_resource)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from ..featureviz import ActMaxConfig, maximize_channels
from ..models.build import LoadedModel

log = logging.getLogger(__name__)


class FeatureVizJob:
    """Computes activation-maximisation images of channels in a thread; results land in the disk cache."""

    def __init__(self, loaded: LoadedModel, layer: str, channels: Sequence[int], config: ActMaxConfig):
        self.loaded, self.layer, self.channels, self.config = loaded, layer, list(channels), config
        self.done, self.total = 0, len(self.channels)
        self.error: str | None = None
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"featureviz-{layer}", daemon=True)
        self._thread.start()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _run(self) -> None:
        try:
            maximize_channels(self.loaded, self.layer, self.channels, self.config, progress=self._progress)
        except Exception as exc:  # reported on the page, never lost silently
            log.exception("feature visualisation of %s failed", self.layer)
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._finished.set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)
