"""Copy a board build to the board over SSH and run a smoke test there.

Uses the system's OpenSSH client (``ssh``, ``scp``): no Python dependency, and the user's
own keys, agent and ``~/.ssh/config`` work as they do in a shell. Every connection runs
in batch mode (never a password prompt) with ``ConnectTimeout``, and every step has a
time limit, so an unreachable board is a clear error within the configured timeout.

The smoke test runs the copied driver with the board's ``python3``: it checks that each
file arrived whole (SHA-256 against the local copy), packs a frame with the driver, and,
where ``pynq`` is installed (a real board), loads the overlay and runs that frame through
the accelerator.

On a real PYNQ image loading an overlay needs root: deploy as ``xilinx`` with
``sudo=True`` (``qfab deploy --sudo``: the remote Python runs under ``sudo -n -E``, which
fails at once instead of prompting when the user may not sudo without a password), or as
``root`` (``--user root``). The remote folder may start with ``~/``: ssh and scp both
start in the remote home, so it is sent as a path relative to it (a quoted ``~`` would
otherwise be a literal folder named ``~``).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from boards.catalog import Board
from boards.vivado import BIT, DRIVER, HWH, RUN_IR
from qfab.errors import QfabError


class DeployError(QfabError):
    """A deploy that could not connect, copy or pass its smoke test."""


#: what a board needs: the bitstream and its .hwh (same basename), the driver, the
#: manifest it reads, and the IR (for anyone checking results on the board)
DEPLOY_FILES = (BIT, HWH, DRIVER, "design.json", RUN_IR)

#: runs on the board, in the deploy folder, with the expected hashes as argv[1]
SMOKE_TEST = r"""
import hashlib, json, sys
import numpy as np
import qfab_driver as d
want = json.loads(sys.argv[1])
got = {f: hashlib.sha256(open(f, "rb").read()).hexdigest() for f in want}
m = d.load_manifest("design.json")
fmt = d.StreamFormat(m["input"])
frame = fmt.pack(np.zeros((1, fmt.features), dtype=np.int64))
out = {"hashes_ok": got == want, "bad": sorted(f for f in want if got[f] != want[f]),
       "top": m["top"], "frame_bytes": int(frame.size), "python": sys.version.split()[0]}
try:
    import pynq  # noqa: F401
except ImportError:
    out["overlay"] = "not loaded: pynq is not installed here"
else:
    acc = d.Accelerator("qfab.bit")
    out["overlay"] = "loaded"
    out["outputs"] = acc.predict_int(np.zeros((1, fmt.features), dtype=np.int64)).tolist()
