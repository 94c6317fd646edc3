"""Output folders that appear whole or not at all, for every stage.

A run, a generated design, a board build: each is written into a temporary folder beside
its destination and renamed into place only when complete, so an error or an interrupt
leaves neither a half-written folder nor parent folders the write created. One
implementation (core, standard library only) serves the orchestration, ``hw_gen`` and
``boards``, which may not import each other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qfab.errors import QfabError


@contextmanager
def atomic_folder(
    out_dir: str | os.PathLike[str], *, label: str = "", error: type[QfabError] = QfabError
) -> Iterator[Path]:
    """Yield a temp folder beside ``out_dir``; on success it replaces ``out_dir`` (an old
    one is moved aside, then removed), else it vanishes with any parent folders it had to
    create. The result gets the permissions a plain ``mkdir`` would (the umask's), not
    ``mkdtemp``'s private ``0o700``. A destination that cannot be a folder is refused with
    ``error``, its message starting with ``label`` (e.g. ``"--out "``)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise error(f"{label}{out}: exists and is not a folder")
    created = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    tmp = None
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        except OSError as exc:  # a parent that is a file, a read-only or virtual file system
            raise error(
                f"{label}{out}: cannot create a folder there ({exc.strerror}: {exc.filename})"
            ) from None
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{time.time_ns()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for parent in created:  # innermost first; only folders this call made
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise
