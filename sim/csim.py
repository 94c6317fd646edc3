"""C simulation of a generated HLS design (``hw_gen.hls``): g++ against the ap_types
headers hls4ml ships.

No vendor tool is needed: ``ap_int.h``/``hls_stream.h`` (Xilinx, Apache-2.0) come with the
pinned hls4ml package and are used from there, never copied. The harness
(``csim_main.cpp``) reads input beats from a file, calls the top once per frame and
writes output beats and every tap's beats to files; it fails (exit 3, a message on
stderr) when a frame leaves beats unread, writes too few or too many, or misplaces
TLAST. ``hls_stream.h``'s own complaints (reading an empty stream only prints a
``WARNING``) are failures here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from qfab.elements import pack_beats, port_element, unpack_beats
from qfab.errors import MismatchError, ToolError
from sim.runner import SimResult, load_manifest

#: Longest a compile or a C simulation may take before it is stopped (CNV's 300 vectors
#: take seconds; a kernel stuck in a loop would take forever).
TIMEOUT_S = 1800

#: g++ flags: C++14 as Vitis HLS compiles, -O1 (compile time dominates small runs),
#: the ap_types as a system include (their own warnings are not the design's).
CXX_FLAGS = ("-std=c++14", "-O1", "-Wno-unknown-pragmas")


@dataclass
class CsimTimes:
    compile_s: float
    run_s: float


def ap_types_dir() -> Path:
    """The ap_types headers of the installed hls4ml (``ap_int.h``, ``hls_stream.h``)."""
    try:
        root = Path(str(resources.files("hls4ml"))) / "templates" / "vivado" / "ap_types"
    except ModuleNotFoundError:
        raise ToolError(
            "HLS C simulation needs the ap_types headers of hls4ml (pip install hls4ml==1.3.0, "
            "as requirements/base.txt pins)"
        ) from None
    if not (root / "ap_int.h").is_file():
        raise ToolError(f"hls4ml is installed but {root}/ap_int.h is missing")
    return root


def compiler() -> str:
    """The C++ compiler (``$CXX`` or g++), refused clearly when absent."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise ToolError(f"HLS C simulation needs a C++ compiler: '{cxx}' is not on PATH")
    return cxx


def compiler_version() -> str:
    out = subprocess.run([compiler(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else compiler()


def build_csim(design_dir: str | os.PathLike[str], build_dir: str | os.PathLike[str]) -> Path:
    """Compile the design with its harness; return the executable."""
    manifest = load_manifest(design_dir)
    if manifest.get("backend") != "hls":
        raise ToolError(f"{design_dir}: not an HLS design folder (design.json backend)")
    design_dir, build_dir = Path(design_dir).resolve(), Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / "csim"
    cpp = [design_dir / s for s in manifest["sources"] if s.endswith(".cpp")]
    cpp += [design_dir / s for s in manifest["testbench"]]
    cmd = [
        compiler(),
        *CXX_FLAGS,
        "-isystem",
        str(ap_types_dir()),
        "-I",
        str(design_dir),
        *map(str, cpp),
        "-o",
        str(exe),
    ]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ToolError(f"g++ took over {TIMEOUT_S} s on the HLS design in {design_dir}") from None
    (build_dir / "compile.log").write_text(" ".join(cmd) + "\n" + res.stdout + res.stderr)
    if res.returncode != 0:
        raise ToolError(
            f"g++ could not compile the HLS design in {design_dir} (see {build_dir}/compile.log):"
            f"\n{res.stderr[-2000:]}"
        )
    return exe


def run_csim(
    design_dir: str | os.PathLike[str],
    x_int: np.ndarray,
    *,
    build_dir: str | os.PathLike[str],
    taps: bool = True,
) -> tuple[SimResult, CsimTimes]:
    """Compile and run the C simulation on input integers ``x_int`` ``[N, features_in]``.

    Returns the outputs and every tap's integers (model node -> ``[N, features]``) as a
    :class:`~sim.runner.SimResult` (no cycles: C simulation has no clock), and the wall
    times of compiling and of running, measured separately."""
    manifest = load_manifest(design_dir)
    build_dir = Path(build_dir).resolve()
    inp, outp = manifest["input"], manifest["output"]
    x_int = np.asarray(x_int, dtype=np.int64)
    if x_int.ndim != 2 or x_int.shape[1] != inp["features"]:
        raise ToolError(f"csim: input shape {x_int.shape}, design takes [N, {inp['features']}]")
    t0 = time.perf_counter()
    exe = build_csim(design_dir, build_dir)
    t1 = time.perf_counter()
    in_el = port_element(inp)
    beats = pack_beats(in_el.encode(x_int), inp["elems_per_beat"], in_el.bits)
    fin, fout, ftaps = build_dir / "in.hex", build_dir / "out.hex", build_dir / "taps.txt"
    fin.write_text("".join(f"{b:x}\n" for b in beats))
    fout.unlink(missing_ok=True)
    ftaps.unlink(missing_ok=True)
    args = [str(exe), str(fin), str(fout), str(ftaps) if taps else "-"]
    try:
        res = subprocess.run(args, capture_output=True, text=True, check=False, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ToolError(f"the HLS C simulation of {design_dir} ran over {TIMEOUT_S} s") from None
    t2 = time.perf_counter()
    (build_dir / "csim.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise MismatchError(f"HLS C simulation failed: {res.stderr.strip()[-2000:]}")
    warned = [line for line in res.stdout.splitlines() if "WARNING: Hls::stream" in line]
    if warned:
        raise MismatchError(f"HLS C simulation: {warned[0].strip()} (a stream read while empty)")
    out_el = port_element(outp)
    words = [int(w, 16) for w in fout.read_text().split()]
    raw = unpack_beats(
        words, outp["elems_per_beat"], out_el.bits, len(x_int), outp["beats_per_frame"]
    )
    recorded = _read_taps(manifest, ftaps, len(x_int)) if taps else {}
    result = SimResult(out_el.decode(raw), None, 0, "g++ C simulation", recorded)
    return result, CsimTimes(t1 - t0, t2 - t1)


def _read_taps(manifest: dict, path: Path, frames: int) -> dict[str, np.ndarray]:
    """Each tapped unit's beats -> its model node's integers ``[frames, features]``."""
    lines: dict[str, list[int]] = {t["node"]: [] for t in manifest["taps"]}
    if path.exists():
        with path.open() as f:
            for line in f:
                node, word = line.split()
                if node not in lines:
                    raise MismatchError(f"HLS C simulation tapped '{node}', which is no tap")
                lines[node].append(int(word, 16))
    out = {}
    for tap in manifest["taps"]:
        words = lines[tap["node"]]
        per_frame = int(tap["beats_per_frame"])
        if len(words) != frames * per_frame:
            raise MismatchError(
                f"HLS C simulation: tap '{tap['model_node']}' ({tap['node']}) wrote "
                f"{len(words)} beats, expected {frames} frames x {per_frame}"
            )
        el = port_element(tap)
        out[tap["model_node"]] = el.decode(
            unpack_beats(words, tap["elems_per_beat"], el.bits, frames, per_frame)
        )
    return out
