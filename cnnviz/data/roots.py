"""Allowed data roots: the only server folders a dashboard visitor may open.

Shape taken from jupyter_server's FileContentsManager: visitors name folders
*relative to a root*; one resolver turns that into an OS path and refuses
anything that lands outside the roots (``..``, absolute paths, symlinks out).
The CLI does not use this: it runs as its user and opens any path.

``CNNVIZ_DATA_ROOTS`` lists the roots, separated by ``os.pathsep`` (``:`` on
Linux). Unset or empty: no server folders at all (samples and zip uploads only).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DatasetError

ROOTS_ENV = "CNNVIZ_DATA_ROOTS"
HOW_TO_ADD_ROOTS = (f"Server folders are off. To offer folders to visitors, start the server with "
                    f"{ROOTS_ENV}=/data/images{os.pathsep}/srv/more (folders separated by '{os.pathsep}').")


def allowed_roots() -> list[Path]:
    """The configured roots, resolved, existing folders only, in the order given."""
    raw = os.environ.get(ROOTS_ENV, "")
    roots: list[Path] = []
    for part in raw.split(os.pathsep):
        if not part.strip():
            continue
        p = Path(part.strip()).expanduser().resolve()
        if p.is_dir() and p not in roots:
            roots.append(p)
    return roots


def resolve_in_roots(path: str | Path) -> Path:
    """The real path of ``path`` if it lies inside an allowed root; else a :class:`DatasetError`.

    ``path`` may be absolute or relative to the first root. It is resolved first
    (``..`` collapsed, symlinks followed), so a link that leads out of a root is refused.
    """
    roots = allowed_roots()
    if not roots:
        raise DatasetError(HOW_TO_ADD_ROOTS)
    text = str(path).strip()
    if not text or "\x00" in text:
        raise DatasetError("no folder given")
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    real = candidate.resolve()
    if not any(real == r or real.is_relative_to(r) for r in roots):
        raise DatasetError(f"{text}: outside the folders this server allows ({', '.join(map(str, roots))}); refused")
    if not real.is_dir():
        raise DatasetError(f"{text}: not a folder inside the allowed data roots")
    return real


def folders_under_roots(max_depth: int = 2, limit: int = 500) -> list[Path]:
    """Folders a visitor may pick: each root and its sub-folders down to ``max_depth`` (hidden ones skipped).

    The walk is bounded by depth and count so a huge root cannot stall a page; symlinked
    folders are listed only when they resolve inside a root.
    """
    out: list[Path] = []
    roots = allowed_roots()
    for root in roots:
        frontier = [(root, 0)]
        while frontier and len(out) < limit:
            folder, depth = frontier.pop(0)
            out.append(folder)
            if depth >= max_depth:
                continue
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
            for child in children:
                real = child.resolve()
                if any(real == r or real.is_relative_to(r) for r in roots):
                    frontier.append((child, depth + 1))
    return out[:limit]
