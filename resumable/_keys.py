"""Secret keys for signing records: making one, and keeping it in a file.

A key is 32 random bytes written as URL-safe base64 (43 characters, no
padding): text that survives environment variables, `.env` files and secret
stores, with no comma, so several keys can be listed in
RESUMABLE_SECRET_KEY_FALLBACKS. The bytes of that text are the HMAC key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_BYTES = 32


def new_key() -> str:
    """A fresh random key, as text."""
    return secrets.token_urlsafe(KEY_BYTES)


def write_key_file(path: Path, key: str) -> None:
    """Create `path` holding `key`, readable by its owner only (0600).

    Refuses an existing file rather than replace a key that records may
    already be signed with. The mode is set when the file is created, so the
    key is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key + "\n")
