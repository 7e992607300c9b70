"""Build the C++ kernels (packed.cpp, decode_step.cpp) once per machine, cache the library, and load it through ctypes.

The library is compiled with the system's C++ compiler (no torch headers, about two
seconds) into the cache directory, under a name that hashes the source, the flags and
the CPU, so a shared home directory never hands one CPU another's build. It is built
in a background thread: until it is ready (and forever where there is no compiler)
the packed layers run the plain-torch path of blocks.py, which gives the same numbers.
`LLMTUI_KERNELS=torch` forces that path.

Flags: -march=native (AVX-512, AVX2 or NEON, whatever this CPU has) first, then a
portable build, then one without OpenMP, each tried where the one before fails.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from llmtui.engine.loading.common import user_cache_dir

SOURCES = tuple(Path(__file__).with_name(name) for name in ("packed.cpp", "decode_step.cpp"))  # one library
_COMMON_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off"]
# This CPU's vector instructions with torch's OpenMP threads, else portable code, else one
# thread (Apple's clang has no -fopenmp).
FLAG_SETS = (
    ("-march=native", ["-fopenmp", "-march=native"]),
    ("portable", ["-fopenmp"]),
    ("portable, one thread", []),
)


@dataclass(frozen=True)
class KernelPath:
    """Which path packed layers take, and why: shown once (status line, --json, log)."""

    name: str  # "native" (C++) or "torch"
    why: str

    def describe(self) -> str:
        return f"packed weights: {'C++ kernels' if self.name == 'native' else 'plain torch'} ({self.why})"


def find_compiler() -> str | None:
    """The C++ compiler to build with: $CXX, else c++, g++ or clang++ on the PATH."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_tag() -> str:
    """What a -march=native build depends on: the machine and its CPU's feature flags."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()} {flags}"


def library_path(cache_dir: Path, compiler: str, flags: list[str]) -> Path:
    digest = hashlib.sha256()
    for part in (*(s.read_bytes() for s in SOURCES), compiler.encode(), " ".join(flags).encode(), _cpu_tag().encode()):
        digest.update(part)
    return cache_dir / "kernels" / f"packed-{digest.hexdigest()[:16]}.so"


def build(cache_dir: Path, compiler: str) -> tuple[ctypes.CDLL, str]:
    """Load the cached library, or compile it (trying each flag set); raise OSError with why it failed."""
    errors = []
    for kind, extra in FLAG_SETS:
        flags = _COMMON_FLAGS + extra
        target = library_path(cache_dir, compiler, flags)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
            os.close(fd)
            run = subprocess.run([compiler, *flags, "-o", tmp, *map(str, SOURCES)], capture_output=True, text=True)
            if run.returncode != 0:
                os.unlink(tmp)
                errors.append(f"{kind}: {(run.stderr.strip().splitlines() or ['failed'])[-1]}")
                continue
            os.replace(tmp, target)  # atomic: a second process never loads a half-written file
        try:
            return ctypes.CDLL(str(target)), f"{kind} build, {target.parent}"
        except OSError as err:
            errors.append(f"{kind}: {err}")
    raise OSError("; ".join(errors))


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.llmtui_gemv.argtypes = [ctypes.c_int, ptr, i64, i64, ptr, i64, ptr, i64]
    lib.llmtui_dequantize.argtypes = [ctypes.c_int, ptr, i64, ptr, i64, ptr]
    lib.llmtui_gemv.restype = lib.llmtui_dequantize.restype = ctypes.c_int
    lib.llmtui_gemv_span.argtypes = [ctypes.c_int, ptr, i64, i64, ptr, i64, i64, ptr, i64]
    lib.llmtui_gemv_span.restype = ctypes.c_int
    lib.llmtui_decode_step.argtypes = [ptr, ptr, i64, ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr, ptr, i64, i64, i64]
    lib.llmtui_unembed.argtypes = [ctypes.c_int, ptr, i64, ptr, i64, ptr, i64]
    lib.llmtui_unembed.restype = ctypes.c_int
    lib.llmtui_decode_step.restype = ctypes.c_int
    lib.llmtui_decode_scratch.argtypes = [ptr, i64]
    lib.llmtui_decode_scratch.restype = i64
    return lib


class NativeKernels:
    """The C++ library once built; `lib` is None until then (or for good, with `path` saying why)."""

    def __init__(self) -> None:
        self.lib: ctypes.CDLL | None = None
        self.path = KernelPath("torch", "the C++ kernels are being built")
        self._lock = threading.Lock()
        self._started = False
        self._thread: threading.Thread | None = None  # the build, where there is one

    def start(self, cache_dir: Path | None = None) -> None:
        """Build or load in the background (once per process); returns at once."""
        with self._lock:
            if self._started:
                return
            self._started = True
            if os.environ.get("LLMTUI_KERNELS", "").lower() == "torch":
                self.path = KernelPath("torch", "LLMTUI_KERNELS=torch")
                return
            compiler = find_compiler()
            if compiler is None:
                self.path = KernelPath("torch", "no C++ compiler found; set CXX to use one")
                return
            self._thread = threading.Thread(
                target=self._build, args=(cache_dir or user_cache_dir(), compiler), name="llmtui-kernels", daemon=True
            )
            self._thread.start()

    def _build(self, cache_dir: Path, compiler: str) -> None:
        try:
            lib, how = build(cache_dir, compiler)
        except OSError as err:
            self.path = KernelPath("torch", f"the C++ build failed: {str(err)[:200]}")
            return
        self.lib = _bind(lib)
        self.path = KernelPath("native", how)

    @property
    def settled(self) -> bool:
        """Whether the path is final: started, and no build still running."""
        return self._started and (self._thread is None or not self._thread.is_alive())

    def wait(self, timeout: float | None = None) -> KernelPath:
        """Block until the build is over (tests, benchmarks); returns the path taken."""
        self.start()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.path


KERNELS = NativeKernels()
