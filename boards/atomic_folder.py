"""An output folder that appears whole or not at all (a failed build leaves nothing half-written).

Boards write build folders (a wrapped design, a bitstream with its reports); a stage may
not import another stage's helpers, so this is boards' own copy of the pattern in
``hw_gen.manifest.write_folder`` and ``qfab.flow.atomic_output``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qfab.errors import HardwareError


@contextmanager
def atomic_folder(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp folder beside ``out_dir``; on success it replaces ``out_dir`` (an old
    one is moved aside first and then removed), on any error it is removed."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise HardwareError(f"{out}: exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's folder is private; give it mkdir's mode
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{time.time_ns()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
