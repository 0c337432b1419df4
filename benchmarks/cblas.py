"""Another BLAS library's float32 products beside numpy's, on the training step's own shapes.

    python benchmarks/cblas.py --cblas /path/to/libmkl_rt.so.3
    python benchmarks/cblas.py --cblas /path/to/libblis.so.4 --reps 500 --json cblas.json
    python benchmarks/cblas.py --blis           # BLIS as the `blis` pip package builds it

benchmarks/train_step.py prints how long numpy's BLAS (OpenBLAS) and PyTorch's (MKL on x86)
take for the step's products. Where numpy's is the slower, would another library close the
gap? This times each product of one micro-batch's linear layers, in the layouts the engine
hands them to BLAS (the forward X @ W, the gradients dY @ W^T and X^T @ dY, a transposed operand
being a view, not a copy), once with numpy and once with `cblas_sgemm` from the shared library
named by --cblas, called through ctypes: one thread each, the operands hot, the median of
--reps calls. Then the micro-batch's total, each product times its count in the model.
Attention's batched products are left out: a CBLAS has no one call for a batch of products.

Intel's MKL comes as a pip wheel (`pip download mkl --no-deps`, then unzip it: the library is
under mkl-*.data/data/lib/). It runs sequentially here: MKL_THREADING_LAYER=SEQUENTIAL, as
for any library the thread-count variables are set to 1 before it is loaded. BLIS comes as a
pip package too (`pip install blis`, the one spaCy uses), which has no CBLAS library to name:
--blis times its own `gemm` instead. BLIS picks its kernels when it starts (BLIS_ARCH_DEBUG=1
says which).
"""

import argparse
import ctypes
import os
import statistics
import time

from alternate import Help, at_least, json_file, set_thread_variables, write_figures

if __name__ == "__main__":
    set_thread_variables(os.environ, 1)       # before numpy and the library are loaded
    os.environ["MKL_THREADING_LAYER"] = "SEQUENTIAL"

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from recipe import BATCH, CONTEXT, D_FF, D_MODEL, N_LAYER, VOCAB  # noqa: E402

MICRO_BATCHES = 2                              # the trainer's default, as in train_step.py
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112     # CBLAS's enum values


def linear_products(rows):
    """(name, count, a, b) for each product of one micro-batch's linears: every layer's q, k, v
    and out, fc1, fc2, and the tied head x @ E^T, forward and both gradients, as the engine
    computes them (ops._matmul_grads): transposes are views, which BLAS reads transposed."""
    rng = np.random.default_rng(0)
    products = []
    for count, k, n, layer in [(4 * N_LAYER, D_MODEL, D_MODEL, "q k v out"),
                               (N_LAYER, D_MODEL, D_FF, "fc1"),
                               (N_LAYER, D_FF, D_MODEL, "fc2"),
                               (1, D_MODEL, VOCAB, "head")]:
        x = rng.standard_normal((rows, k), dtype=np.float32)          # the layer's input
        w = rng.standard_normal((k, n), dtype=np.float32)             # its weight (in, out)
        d_y = rng.standard_normal((rows, n), dtype=np.float32)        # its output's gradient
        products += [(f"{layer}: X @ W", count, x, w),
                     (f"{layer}: dY @ W^T", count, d_y, w.T),
                     (f"{layer}: X^T @ dY", count, x.T, d_y)]
    return products


class CBLAS:
    """cblas_sgemm from a shared library, for 2-D float32 operands each C- or F-contiguous."""

    def __init__(self, path):
        self.sgemm = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL).cblas_sgemm
        i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
        self.sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
        self.sgemm.restype = None

    @staticmethod
    def _layout(x):
        """(CBLAS's transpose flag, leading dimension) of a row-major matrix or its .T view."""
        if x.flags.c_contiguous:
            return NO_TRANS, x.strides[0] // x.itemsize
        return TRANS, x.strides[1] // x.itemsize    # x.T of a C-contiguous array

    def matmul(self, a, b):
        (m, k), n = a.shape, b.shape[1]
        c = np.empty((m, n), np.float32)
        (trans_a, lda), (trans_b, ldb) = self._layout(a), self._layout(b)
        self.sgemm(ROW_MAJOR, trans_a, trans_b, m, n, k, 1.0, a.ctypes.data, lda,
                   b.ctypes.data, ldb, 0.0, c.ctypes.data, n)
        return c


