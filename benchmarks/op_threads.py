"""Two threads sharing each matrix product beside a busy core: the op-level design.

    python benchmarks/op_threads.py
    python benchmarks/op_threads.py --pieces 2 4 8 16 --steps 50 --json op_threads.json

tinyformer's training step shares its work out in whole micro-batches, one a process
(tinyformer/parallel.py), and benchmarks/neighbour_share.py shows why that gets one core's
worth beside a busy neighbour. Here the other way is timed: one process, and each product of
a step cut into row pieces that two threads take from a shared counter, each as soon as it is
done with its last (numpy lets go of Python's lock inside a product), meeting at the product's
end since the next product needs it. A step is the same fixed work as neighbour_share.py's
(--gemms products of 256 x 256 float32 matrices, one BLAS thread a thread), in these ways:

    one thread      the products whole, on this thread
    BLAS            the products whole, on OpenBLAS's own two threads (its fixed halves)
    pulled          two Python threads take --pieces row pieces of each product, where Linux
                    puts them
    pulled, pinned  the same, each thread held to a core of its own

For each: the median step quiet and beside benchmarks/suite.py's busy neighbour, and the
cores' worth of time ours got there (the one-thread step quiet / the step beside it).
Linux only (the pinned rows use sched_setaffinity on each thread).
"""

import argparse
import itertools
import os
import statistics
import sys
import threading
import time

import numpy as np
from threadpoolctl import threadpool_limits

from alternate import at_least, json_file, write_figures
from suite import busy_neighbour

SIZE = 256


class PulledPieces:
    """A helper thread that, with the caller, takes the pieces of one job at a time."""

    def __init__(self, pinned):
        self.pinned = pinned
        self.cores = sorted(os.sched_getaffinity(0))
        self.wake = threading.Condition()
        self.job, self.jobs_given, self.helper_done = None, 0, threading.Event()
        self.helper = threading.Thread(target=self._help, daemon=True)
        self.helper.start()
        if pinned:
            os.sched_setaffinity(0, {self.cores[0]})

    def _help(self):
        if self.pinned:
            os.sched_setaffinity(0, {self.cores[1]})
        seen = 0
        while True:
            with self.wake:
                while self.jobs_given == seen:
                    self.wake.wait()
                seen, job = self.jobs_given, self.job
            if job is None:
                return
            self._take(*job)
            self.helper_done.set()

    @staticmethod
    def _take(pieces, taken):
        # next() on one counter: each number goes to one thread, whichever asks first
        while (k := next(taken)) < len(pieces):
            pieces[k]()

    def run(self, pieces):
        """Run every function of `pieces` once, on the two threads; return when all are done."""
        job = (pieces, itertools.count())
        self.helper_done.clear()
        with self.wake:
            self.job, self.jobs_given = job, self.jobs_given + 1
            self.wake.notify()
        self._take(*job)
        self.helper_done.wait()

    def close(self):
        with self.wake:
            self.job, self.jobs_given = None, self.jobs_given + 1
            self.wake.notify()
        self.helper.join()
        os.sched_setaffinity(0, self.cores)


def step_runner(way, pieces):
    """A function that runs one step the given way, the pool to close after (or None), and
    the step's operand and product."""
    a = np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)
    out = np.full_like(a, np.nan)                  # rows no piece wrote stay NaN
    if way in ("one thread", "BLAS"):
        def step():
            for _ in range(ARGS.gemms):
                np.matmul(a, a, out=out)
        return step, None, a, out
    pool = PulledPieces(pinned=way == "pulled, pinned")
    rows = np.array_split(np.arange(SIZE), pieces)
    jobs = [lambda r=r: np.matmul(a[r[0]:r[-1] + 1], a, out=out[r[0]:r[-1] + 1]) for r in rows]

    def step():
        for _ in range(ARGS.gemms):
            pool.run(jobs)
    return step, pool, a, out


def median_step(way, pieces):
    step, pool, a, out = step_runner(way, pieces)
    try:
        with threadpool_limits(2 if way == "BLAS" else 1):
            times = []
            for _ in range(ARGS.steps + 2):          # the first two warm the caches
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
    finally:
        if pool is not None:
            pool.close()
    if not np.allclose(out, a @ a, rtol=1e-5):     # every piece done, each once, in its rows
        raise RuntimeError(f"{way}: the step's product came out wrong")
    return statistics.median(times[2:])


def main():
    if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2:
        sys.exit("op_threads.py pins threads to two cores: it runs on Linux, with two or more")
    rows = []
    ways = [("one thread", None), ("BLAS", None)] + [
        (way, n) for way in ("pulled", "pulled, pinned") for n in ARGS.pieces]
    for way, pieces in ways:
        quiet = median_step(way, pieces)
        with busy_neighbour():
            beside = median_step(way, pieces)
        rows.append({"way": way, "pieces": pieces, "quiet_ms": quiet * 1e3,
                     "beside_ms": beside * 1e3})
    one_core_ms = rows[0]["quiet_ms"]               # the first row's: one thread, quiet
    for row in rows:
        row["ours_cores_beside"] = one_core_ms / row["beside_ms"]
    print(f"a step: {ARGS.gemms} products of {SIZE} x {SIZE}, {one_core_ms:.1f} ms on one "
          f"thread")
    print("| way | pieces | quiet | beside a busy core | ours (cores) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['way']} | {r['pieces'] or '-'} | {r['quiet_ms']:.1f} ms | "
              f"{r['beside_ms']:.1f} ms | {r['ours_cores_beside']:.2f} |")
    if ARGS.json:
        write_figures(ARGS.json, {"one_core_ms": one_core_ms, "gemms": ARGS.gemms, "rows": rows})


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pieces", type=at_least(2), nargs="+", default=[2, 4, 8],
                   help="the row pieces each product is cut into (default: 2 4 8)")
    p.add_argument("--steps", type=at_least(1), default=50,
                   help="timed steps for each way (default: 50)")
    p.add_argument("--gemms", type=at_least(1), default=120,
                   help="products in a step (default: 120)")
    p.add_argument("--json", type=json_file, help="write the figures here")
    return p.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args()
    main()
