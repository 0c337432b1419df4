"""How much of two cores a training step can get beside a process that keeps one of them busy.

    python benchmarks/neighbour_share.py                      # 1, 2, 3, 4, 8 processes
    python benchmarks/neighbour_share.py --processes 2 --placement free pinned moved
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

--placement says where the processes run: `free`, where Linux puts them (tinyformer's way);
`pinned`, each to a core of its own; `moved` (two processes), pinned, and the first done with
its share moves the other onto its own core, to finish there alone.

Linux only (fork, sched_getcpu, and /proc/PID/schedstat for the neighbour's CPU time).
"""

import argparse
import contextlib
import ctypes
import json
import multiprocessing
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from alternate import at_least
from suite import busy_neighbour

SIZE = 256
PLACEMENTS = ("free", "pinned", "moved")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--processes", type=at_least(1), nargs="+", default=[1, 2, 3, 4, 8])
    p.add_argument("--placement", choices=PLACEMENTS, nargs="+", default=["free"])
    p.add_argument("--steps", type=at_least(1), default=100, help="timed steps for each count")
    p.add_argument("--gemms", type=at_least(1), default=120,
                   help="products in a step, a multiple of each process count")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    uneven = [n for n in args.processes if args.gemms % n]
    if uneven:
        p.error(f"--gemms {args.gemms} cannot be shared evenly over {uneven[0]} processes: "
                f"give a multiple of each count in --processes")
    if "moved" in args.placement and args.processes != [2]:
        p.error("--placement moved moves one process onto the other's core: give --processes 2")
    return args


def gemms(k, a):
    for _ in range(k):
        a @ a


def timed_steps(n, steps, work, placement="free"):
    """(the median wall time of `steps` steps, the share of them in which two of the n
    processes ended their shares on one core, the share after which one had been moved onto
    the other's core). A step is `work` products split over n processes: this one and n - 1
    forked workers, told to start through a pipe and answering with the core they ended on."""
    a = np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)
    share = work // n
    cores = sorted(os.sched_getaffinity(0))
    core_now = ctypes.CDLL(None).sched_getcpu
    done = multiprocessing.Value("i", 0)           # processes done with this step's share
    pids, pipes = [os.getpid()], []

    def my_share(me):
        """Process me's share of the step; returns the core it ended on."""
        gemms(share, a)
        if placement == "moved":
            with done.get_lock():
                done.value += 1
                first = done.value == 1
            if first:                    # lend my core to the other, to finish there alone
                with contextlib.suppress(OSError):       # it may have ended just now
                    os.sched_setaffinity(pids[1 - me], {core_now()})
        return core_now()

    for me in range(1, n):
        ours, theirs = multiprocessing.Pipe()
        pid = os.fork()
        if pid == 0:                             # a worker: a share per step, until told 0
            while theirs.recv():
                theirs.send(my_share(me))
            os._exit(0)
        pids.append(pid)
        pipes.append(ours)
    times, together, moved = [], 0, 0
    try:
        for step in range(steps + 2):            # the first two warm the caches
            start = time.perf_counter()
            done.value = 0
            if placement != "free":              # each to its own core, again (moved: back)
                for me, pid in enumerate(pids):
                    os.sched_setaffinity(pid, {cores[me % len(cores)]})
            for pipe in pipes:
                pipe.send(True)
            ended_on = [my_share(0)] + [pipe.recv() for pipe in pipes]
            times.append(time.perf_counter() - start)
            together += step >= 2 and len(set(ended_on)) < len(ended_on)
            # Both held to one and the same core: the first done moved the other (the move is
            # made before its mover answers, so it is seen here, unlike where the other ended).
            held_to = {frozenset(os.sched_getaffinity(pid)) for pid in pids}
            moved += (step >= 2 and 1 < n <= len(cores) and len(held_to) == 1
                      and len(min(held_to)) == 1)
    finally:
        for pipe in pipes:
            pipe.send(False)
        for _ in pipes:
            os.wait()
        os.sched_setaffinity(0, cores)
    return statistics.median(times[2:]), together / steps, moved / steps


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
    one_core, _, _ = timed_steps(1, args.steps, args.gemms)
    rows = []
    for placement in args.placement:
        for n in args.processes:
            quiet, _, _ = timed_steps(n, args.steps, args.gemms, placement)
            with busy_neighbour() as pid:
                cpu, wall = cpu_seconds(pid), time.perf_counter()
                beside, together, moved = timed_steps(n, args.steps, args.gemms, placement)
                neighbour = (cpu_seconds(pid) - cpu) / (time.perf_counter() - wall)
            rows.append({"placement": placement, "processes": n, "quiet_ms": quiet * 1e3,
                         "beside_ms": beside * 1e3, "ours_cores_beside": one_core / beside,
                         "neighbour_cores": neighbour, "one_core_beside": together,
                         "moved_beside": moved})
    print(f"a step: {args.gemms} products of {SIZE} x {SIZE}, {one_core * 1e3:.1f} ms on one core")
    print("| placement | processes | quiet | beside a busy core | beside / quiet | ours (cores) "
          "| the neighbour's (cores) | two of ours on one core |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    cores = len(os.sched_getaffinity(0))
    for r in rows:
        one_core_beside = (f"{r['one_core_beside']:.0%} of steps"
                           if 1 < r["processes"] <= cores else "-")
        print(f"| {r['placement']} | {r['processes']} | {r['quiet_ms']:.1f} ms | "
              f"{r['beside_ms']:.1f} ms | {r['beside_ms'] / r['quiet_ms']:.2f} | "
              f"{r['ours_cores_beside']:.2f} | {r['neighbour_cores']:.2f} | "
              f"{one_core_beside} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"one_core_ms": one_core * 1e3, "gemms": args.gemms, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