class BLIS:
    """The `blis` package's gemm, for 2-D float32 operands each C-contiguous or a .T view."""

    def __init__(self):
        import blis.py
        self.gemm = blis.py.gemm

    def matmul(self, a, b):
        def stored(x):            # (the array as stored, whether to read it transposed)
            return (x, False) if x.flags.c_contiguous else (x.T, True)
        (a, trans_a), (b, trans_b) = stored(a), stored(b)
        return self.gemm(a, b, trans1=trans_a, trans2=trans_b, beta=0.0)


def median_us(product, a, b, reps):
    product(a, b)                                  # untimed: the first call may load code
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        product(a, b)
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def main():
    options = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    other_library = options.add_mutually_exclusive_group(required=True)
    other_library.add_argument("--cblas", metavar="PATH",
                               help="the shared library whose cblas_sgemm is timed beside numpy's")
    other_library.add_argument("--blis", action="store_true",
                               help="time the gemm of the `blis` package (pip install blis)")
    options.add_argument("--reps", type=at_least(1), default=300, help="calls per product")
    options.add_argument("--json", metavar="PATH", type=json_file,
                         help="also write the figures here")
    args = options.parse_args()

    if args.blis:
        try:
            other, other_name = BLIS(), "the blis package's gemm"
        except ImportError:
            options.error("--blis times the blis package, which is not installed: pip install blis")
    else:
        try:
            other = CBLAS(args.cblas)
        except (OSError, AttributeError) as e:       # no such file, or no cblas_sgemm in it
            options.error(f"--cblas {args.cblas}: not a library with cblas_sgemm ({e})")
        other_name = f"cblas_sgemm of {os.path.basename(args.cblas)}"
    threadpool_limits(1)
    rows = BATCH * CONTEXT // MICRO_BATCHES
    print(f"one micro-batch's linears ({rows} rows), float32, one thread, median of "
          f"{args.reps} calls; other = {other_name}")
    print(f"{'product':22s} {'shape':>18s} {'count':>5s} {'numpy us':>9s} {'GFLOP/s':>8s} "
          f"{'other us':>9s} {'GFLOP/s':>8s} {'other/numpy':>11s}")
    rows_out, numpy_total, other_total = [], 0.0, 0.0
    for name, count, a, b in linear_products(rows):
        assert np.allclose(other.matmul(a, b), a @ b, rtol=1e-4, atol=1e-3), name
        numpy_us = median_us(np.matmul, a, b, args.reps)
        other_us = median_us(other.matmul, a, b, args.reps)
        flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
        numpy_total += count * numpy_us
        other_total += count * other_us
        shape = f"{a.shape}{b.shape}".replace(" ", "")
        print(f"{name:22s} {shape:>18s} {count:5d} {numpy_us:9.1f} {flops / numpy_us / 1e3:8.1f} "
              f"{other_us:9.1f} {flops / other_us / 1e3:8.1f} {other_us / numpy_us:11.2f}")
        rows_out.append({"product": name, "shape": shape, "count": count,
                         "numpy_us": numpy_us, "other_us": other_us})
    print(f"one micro-batch's linears: numpy {numpy_total / 1e3:.2f} ms, other "
          f"{other_total / 1e3:.2f} ms ({other_total / numpy_total:.2f})")
    if args.json:
        write_figures(args.json, {"other": other_name, "rows": rows,
                                  "reps": args.reps, "products": rows_out,
                                  "numpy_ms": numpy_total / 1e3, "other_ms": other_total / 1e3})


if __name__ == "__main__":
    main()
