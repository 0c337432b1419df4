"""Compiled loops for the four ops whose numpy forms cost a pass over memory per operation:
layer norm, GELU, softmax along rows (attention's) and Adam's update.

`kernels.c` holds them as C loops. The system's C compiler builds them once per machine into a
small library (about 24 KB, in ~/.cache/tinyautograd, or where XDG_CACHE_HOME says), which
`ctypes` calls; where no cache can be written, or others may write it (loading a library
runs its code), each process builds its own. Each loop computes
its op's formula in float32 in one to three passes over the arrays, where numpy makes one pass
per operation: the training step of the Shakespeare recipe takes a seventh less time.

The numpy forms in the ops (functional.LayerNorm, ops.Gelu, tinyformer's Attention,
optim.Adam.update) stay the reference: what a reader reads, what runs wherever the loops do
not (no C compiler, float64 arrays, a second derivative), and what the tests hold each loop to.
The loops agree with them to float32 rounding, and Adam's update to the bit.

    TINYAUTOGRAD_KERNELS=numpy     the numpy forms everywhere
    TINYAUTOGRAD_KERNELS=c         the loops, or an error that says why they cannot be built
    (unset)                        the loops where they can be built, else numpy
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import hashlib
import math
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from typing import Sequence

import numpy as np

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels.c")
# -fno-math-errno and -fno-trapping-math: the loops read neither errno nor the floating-point
# flags, and without them the compiler keeps sqrtf and floorf as calls, and the loops scalar.
FLAGS = ["-O3", "-fopenmp-simd", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
         "-shared", "-fPIC"]
# The processor's own instructions (AVX2, AVX-512, ...): the library is built on the machine
# that runs it, and named after it below. ARM's compilers call the flag -mcpu. Some compilers
# refuse it (clang on ARM before version 15): the loops are then built for any processor.
NATIVE = ["-mcpu=native"] if platform.machine().lower() in ("arm64", "aarch64") else [
    "-march=native"]
MODES = ("numpy", "c")
CPUINFO = "/proc/cpuinfo"              # where Linux lists the processor's instruction sets
# The build takes under a second: a compiler still at it after this is stuck.
BUILD_SECONDS = 120
# One still at it after this is told of, once, so that nobody waits two minutes without a word.
NOTE_SECONDS = 10
# A build's scratch folder in the cache older than this was left by a build killed outright.
SCRATCH_SECONDS = 3600


class KernelError(RuntimeError):
    """TINYAUTOGRAD_KERNELS holds neither 'numpy' nor 'c', or holds 'c' where the loops cannot
    be built or loaded."""


def mode() -> str | None:
    """TINYAUTOGRAD_KERNELS, checked: 'numpy', 'c', or None when unset."""
    value = os.environ.get("TINYAUTOGRAD_KERNELS", "").strip().lower() or None
    if value not in (None,) + MODES:
        raise KernelError(f"TINYAUTOGRAD_KERNELS={value!r}: give 'numpy' or 'c', or unset it")
    return value


def check() -> None:
    """Raise KernelError now for what would raise at the first op: a bad TINYAUTOGRAD_KERNELS,
    or =c where the loops cannot be built (building them here, where they can)."""
    if mode() == "c":
        _library()


def in_use() -> bool:
    """Whether the ops run the compiled loops (building them now if need be)."""
    return _library() is not None


def build_id() -> str | None:
    """Which library the ops run, as its name says: the digest of the source, compiler, flags
    and processor it was built from, then that of its bytes (which tells one compiler version
    from another at the same path). Two runs whose ids are the same run the same loops, to the
    bit. None where the numpy forms run."""
    library = _library()
    if library is None:
        return None
    # (_compiled and _found name each library kernels-<stem's digest>-<bytes' digest>.so)
    return os.path.basename(library._name).removeprefix("kernels-").removesuffix(".so")


# The ops that have compiled loops, as summary names them.
OPS = ("layer norm", "GELU", "softmax", "Adam")


def summary(ops: Sequence[str] = OPS) -> str:
    """One line for a run's log: which forms the ops with loops run, and how to run the other.
    `ops`, those of OPS that the run uses (a model with RMSNorm and SwiGLU runs no layer norm
    and no GELU), are the ones it names; by default all four."""
    if not ops:
        return "no op of this run has compiled loops"
    if len(ops) == 1:
        named, run, forms = ops[0], "runs", "its numpy form"
    else:
        named, run, forms = f"{', '.join(ops[:-1])} and {ops[-1]}", "run", "their numpy forms"
    if in_use():
        cache = cache_directory()
        kept = cache is not None and os.path.dirname(_library()._name) == cache
        why = ("HOME is not set: set XDG_CACHE_HOME" if cache is None else
               f"other users may write {cache}: make it yours alone (chmod go-w), or set "
               f"XDG_CACHE_HOME" if _others_may_write(cache) else
               f"{cache} cannot be written: set XDG_CACHE_HOME to a folder one may write")
        built = "" if kept else f", built for this run alone as {why}"
        return (f"{named} {run} compiled loops (tinyautograd/kernels.c{built}); "
                f"TINYAUTOGRAD_KERNELS=numpy runs {forms}")
    why = ("TINYAUTOGRAD_KERNELS=numpy" if mode() == "numpy" else
           "the loops could not be built here; TINYAUTOGRAD_KERNELS=c says why")
    return f"{named} {run} {forms} ({why})"


def usable(*arrays: np.ndarray, into: tuple[np.ndarray, ...] = ()) -> bool:
    """Whether the loops compute an op on these arrays, and write into the arrays `into`:
    C-contiguous, aligned float32 numpy arrays (not Tensors: a second derivative takes the
    numpy forms), those written into writeable as well, and the library built. Elsewhere the
    numpy form runs, and raises numpy's error for a read-only output (a parameter loaded with
    mmap_mode="r", or made by np.frombuffer from bytes): C would write into it all the same,
    or crash on memory mapped read-only."""
    for i, a in enumerate(arrays + into):
        if not (isinstance(a, np.ndarray) and a.dtype == np.float32):
            return False
        flags = a.flags                 # read once: each read of .flags makes a new object
        written = i >= len(arrays)
        if not (flags.c_contiguous and flags.aligned and (flags.writeable or not written)):
            return False
    return _library() is not None


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The loaded library, built first if this machine has not built this source; None where
    the numpy forms are to run (TINYAUTOGRAD_KERNELS=numpy, or no compiler, unless =c)."""
    wanted = mode()
    if wanted == "numpy":
        return None
    try:
        return _declared(_loaded())
    except (OSError, subprocess.SubprocessError) as error:
        if wanted == "c":
            raise KernelError(f"TINYAUTOGRAD_KERNELS=c, but the kernels cannot be built: "
                              f"{error} (unset TINYAUTOGRAD_KERNELS to run the numpy forms)"
                              ) from None
        return None


