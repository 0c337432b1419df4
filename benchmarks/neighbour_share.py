"""How much of two cores a training step can get beside a process that keeps one of them busy.

    python benchmarks/neighbour_share.py                      # 1, 2, 3, 4, 8 processes
    python benchmarks/neighbour_share.py --processes 2 8 --steps 50 --json share.json

A step here is fixed work (--gemms products of two 256 x 256 float32 matrices, one BLAS thread)
split evenly over n processes that meet at the step's end through pipes, as `tinyformer
train`'s workers do (tinyformer/parallel.py). It has none of a real step's costs per part (a
graph per micro-batch) and no work that stays on one core, so it shows the scheduler alone:
for each n, the median step on a quiet machine and beside the busy neighbour
(benchmarks/suite.py's), and what each side got, in cores' worth of time:

    ours        the work's one-core time / the step's time
    neighbour   its CPU time / the wall time, while the steps ran beside it

Linux only (fork, and /proc for the neighbour's CPU time).
"""

import argparse
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--processes", type=at_least(1), nargs="+", default=[1, 2, 3, 4, 8])
    p.add_argument("--steps", type=at_least(1), default=100, help="timed steps for each count")
    p.add_argument("--gemms", type=at_least(1), default=120,
                   help="products in a step, a multiple of each process count")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    uneven = [n for n in args.processes if args.gemms % n]
    if uneven:
        p.error(f"--gemms {args.gemms} cannot be shared evenly over {uneven[0]} processes: "
                f"give a multiple of each count in --processes")
    return args


def gemms(k, a):
    for _ in range(k):
        a @ a


def timed_steps(n, steps, work):
    """The median wall time of `steps` steps, each `work` products split over n processes: this
    one and n - 1 forked workers, told to start through a pipe and answering when done."""
    a = np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)
    share = work // n
    pipes = []
    for _ in range(n - 1):
        ours, theirs = multiprocessing.Pipe()
        if os.fork() == 0:                       # a worker: a share per step, until told 0
            while theirs.recv():
                gemms(share, a)
                theirs.send(True)
            os._exit(0)
        pipes.append(ours)
    times = []
    try:
        for _ in range(steps + 2):               # the first two warm the caches
            start = time.perf_counter()
            for pipe in pipes:
                pipe.send(True)
            gemms(share, a)
            for pipe in pipes:
                pipe.recv()
            times.append(time.perf_counter() - start)
    finally:
        for pipe in pipes:
            pipe.send(False)
        for _ in pipes:
            os.wait()
    return statistics.median(times[2:])


def cpu_seconds(pid):
    """A process's user and system time so far (/proc/PID/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv=None):
    args = parse_args(argv)
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        sys.exit("neighbour_share.py forks its workers and reads /proc: it runs on Linux")
    threadpool_limits(1)
    one_core = timed_steps(1, args.steps, args.gemms)
    rows = []
    for n in args.processes:
        quiet = timed_steps(n, args.steps, args.gemms)
        with busy_neighbour() as pid:
            cpu, wall = cpu_seconds(pid), time.perf_counter()
            beside = timed_steps(n, args.steps, args.gemms)
            neighbour = (cpu_seconds(pid) - cpu) / (time.perf_counter() - wall)
        rows.append({"processes": n, "quiet_ms": quiet * 1e3, "beside_ms": beside * 1e3,
                     "ours_cores_beside": one_core / beside, "neighbour_cores": neighbour})
    print(f"a step: {args.gemms} products of {SIZE} x {SIZE}, {one_core * 1e3:.1f} ms on one core")
    print("| processes | quiet | beside a busy core | beside / quiet | ours (cores) "
          "| the neighbour's (cores) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['processes']} | {r['quiet_ms']:.1f} ms | {r['beside_ms']:.1f} ms | "
              f"{r['beside_ms'] / r['quiet_ms']:.2f} | {r['ours_cores_beside']:.2f} | "
              f"{r['neighbour_cores']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"one_core_ms": one_core * 1e3, "gemms": args.gemms, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
