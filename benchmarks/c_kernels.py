"""What compiled kernels would give without numba: benchmarks/c_kernels.c's loops (layer norm,
GELU, attention's softmax, AdamW's update), compiled with the system's C compiler and called
through ctypes, for benchmarks/envelope.py to put in our ops' place through kernel_ops.py's
wrappers (`OPS`).

The same kernels as compiled_kernels.py, the same wrappers, another compiler: numba brings
208 MB of LLVM and about 120 MB of resident memory; a C compiler is on most developers'
machines already, and the compiled library is a few tens of kilobytes, loaded in a
millisecond. This is a measurement, not part of the engine: the package never imports it.

    python benchmarks/envelope.py            # its c-kernels variant uses this module

The library is compiled once per source and compiler flags, into benchmarks/__pycache__.
"""

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from kernel_ops import ops_with

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "c_kernels.c")
# -fno-math-errno and -fno-trapping-math: the kernels read neither errno nor the floating-point
# flags, and without them the compiler keeps sqrtf and floorf as calls, and the loops scalar.
FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-ffp-contract=off", "-fno-math-errno",
         "-fno-trapping-math", "-shared", "-fPIC"]


def compiler():
    """The C compiler's path: $CC, else cc, gcc or clang, whichever is found first."""
    for name in [os.environ.get("CC"), "cc", "gcc", "clang"]:
        if name and shutil.which(name):
            return shutil.which(name)
    raise RuntimeError("no C compiler found (cc, gcc or clang): install one, or set CC")


def build():
    """The compiled library's path, compiled now if this source and these flags have not been."""
    with open(SOURCE, "rb") as file:
        source = file.read()
    cc = compiler()
    key = hashlib.sha256(source + " ".join([cc] + FLAGS).encode()).hexdigest()[:16]
    cache = os.path.join(HERE, "__pycache__")
    os.makedirs(cache, exist_ok=True)
    library = os.path.join(cache, f"c_kernels-{key}.so")
    if not os.path.exists(library):
        # Compiled beside, then renamed: a process that finds the library finds all of it.
        with tempfile.TemporaryDirectory(dir=cache) as scratch:
            built = os.path.join(scratch, "c_kernels.so")
            subprocess.run([cc, *FLAGS, SOURCE, "-o", built, "-lm"], check=True)
            os.replace(built, library)
    return library


def _load():
    lib = ctypes.CDLL(build())
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    lib.exp_array.argtypes = [i64, ptr, ptr]
    lib.layer_norm_forward.argtypes = [i64, i64, ptr, ptr, ptr, f32, ptr, ptr, ptr]
    lib.layer_norm_backward.argtypes = [i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.gelu.argtypes = [i64, ptr, ptr, ptr]
    lib.softmax_rows.argtypes = [i64, i64, ptr, ptr, i64]
    lib.softmax_backward_rows.argtypes = [i64, i64, ptr, ptr, ptr, f32]
    lib.adam.argtypes = [i64, ptr, ptr, ptr, ptr] + [f32] * 8
    for function in [lib.exp_array, lib.layer_norm_forward, lib.layer_norm_backward, lib.gelu,
                     lib.softmax_rows, lib.softmax_backward_rows, lib.adam]:
        function.restype = None
    return lib


LIB = _load()


def _at(array):
    """The address of a C-contiguous float32 array's first number, for the kernels. Through
    the buffer protocol where the array is writable: 0.5 us, where `array.ctypes.data` takes
    1.5, and a step passes some thousand arrays."""
    assert array.dtype == np.float32 and array.flags.c_contiguous, (array.dtype, array.flags)
    if array.flags.writeable and array.size:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    return array.ctypes.data


# --------------------------------------------------------------------------------------------
# the loops, as kernel_ops.py names them


def exp(x, out):
    """out = e^x, for float32 arrays of one length."""
    LIB.exp_array(x.size, _at(x), _at(out))


def layer_norm_rows(x, weight, bias, eps, y, x_hat, rstd):
    LIB.layer_norm_forward(*x.shape, _at(x), _at(weight), _at(bias), eps, _at(y), _at(x_hat),
                           _at(rstd))


def layer_norm_rows_backward(grad, x_hat, rstd, weight, d_x, d_weight, d_bias):
    LIB.layer_norm_backward(*grad.shape, _at(grad), _at(x_hat), _at(rstd), _at(weight),
                            _at(d_x), _at(d_weight), _at(d_bias))


def gelu(x, y, slope):
    LIB.gelu(x.size, _at(x), _at(y), _at(slope))


def softmax_rows(scores, blocked):
    LIB.softmax_rows(*scores.shape, _at(scores), _at(blocked), len(blocked))


def softmax_rows_backward(d_s, p, row_sums, scale):
    LIB.softmax_backward_rows(*d_s.shape, _at(d_s), _at(p), _at(row_sums), scale)


def adam(p, g, m, v, *scalars):
    """AdamW's update of one parameter; `scalars` as kernel_ops.py lists them."""
    LIB.adam(p.size, _at(p), _at(g), _at(m), _at(v), *scalars)


BLOCK = ctypes.c_int64.in_dll(LIB, "gelu_block").value      # GELU's numbers a block
OPS = ops_with(sys.modules[__name__])