def compiler() -> list[str]:
    """The C compiler's command: $CC where it is set, split into words as make takes it
    (CC="ccache gcc"), else cc, gcc or clang, whichever is found first."""
    chosen = os.environ.get("CC", "").split()
    if chosen:
        if not shutil.which(chosen[0]):
            raise OSError(f"CC={os.environ['CC']!r} is no program found: set CC to a C "
                          f"compiler, or unset it")
        return [shutil.which(chosen[0]), *chosen[1:]]
    for name in ["cc", "gcc", "clang"]:
        if shutil.which(name):
            return [shutil.which(name)]
    raise OSError("no C compiler found (cc, gcc or clang): install one, or set CC")


def cache_directory() -> str | None:
    """Where the library is kept: $XDG_CACHE_HOME/tinyautograd, else ~/.cache/tinyautograd;
    None where there is no home to find (HOME unset, and a user the system does not list, as
    in a container): ~ would be a folder named "~" in the current directory."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache")   # relative: ignored
    return os.path.join(base, "tinyautograd") if os.path.isabs(base) else None


def _others_may_write(cache: str) -> bool:
    """Whether someone other than this user could put a library in `cache`: a folder of
    another user's (a cache shared through XDG_CACHE_HOME), or one its group or everyone may
    write. Loading a library runs its code, so such a folder is not used: each process builds
    its own. A folder not made yet is made as this user's alone."""
    try:
        info = os.stat(cache)
    except OSError:
        return False
    if not hasattr(os, "getuid"):               # Windows: no owner or mode bits to read
        return False
    return info.st_uid != os.getuid() or bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _loaded() -> ctypes.CDLL:
    """The library, loaded: one built before for this source, compiler and processor, else one
    compiled now, for this processor if the compiler can, else for any. Where the cache cannot
    be written (a read-only home, a full disk, or none) or others may write it, it is compiled
    into a folder of this process's own and loaded from there, which is then removed (the
    library stays loaded): each process builds it again, in under a second, and runs the same
    loops."""
    cc = compiler()
    choices = _choices(cc)
    cache = cache_directory()
    failed_in_cache = None
    if cache is not None and not _others_may_write(cache):
        for _, stem in choices:
            found = _found(cache, stem)
            if found is not None:
                return ctypes.CDLL(found)
        with contextlib.suppress(OSError):
            os.makedirs(cache, mode=0o700, exist_ok=True)
        if os.access(cache, os.W_OK | os.X_OK):
            try:
                library = ctypes.CDLL(_compiled(cc, choices, cache))
            except TimeoutError:
                raise      # a stuck compiler would be as stuck in another folder
            except OSError as error:
                # A full disk, which no access check foresees: as a read-only cache. Where
                # the build fails in our own folder too, the cache's failure is the one told
                # (a folder the user knows, not one already removed).
                failed_in_cache = error
            else:
                _tidy(cache)          # once per build, not on each run that finds its library
                return library
    with tempfile.TemporaryDirectory(prefix="tinyautograd-", ignore_cleanup_errors=True) as own:
        try:
            return ctypes.CDLL(_compiled(cc, choices, own))
        except OSError:
            if failed_in_cache is None:
                raise
    raise failed_in_cache


