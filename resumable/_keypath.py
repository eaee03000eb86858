"""Where the per-user key file is: apart from `_keys`, so that printing it
in `resumable --help` imports nothing else of the library."""

from __future__ import annotations

import os
from pathlib import Path

KEY_FILE_NAME = "secret-key"


def default_key_path() -> Path:
    """Where the per-user key of local stores lives (not created here):
    $RESUMABLE_KEY_DIR/secret-key, else $XDG_CONFIG_HOME/resumable/secret-key,
    else ~/.config/resumable/secret-key."""
    directory = os.environ.get("RESUMABLE_KEY_DIR")
    if directory:
        return Path(directory).expanduser() / KEY_FILE_NAME
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join("~", ".config")
    return Path(config).expanduser() / "resumable" / KEY_FILE_NAME
