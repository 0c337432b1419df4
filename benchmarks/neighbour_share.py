"""How much of two cores a training step can get beside a process that keeps one of them busy.

    python benchmarks/neighbour_share.py                      # 1, 2, 3, 4, 8 processes
    python benchmarks/neighbour_share.py --processes 2 --placement free pinned moved
    python benchmarks/neighbour_share.py --processes 2 --placement free pinned --dealt pulled
    python benchmarks/neighbour_share.py --processes 2 8 --steps 50 --json share.json

A step here is fixed work (--gemms products of two 256 x 256 float32 matrices, one BLAS thread)
split evenly over n processes that meet at the step's end through pipes, as `tinyformer
train`'s workers do (tinyformer/parallel.py). It has none of a real step's costs per part (a
graph per micro-batch) and no work that stays on one core, so it shows the scheduler alone:
for each n, the median step on a quiet machine and beside the busy neighbour
(benchmarks/suite.py's); what each side got there, in cores' worth of time; and where ours ran:

    ours        the work's one-core time / the step's time
    neighbour   its CPU time / the wall time, while the steps ran beside it
    two of ours on one core
                the share of the steps beside it in which two of our processes ended their
                shares on the same core (shown where there are as many cores as processes)
    the busiest one's share
                of a step's products beside it (median): 1/n when dealt in fixed shares

--placement says where the processes run: `free`, where Linux puts them (tinyformer's way);
`pinned`, each to a core of its own; `moved` (two processes), pinned, and the first done with
its share moves the other onto its own core, to finish there alone.

--dealt says how the work is shared out: `fixed`, an equal share for each process, as the
training step's parts are (part i to process i % n); `pulled`, cut into --pieces equal pieces
that the processes take in turn from a shared counter, each as soon as it is done with its
last, so that a process slowed by the neighbour does fewer.

Linux only (fork, sched_getcpu, and /proc/PID/schedstat for the neighbour's CPU time).
"""

import argparse
import contextlib
import ctypes
import itertools
import multiprocessing
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from alternate import at_least, json_file, write_figures
from suite import busy_neighbour

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinyformer.parallel import forked  # noqa: E402  (the training step's workers' own fork)

SIZE = 256
PLACEMENTS = ("free", "pinned", "moved")
DEALINGS = ("fixed", "pulled")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", type=at_least(1), nargs="+", default=[1, 2, 3, 4, 8],
                   help="the counts of processes to share a step (default: 1 2 3 4 8)")
    p.add_argument("--placement", choices=PLACEMENTS, nargs="+", default=["free"],
                   help="where the processes run (see above)")
    p.add_argument("--dealt", choices=DEALINGS, nargs="+", default=["fixed"],
                   help="how the step's work is shared out (see above)")
    p.add_argument("--steps", type=at_least(1), default=100,
                   help="timed steps for each count (default: 100)")
    p.add_argument("--gemms", type=at_least(1), default=120,
                   help="products in a step, a multiple of each process count when dealt "
                   "fixed (default: 120)")
    p.add_argument("--pieces", type=at_least(1), default=12,
                   help="with --dealt pulled: the pieces a step is cut into, dividing --gemms "
                   "(default: 12)")
    p.add_argument("--json", type=json_file, help="write the figures here")
    args = p.parse_args(argv)
    uneven = [n for n in args.processes if args.gemms % n]
    if uneven and "fixed" in args.dealt:             # pulled pieces need no even shares
        p.error(f"--gemms {args.gemms} cannot be shared evenly over {uneven[0]} processes: "
                f"give a multiple of each count in --processes")
    if "pulled" in args.dealt and args.gemms % args.pieces:
        p.error(f"--gemms {args.gemms} cannot be cut into {args.pieces} equal pieces: give "
                f"--pieces dividing it")
    if "moved" in args.placement and args.processes != [2]:
        p.error("--placement moved moves one process onto the other's core: give --processes 2")
    return args


def gemms(k, a):
    for _ in range(k):
        a @ a


