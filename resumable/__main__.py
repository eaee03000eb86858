"""`python -m resumable` and the `resumable` console script (see resumable/_cli)."""

from __future__ import annotations

import sys

from resumable._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
