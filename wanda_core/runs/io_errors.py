"""Operating-system errors said in one line, with the file and what to do (a full disk, a folder
that cannot be written), instead of a traceback.

    from wanda_core.io_errors import explain, check_writable
    check_writable(runs_dir)          # before long work: OSError if nothing can be written there
    except OSError as e: print("error: " + explain(e))
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def explain(e: OSError, what: str = "") -> str:
    """One line: which file, what went wrong, what to do. `what`: the file's role ("run records")."""
    where = e.filename or "(unknown file)"
    role = f" ({what})" if what else ""
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        return (f"no space left on the device holding {where}{role}: free some space, or write elsewhere "
                f"(--runs-dir for run records, $WANDA_CACHE for converted models), then run again; "
                f"nothing was half-written")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return (f"cannot write {where}{role}: {e.strerror or e}; choose a folder you can write "
                f"(--runs-dir for run records, $WANDA_CACHE for converted models) or fix its permissions")
    return f"{where}{role}: {e.strerror or e}"


def check_writable(folder: str | os.PathLike) -> None:
    """Create `folder` if needed and write and remove a probe file in it; OSError (with the folder
    as its filename) if that fails, so a run stops before its long work rather than after it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        if e.filename is None or not str(e.filename).startswith(str(folder)):
            e.filename = str(folder)
        raise