print("QFAB-SMOKE " + json.dumps(out))
"""


@dataclass
class Target:
    """Where to deploy: host, user, port, key, time limit, remote folder."""

    host: str
    user: str | None = None
    port: int = 22
    key: Path | None = None
    timeout: float = 10.0
    remote_dir: str = "qfab"
    #: the board's Python with NumPy (and pynq): on PYNQ images pynq lives in a venv,
    #: e.g. /usr/local/share/pynq-venv/bin/python
    python: str = "python3"
    #: ssh's known_hosts file (None: the user's); a new board's key is accepted and kept
    known_hosts: Path | None = None
    #: extra options for both ssh and scp, e.g. ["-F", "/dev/null"] to ignore ~/.ssh/config
    ssh_options: list[str] = field(default_factory=list)
    #: run the smoke test's Python as root (``sudo -n -E``): PYNQ needs root to load an
    #: overlay, and -n makes a password prompt a fast, clear failure instead of a hang
    sudo: bool = False

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def common_options(self) -> list[str]:
        opts = [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, int(self.timeout))}",
            "-o", "StrictHostKeyChecking=accept-new",
        ]  # fmt: skip
        if self.known_hosts is not None:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.key is not None:
            opts += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        return opts + list(self.ssh_options)

    def remote_path(self) -> str:
        """``remote_dir`` as ssh and scp are given it: ``~`` and a leading ``~/`` become a
        path relative to the remote home (where both start), since the quoting that keeps
        the path safe in the remote shell also stops the shell expanding ``~``."""
        path = self.remote_dir
        if path == "~":
            return "."
        if path.startswith("~/"):
            return path[2:].lstrip("/") or "."
        if path.startswith("~"):
            raise DeployError(
                f"deploy: remote folder {path!r}: only '~' and '~/...' (the remote user's "
                "home) are understood; give another user's home as an absolute path"
            )
        if not path:
            raise DeployError("deploy: the remote folder is empty")
        return path


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DeployError(f"deploy: '{name}' not found on PATH (Debian package openssh-client)")
    return path


def _run(cmd: list[str], what: str, target: Target, limit: float) -> str:
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise DeployError(
            f"deploy: {what} on {target.destination}:{target.port} did not finish within "
            f"{limit:.0f} s"
        ) from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise DeployError(
            f"deploy: {what} on {target.destination}:{target.port} failed after "
            f"{time.monotonic() - start:.1f} s: {reason}"
        )
    return proc.stdout


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def remote_commands(
    target: Target,
    files: list[Path],
    hashes: dict[str, str],
    *,
    ssh: str = "ssh",
    scp: str = "scp",
) -> tuple[list[str], list[str], list[str]]:
    """The three commands of a deploy, built without running anything: create the remote
    folder (ssh), copy ``files`` into it (scp), run the smoke test there (ssh), the last
    checking ``hashes`` and running under ``sudo -n -E`` when ``target.sudo``."""
    path = target.remote_path()
    remote = shlex.quote(path)
    port = ["-p", str(target.port)]
    mkdir = [ssh, *target.common_options(), *port, target.destination, f"mkdir -p {remote}"]
    copy = [scp, *target.common_options(), "-P", str(target.port), "-q", *map(str, files),
            f"{target.destination}:{path}/"]  # fmt: skip
    python = shlex.quote(target.python)
    if target.sudo:
        python = f"sudo -n -E {python}"
    script = f"{python} -c {shlex.quote(SMOKE_TEST)} {shlex.quote(json.dumps(hashes))}"
    smoke = [ssh, *target.common_options(), *port, target.destination, f"cd {remote} && {script}"]
    return mkdir, copy, smoke


def deploy(build_dir: str | Path, target: Target, board: Board | None = None) -> dict:
    """Copy :data:`DEPLOY_FILES` of ``build_dir`` to ``target.remote_dir`` and run the
    smoke test there. Returns what was copied and the smoke test's findings."""
    build_dir = Path(build_dir)
    missing = [f for f in DEPLOY_FILES if not (build_dir / f).is_file()]
    if missing:
        hint = ""
        if BIT in missing or HWH in missing:
            hint = " (the bitstream comes from Vivado: see build.json 'command')"
        raise DeployError(f"deploy: {build_dir} lacks {', '.join(missing)}{hint}")
    ssh, scp = _tool("ssh"), _tool("scp")
    files = [build_dir / f for f in DEPLOY_FILES]
    hashes = {f.name: _sha256(f) for f in files}
    mkdir, copy, smoke = remote_commands(target, files, hashes, ssh=ssh, scp=scp)
    first = target.timeout + 5  # connection set-up is bounded by ConnectTimeout
    _run(mkdir, "connecting (ssh)", target, first)
    size = sum(f.stat().st_size for f in files)
    _run(copy, "copying (scp)", target, first + 60 + size / 1e6)
    try:
        out = _run(smoke, "smoke test", target, first + 120)
    except DeployError as exc:
        if target.sudo and "password is required" in str(exc):
            raise DeployError(
                f"{exc}\n  --sudo runs 'sudo -n' (never a prompt): let "
                f"{target.user or 'this user'} sudo without a password on the board "
                "(a sudoers NOPASSWD line) or deploy as --user root"
            ) from None
        raise
    lines = [ln for ln in out.splitlines() if ln.startswith("QFAB-SMOKE ")]
    if not lines:
        raise DeployError(f"deploy: the smoke test printed no result: {out.strip()[-300:]}")
    result = json.loads(lines[-1].removeprefix("QFAB-SMOKE "))
    if not result["hashes_ok"]:
        raise DeployError(f"deploy: files changed in transit: {', '.join(result['bad'])}")
    return {
        "board": board.name if board else None,
        "destination": f"{target.destination}:{target.remote_dir}",
        "files": {f.name: f.stat().st_size for f in files},
        "smoke_test": result,
    }