def _tidy(cache: str) -> None:
    """Remove from the cache what earlier versions and killed builds left there: libraries
    named as before their names ended in a digest (kernels-<16 hex>.so, never loaded now), and
    the scratch folders of builds stopped outright (a machine switched off), once older than
    SCRATCH_SECONDS: a recent one may be another process's build, going on now."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(cache):
            with contextlib.suppress(OSError):
                if re.fullmatch(r"kernels-[0-9a-f]{16}\.so", entry.name) and entry.is_file():
                    os.remove(entry.path)
                # (A scratch folder has tempfile's name, as _compiled makes it: tmp...)
                elif (entry.name.startswith(tempfile.gettempprefix()) and entry.is_dir()
                      and time.time() - entry.stat().st_mtime > SCRATCH_SECONDS):
                    shutil.rmtree(entry.path)


def _choices(cc: list[str]) -> list[tuple[list[str], str]]:
    """The flags to build with, the faster first, each with the start of its library's name:
    a digest of the source, compiler, flags and processor, so that an edit of kernels.c, or
    another compiler, builds a library of its own."""
    with open(SOURCE, "rb") as file:
        source = file.read()
    choices = []
    for flags in [FLAGS + NATIVE, FLAGS]:
        # The processor is in the name because native code may not run on another (a home
        # directory shared between machines).
        key = hashlib.sha256(b"\0".join([source, " ".join(cc).encode(), " ".join(flags).encode(),
                                         _processor().encode()])).hexdigest()[:16]
        choices.append((flags, f"kernels-{key}"))
    return choices


def _digest(path: str) -> str:
    """The start of the SHA-256 of the file's bytes, which ends a kept library's name."""
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()[:16]


def _found(cache: str, stem: str) -> str | None:
    """The library kept in `cache` under `stem`, whole: its name ends in its bytes' digest. A
    library cut short (a full disk, a machine stopped before it had written all of it out)
    would kill the process that loads it (SIGBUS): it is removed, and built again. One that
    cannot be read (another user's) is passed over."""
    for path in sorted(glob.glob(os.path.join(glob.escape(cache), f"{stem}-*.so"))):
        try:
            whole = path.endswith(f"-{_digest(path)}.so")
        except OSError:
            continue
        if whole:
            return path
        with contextlib.suppress(OSError):
            os.remove(path)
    return None


def _compiled(cc: list[str], choices: list[tuple[list[str], str]], directory: str) -> str:
    """The path of the library compiled into `directory` with the first flags of `choices`
    that the compiler takes and whose library loads. It is loaded before it is kept: what a
    broken compiler wrote, kept, would be found by every later run and fail to load there. A
    library built for this processor that does not load (a compiler that gets the processor
    wrong) is passed over for the next flags; where none loads, the first failure is told."""
    name = os.path.basename(cc[0])
    unloadable = None
    for flags, stem in choices:
        # Compiled beside, then renamed: a process that finds the library finds all of it.
        with tempfile.TemporaryDirectory(dir=directory) as scratch:
            built = os.path.join(scratch, "kernels.so")
            status, said = _build([*cc, *flags, SOURCE, "-o", built, "-lm"])
            if status != 0:
                continue
            try:
                ctypes.CDLL(built)           # (the kept file, loaded next, is this library)
            except OSError as error:        # a broken compiler, or a folder mounted noexec
                why = str(error).removeprefix(f"{built}: ")         # (a folder now gone)
                unloadable = unloadable or OSError(
                    f"{name} built a library that does not load from {directory}: {why}")
                continue
            kept = os.path.join(directory, f"{stem}-{_digest(built)}.so")
            os.replace(built, kept)
            return kept
    raise unloadable or OSError(f"{name} failed: {said}")


def _build(command: list[str]) -> tuple[int, str]:
    """Run the compiler: its exit status, and what it said in one line (its first error or
    failure, else its last line). It runs as a process group of its own, ended whole where it
    takes longer than BUILD_SECONDS or the build is interrupted (Ctrl-C): gcc's cc1, or the
    compiler a wrapper started, would otherwise go on alone. One still at it after
    NOTE_SECONDS is told of on stderr, once."""
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, errors="replace",
                          start_new_session=True) as process:
        try:
            try:
                said = process.communicate(timeout=min(NOTE_SECONDS, BUILD_SECONDS))[1]
            except subprocess.TimeoutExpired:
                if BUILD_SECONDS <= NOTE_SECONDS:
                    raise
                print(f"tinyautograd: {os.path.basename(command[0])} has been building the "
                      f"compiled loops for {NOTE_SECONDS} s (it takes under a second); waiting "
                      f"up to {BUILD_SECONDS} s. TINYAUTOGRAD_KERNELS=numpy runs without them.",
                      file=sys.stderr, flush=True)
                said = process.communicate(timeout=BUILD_SECONDS - NOTE_SECONDS)[1]
        except BaseException as stopped:
            # (All of them ended already: ProcessLookupError, or macOS's PermissionError.)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if hasattr(os, "killpg"):
                    os.killpg(process.pid, signal.SIGKILL)      # its group, the compiler's own
                else:                                           # Windows: no groups
                    process.kill()
            process.wait()
            if isinstance(stopped, subprocess.TimeoutExpired):
                raise TimeoutError(f"{os.path.basename(command[0])} did not finish in "
                                   f"{BUILD_SECONDS} s") from None
            raise
    lines = said.strip().splitlines()
    # gcc's "error:", or a linker's "final link failed: No space left on device" (whose
    # "collect2: error" line after it says only that the linker failed)
    line = next((line for line in lines if "error" in line or "failed" in line),
                lines[-1] if lines else None)
    return process.returncode, line or f"exit status {process.returncode}, and no message"


