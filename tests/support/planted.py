"""A planted pickle: the proof that a reader ran code from the store."""

from __future__ import annotations

from pathlib import Path


class Planted:
    """Unpickling it creates `path`: a reader that decodes it ran store code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))