def timed_steps(n, steps, work, placement="free", pieces=None):
    """(the median wall time of `steps` steps, the share of them in which two of the n
    processes ended their shares on one core, the share after which one had been moved onto
    the other's core, the median share of a step's products that the busiest process did).
    A step is `work` products split over n processes: this one and n - 1 forked workers, told
    to start through a pipe and answering with the core they ended on and the products they
    did. Each does work // n products, or, given `pieces`, takes pieces of work // pieces
    products from a shared counter until none is left."""
    a = np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)
    cores = sorted(os.sched_getaffinity(0))
    core_now = ctypes.CDLL(None).sched_getcpu
    done = multiprocessing.Value("i", 0)           # processes done with this step's share
    taken = multiprocessing.Value("i", 0)          # pieces taken so far in this step
    pids, pipes = [os.getpid()], []

    def take():
        """The number of the next piece of this step (all taken: pieces or more)."""
        with taken.get_lock():
            taken.value += 1
            return taken.value - 1

    def my_share(me):
        """Process me's share of the step; returns the core it ended on, and its products."""
        if pieces is None:
            gemms(work // n, a)
            products = work // n
        else:
            products = 0
            while take() < pieces:
                gemms(work // pieces, a)
                products += work // pieces
        if placement == "moved":
            with done.get_lock():
                done.value += 1
                first = done.value == 1
            if first:                    # lend my core to the other, to finish there alone
                with contextlib.suppress(OSError):       # it may have ended just now
                    os.sched_setaffinity(pids[1 - me], {core_now()})
        return core_now(), products

    times, together, moved, largest = [], 0, 0, []
    try:
        for me in range(1, n):
            ours, theirs = multiprocessing.Pipe()
            pipes.append(ours)
            try:
                with forked() as pid:            # Ctrl-C ignored from the child's start: it is
                    if pid == 0:                 # the parent's to answer, telling us to stop.
                        # A worker, a share per step until told 0, ends here whatever happens,
                        # never running on into the parent's code. It keeps no end of the
                        # parent's, so that with its parent gone recv raises EOFError.
                        try:
                            for parents_end in pipes:
                                parents_end.close()
                            while theirs.recv():
                                theirs.send(my_share(me))
                        finally:
                            os._exit(0)
                    pids.append(pid)
            finally:
                theirs.close()
        for step in range(steps + 2):            # the first two warm the caches
            start = time.perf_counter()
            done.value = taken.value = 0
            if placement != "free":              # each to its own core, again (moved: back)
                for me, pid in enumerate(pids):
                    os.sched_setaffinity(pid, {cores[me % len(cores)]})
            for pipe in pipes:
                pipe.send(True)
            ended_on, products = zip(my_share(0), *(pipe.recv() for pipe in pipes))
            times.append(time.perf_counter() - start)
            if sum(products) != work:
                raise RuntimeError(f"a step did {sum(products)} products, not {work}")
            largest.append(max(products) / work)
            together += step >= 2 and len(set(ended_on)) < len(ended_on)
            # Both held to one and the same core: the first done moved the other (the move is
            # made before its mover answers, so it is seen here, unlike where the other ended).
            held_to = {frozenset(os.sched_getaffinity(pid)) for pid in pids}
            moved += (step >= 2 and 1 < n <= len(cores) and len(held_to) == 1
                      and len(min(held_to)) == 1)
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):   # a worker not forked (fork refused)
                pipe.send(False)
            pipe.close()
        for pid in pids[1:]:
            os.waitpid(pid, 0)
        os.sched_setaffinity(0, cores)
    return (statistics.median(times[2:]), together / steps, moved / steps,
            statistics.median(largest[2:]))


def cpu_seconds(pid):
    """The time a process has spent on a core so far, in seconds: /proc/PID/schedstat's
    nanoseconds (/proc/PID/stat counts in ticks of 10 ms, too coarse for a short run)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def main(argv=None):
    args = parse_args(argv)
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        sys.exit("neighbour_share.py forks its workers and reads /proc: it runs on Linux")
    threadpool_limits(1)
    one_core, *_ = timed_steps(1, args.steps, args.gemms)
    rows = []
    for placement, dealt, n in itertools.product(args.placement, args.dealt, args.processes):
        pieces = args.pieces if dealt == "pulled" else None
        quiet, *_ = timed_steps(n, args.steps, args.gemms, placement, pieces)
        with busy_neighbour() as pid:
            cpu, wall = cpu_seconds(pid), time.perf_counter()
            beside, together, moved, largest = timed_steps(n, args.steps, args.gemms,
                                                           placement, pieces)
            neighbour = (cpu_seconds(pid) - cpu) / (time.perf_counter() - wall)
        rows.append({"placement": placement, "dealt": dealt, "processes": n,
                     "quiet_ms": quiet * 1e3, "beside_ms": beside * 1e3,
                     "ours_cores_beside": one_core / beside, "neighbour_cores": neighbour,
                     "one_core_beside": together, "moved_beside": moved,
                     "largest_share_beside": largest})
    print(f"a step: {args.gemms} products of {SIZE} x {SIZE}, {one_core * 1e3:.1f} ms on one core")
    print("| placement | dealt | processes | quiet | beside a busy core | beside / quiet "
          "| ours (cores) | the neighbour's (cores) | two of ours on one core "
          "| the busiest one's share |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    cores = len(os.sched_getaffinity(0))
    for r in rows:
        one_core_beside = (f"{r['one_core_beside']:.0%} of steps"
                           if 1 < r["processes"] <= cores else "-")
        print(f"| {r['placement']} | {r['dealt']} | {r['processes']} | {r['quiet_ms']:.1f} ms | "
              f"{r['beside_ms']:.1f} ms | {r['beside_ms'] / r['quiet_ms']:.2f} | "
              f"{r['ours_cores_beside']:.2f} | {r['neighbour_cores']:.2f} | "
              f"{one_core_beside} | {r['largest_share_beside']:.0%} |")
    if args.json:
        write_figures(args.json, {"one_core_ms": one_core * 1e3, "gemms": args.gemms, "rows": rows})


if __name__ == "__main__":
    main()
