"""Who may replace a file: the folder checks shared by the database and the key file."""

from __future__ import annotations

import stat
from pathlib import Path


def open_to_others(path: Path) -> Path | None:
    """The folder of ``path``, as given or with symlinks resolved, that others may write in;
    None when neither is (or is there yet). The sticky bit does not count: it keeps others
    from renaming over a file, not from planting one beside it before it is made."""
    for folder in dict.fromkeys((path.absolute().parent, path.resolve().parent)):
        try:
            mode = folder.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & stat.S_IWOTH:
            return folder
    return None
