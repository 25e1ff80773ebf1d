"""The built-in dashboard page's files (``page/``), served by the REST door at ``/`` and
``/assets/<name>``. They ship inside the package, so the page works with no internet (no CDN)."""

from __future__ import annotations

import re
from pathlib import Path

PAGE_DIR = Path(__file__).parent / "page"
INDEX = "index.html"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def read(name: str) -> tuple[bytes, str] | None:
    """(content, media type) of the page file ``name``, or None when there is no such file.

    Only plain names of files directly in ``page/`` with a known type are served: no paths, so no
    way out of the folder."""
    suffix = Path(name).suffix
    if not _NAME.fullmatch(name) or suffix not in _TYPES:
        return None
    path = PAGE_DIR / name
    if not path.is_file():
        return None
    return path.read_bytes(), _TYPES[suffix]