def _processor() -> str:
    """What names this processor's instruction set: its flags where Linux lists them (x86's
    "flags", ARM's "Features"), else this machine's network name (macOS has no /proc, RISC-V
    lists no flags): a library built for one machine's processor is then never loaded on
    another that shares the home folder, where an instruction it lacks would kill the
    process."""
    try:
        with open(CPUINFO) as file:
            flags = next((line for line in file if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return platform.machine() + " " + (flags or f"machine {platform.node()}")


def _declared(lib: ctypes.CDLL) -> ctypes.CDLL:
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    for name, arguments in [
            ("exp_array", [i64, ptr, ptr]),
            ("layer_norm_forward", [i64, i64, ptr, ptr, ptr, f32, ptr, ptr, ptr]),
            ("layer_norm_backward", [i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr]),
            ("gelu", [i64, ptr, ptr, ptr]),
            ("softmax_rows", [i64, i64, ptr, ptr, i64]),
            ("softmax_rows_backward", [i64, i64, ptr, ptr, ptr, f32]),
            ("adam", [i64, ptr, ptr, ptr, ptr] + [f32] * 8)]:
        function = getattr(lib, name)
        function.argtypes, function.restype = arguments, None
    return lib


def _at(array: np.ndarray, written: bool = False) -> int:
    """The address of a C-contiguous, aligned float32 array's first number; `written`: the
    loop writes into it, so it must be writeable. Through the buffer protocol where the array
    is writable: 0.5 us, where `array.ctypes.data` takes 1.5."""
    flags = array.flags                 # read once: each read of .flags makes a new object
    if not (array.dtype == np.float32 and flags.c_contiguous and flags.aligned):
        raise ValueError(f"kernels take C-contiguous, aligned float32 arrays, got "
                         f"{array.dtype} with strides {array.strides}")
    if not flags.writeable:
        if written:
            raise ValueError("kernels write into this array, and it is read-only")
        return array.ctypes.data
    return _at_made(array)


def _at_made(array: np.ndarray) -> int:
    """The address of an array made here, by np.empty or np.empty_like of a checked one: its
    layout needs no checking (the checks cost as much as the address, and layer norm's loop
    takes six addresses for a row of generation)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(array)) if array.size else array.ctypes.data


# ---------------------------------------------------------------------------- the loops


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float,
               keep: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """LayerNorm.forward's y, x_hat and rstd (shaped (..., 1), as its numpy form's); without
    `keep` (no gradient wanted: generation) y alone, and None, None: a token's norm is a row of
    a few hundred numbers, where two more arrays cost more than the loop."""
    rows = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])      # (not -1: the last may be 0)
    y, x_hat = np.empty_like(rows), np.empty_like(rows) if keep else None
    rstd = np.empty(len(rows), np.float32)                      # (the loop's scratch as well)
    _library().layer_norm_forward(*rows.shape, _at(rows), _at(weight), _at(bias), eps,
                                  _at_made(y), _at_made(x_hat) if keep else None,
                                  _at_made(rstd))
    if not keep:
        return y.reshape(x.shape), None, None
    return y.reshape(x.shape), x_hat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,))


def layer_norm_backward(grad: np.ndarray, x_hat: np.ndarray, rstd: np.ndarray,
                        weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNorm.backward's dL/dx, dL/dweight and dL/dbias."""
    rows = grad.reshape(math.prod(grad.shape[:-1]), grad.shape[-1])
    d_x, d_weight, d_bias = np.empty_like(rows), np.empty_like(weight), np.empty_like(weight)
    _library().layer_norm_backward(*rows.shape, _at(rows), _at(x_hat), _at(rstd), _at(weight),
                                   _at_made(d_x), _at_made(d_weight), _at_made(d_bias))
    return d_x.reshape(grad.shape), d_weight, d_bias


def exp(x: np.ndarray) -> np.ndarray:
    """e^x as the loops compute it (e^88 above 88, 0 below -87): for the tests."""
    out = np.empty_like(x)
    _library().exp_array(x.size, _at(x), _at_made(out))
    return out


def gelu(x: np.ndarray, slope: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Gelu's y, and dy/dx (None without `slope`: no gradient wanted, no array for it)."""
    y, dy_dx = np.empty_like(x), np.empty_like(x) if slope else None
    _library().gelu(x.size, _at(x), _at_made(y), _at_made(dy_dx) if slope else None)
    return y, dy_dx


def softmax_rows(scores: np.ndarray, added: np.ndarray) -> None:
    """scores (..., n), in place: softmax(scores + added[r % len(added)]) along each of its
    rows r, counted over all leading axes; `added` (m, n) holds what attention adds to its
    scores: -inf where the mask blocks a key, plus the bias, if any."""
    n = scores.shape[-1]
    rows = math.prod(scores.shape[:-1])                 # (not size // n: n may be 0)
    _library().softmax_rows(rows, n, _at(scores, written=True), _at(added), len(added))


def softmax_rows_backward(d_s: np.ndarray, p: np.ndarray, row_sums: np.ndarray,
                          scale: float) -> None:
    """d_s (..., n), in place: (d_s - row_sums) * p * scale, row_sums one number a row."""
    n = d_s.shape[-1]
    rows = math.prod(d_s.shape[:-1])
    _library().softmax_rows_backward(rows, n, _at(d_s, written=True), _at(p), _at(row_sums),
                                     scale)


def adam(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, beta1: float,
         beta2: float, decay: float, step_size: float, bias2_sqrt: float, eps: float) -> None:
    """Adam.update's operations in its order, in place on param, m and v: p = p * decay -
    m / (sqrt(v) / bias2_sqrt + eps) * step_size, after m's and v's running means."""
    _library().adam(param.size, _at(param, written=True), _at(grad), _at(m, written=True),
                    _at(v, written=True),
                    beta1, 1 - beta1, beta2, 1 - beta2, decay, step_size, bias2_sqrt, eps)
