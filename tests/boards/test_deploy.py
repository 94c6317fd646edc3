"""``qfab deploy`` against a real OpenSSH server the test starts on 127.0.0.1 (its own host
key, authorized key and config in tmp_path): the files arrive with equal contents and
the smoke test runs the copied driver, also into a ``~/`` folder; an unreachable host fails
clearly in time. The test's ssh/scp run with ``-F /dev/null`` (no user config). The built
commands themselves (``~`` mapping, ``sudo -n -E``) are checked without a server."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from boards.catalog import get_board
from boards.deploy import (
    DEPLOY_FILES,
    SMOKE_TEST,
    DeployError,
    Target,
    deploy,
    remote_commands,
)
from boards.pynq_driver import dma_stream_bits
from boards.vivado import BIT, HWH, write_vivado_build
from qfab.cli import main
from tests.boards.run_folder import make_run_folder

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
#: the test's ssh/scp read no ~/.ssh/config: the CI user's own settings cannot interfere
NO_USER_CONFIG = ["-F", "/dev/null"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    """An sshd on 127.0.0.1 running as the current user, key login only."""
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True
        )
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    port = free_port()
    sftp = next(
        (
            p
            for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server")
            if Path(p).exists()
        ),
        None,
    )
    config = keys / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        + (f"Subsystem sftp {sftp}\n" if sftp else "")
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    log = tmp_path / "sshd.log"  # a file, not a pipe: sshd never blocks on a full pipe
    with log.open("w") as err:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=err)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail(f"sshd exited ({proc.returncode}): {log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"sshd not listening on 127.0.0.1:{port} after 10 s: {log.read_text()}")
            time.sleep(0.05)
        known = keys / "known_hosts"
        yield Target(
            "127.0.0.1",
            port=port,
            key=keys / "client",
            timeout=5,
            known_hosts=known,
            ssh_options=list(NO_USER_CONFIG),
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def build_dir(tmp_path):
    make_run_folder(tmp_path / "run", "mlp_dwc")
    build = write_vivado_build(tmp_path / "run", get_board("pynq-z2"), tmp_path / "build")
    # Vivado cannot run here: the .bit/.hwh are stand-in bytes (the copy must keep them whole)
    (build.folder / BIT).write_bytes(os.urandom(4096))
    (build.folder / HWH).write_text("<MODULES/>\n")
    return build.folder


def test_deploy_copies_every_file_and_runs_the_smoke_test(sshd, build_dir, tmp_path):
    sshd.remote_dir = str(tmp_path / "board" / "qfab")
    sshd.python = sys.executable  # the board's python3 with NumPy (this venv's, here)
    result = deploy(build_dir, sshd, get_board("pynq-z2"))
    remote = Path(sshd.remote_dir)
    for name in DEPLOY_FILES:
        assert (remote / name).read_bytes() == (build_dir / name).read_bytes(), name
    smoke = result["smoke_test"]
    assert smoke["hashes_ok"] and smoke["top"] == "qfab_top"
    inp = json.loads((build_dir / "design.json").read_text())["input"]
    assert smoke["frame_bytes"] == inp["beats_per_frame"] * dma_stream_bits(inp["tdata_bits"]) // 8
    assert smoke["overlay"] == "not loaded: pynq is not installed here"


def test_deploy_to_a_home_relative_folder(sshd, build_dir, tmp_path):
    # sshd runs as this user: '~/' is this user's home as sshd sees it (passwd, not $HOME)
    name = f".qfab-deploy-test-{os.getpid()}-{tmp_path.name}"
    home = Path(pwd.getpwuid(os.getuid()).pw_dir) / name
    sshd.remote_dir, sshd.python = f"~/{name}", sys.executable
    try:
        assert deploy(build_dir, sshd)["smoke_test"]["hashes_ok"]
        assert (home / BIT).read_bytes() == (build_dir / BIT).read_bytes()
        assert not (home.parent / "~" / name).exists()  # no literal '~' folder
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_deploy_without_a_bitstream_is_refused_before_connecting(sshd, build_dir):
    (build_dir / BIT).unlink()
    with pytest.raises(DeployError, match=r"lacks qfab.bit \(the bitstream comes from Vivado"):
        deploy(build_dir, sshd)


def test_a_wrong_key_is_a_clear_error(sshd, build_dir, tmp_path):
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True
    )
    sshd.key = tmp_path / "other"
    with pytest.raises(
        DeployError, match="connecting \\(ssh\\) on 127.0.0.1:.* failed.*Permission denied"
    ):
        deploy(build_dir, sshd)


@pytest.mark.parametrize("host,port", [("127.0.0.1", None), ("10.255.255.1", 22)])
def test_unreachable_host_fails_clearly_within_the_timeout(host, port, build_dir):
    assert shutil.which("ssh") and shutil.which("scp"), (
        "ssh/scp not on PATH: install openssh-client (make install)"
    )
    target = Target(host, port=port or free_port(), timeout=3, ssh_options=list(NO_USER_CONFIG))
    start = time.monotonic()
    with pytest.raises(DeployError, match=f"connecting \\(ssh\\) on {host}:{target.port}"):
        deploy(build_dir, target)
    assert time.monotonic() - start < target.timeout + 5


def test_remote_commands_map_home_relative_folders_and_sudo():
    files = [Path("/build/qfab.bit"), Path("/build/design.json")]
    hashes = {"qfab.bit": "ab", "design.json": "cd"}
    for remote_dir, path in [("~/qfab", "qfab"), ("~", "."), ("~/", "."), ("/opt/q b", "/opt/q b")]:
        target = Target("board", user="xilinx", remote_dir=remote_dir, ssh_options=["-F", "/x"])
        mkdir, copy, smoke = remote_commands(target, files, hashes)
        assert mkdir[-2:] == ["xilinx@board", f"mkdir -p {shlex.quote(path)}"], mkdir
        assert copy[-3:] == ["/build/qfab.bit", "/build/design.json", f"xilinx@board:{path}/"]
        assert smoke[-1].startswith(f"cd {shlex.quote(path)} && python3 -c "), smoke[-1]
        for cmd in (mkdir, copy, smoke):
            assert "~" not in " ".join(cmd[-2:]) and cmd[cmd.index("-F") + 1] == "/x"
    target = Target("board", remote_dir="~/qfab", python="/venv/bin/python", sudo=True)
    smoke = remote_commands(target, files, hashes)[2][-1]
    assert smoke.startswith("cd qfab && sudo -n -E /venv/bin/python -c "), smoke
    # the remote shell splits the command back into: sudo, its options, python, script, hashes
    words = shlex.split(smoke.split(" && ", 1)[1])
    assert words[:5] == ["sudo", "-n", "-E", "/venv/bin/python", "-c"]
    assert words[5] == SMOKE_TEST and json.loads(words[6]) == hashes
    with pytest.raises(DeployError, match="'~other/q': only '~' and '~/...'"):
        remote_commands(Target("board", remote_dir="~other/q"), files, hashes)


def test_cli_deploy(sshd, build_dir, tmp_path, capsys):
    remote = tmp_path / "board"
    argv = ["deploy", str(build_dir), "--board", "pynq-z2", "--host", "127.0.0.1"]
    argv += ["--port", str(sshd.port), "--key", str(sshd.key), "--remote-dir", str(remote)]
    argv += ["--known-hosts", str(sshd.known_hosts), "--python", sys.executable]
    argv += ["--ssh-config", "/dev/null"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"to 127.0.0.1:{remote}" in out and "smoke test: files intact" in out
    assert (remote / "qfab_driver.py").read_bytes() == (build_dir / "qfab_driver.py").read_bytes()
    # a build for another board is refused before connecting
    assert main([*argv[:3], "zcu104", *argv[4:]]) == 2
    assert "was built for pynq-z2, not zcu104" in capsys.readouterr().err
