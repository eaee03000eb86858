"""pytest plugin, registered by the `pytest11` entry point: the
`resumable_store` fixture (documented in `resumable.testing`).

It imports `resumable` only when a test asks for the fixture, so merely
having the package installed adds nothing to every pytest start-up.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from resumable.stores.sqlite import SQLiteStore


@pytest.fixture
def resumable_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SQLiteStore]:
    """A fresh SQLite store in `tmp_path`, the process default for the test
    (executions started without `store=` use it), closed after. Unless
    RESUMABLE_KEY_DIR is set, its per-user signing key is made in
    `tmp_path` too: a test suite never writes to the home directory."""
    from resumable import _config
    from resumable.stores.sqlite import SQLiteStore

    if not os.environ.get("RESUMABLE_KEY_DIR"):
        monkeypatch.setenv("RESUMABLE_KEY_DIR", str(tmp_path / "resumable-keys"))

    store = SQLiteStore(tmp_path / "resumable.db")
    try:
        with _config.default_store(store):
            yield store
    finally:
        # A loop of its own: the test's loop (pytest-asyncio's, anyio's) may
        # be closed by now, and the fixture must not depend on either plugin.
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(store.close())
        finally:
            loop.close()
