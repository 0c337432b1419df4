"""The built-in `tinyformer train`, timed around the command: quiet, and beside a busy core.

    python benchmarks/builtin_run.py                       # two turns, the default run
    python benchmarks/builtin_run.py --turns 3 -- --threads 1
    python benchmarks/builtin_run.py --json builtin.json -- --iters 200
    python benchmarks/builtin_run.py --one-core       # also quiet on one core (--threads 1)

What a learner runs first, as they run it: the whole command in a process of its own (Python
starting, the corpus tokenised, every step, evaluation and sample, the checkpoints), timed from
outside. Each turn runs it on a quiet machine, then beside a process that keeps one core busy
(benchmarks/suite.py's neighbour, as a browser or an editor does), each in a fresh run
directory. Arguments after `--` go to `tinyformer train` (not --out: each run gets its own).

It reports each run's wall time and final validation loss, and the median beside the busy core
over the median quiet (the project's target is at most 1.15). With --one-core each turn also
runs it quiet with `--threads 1`, and the median beside the busy core over that one says how
the run beside a busy core compares with the best a single core gives. All runs of a turn end
at the same loss: the threads a run chooses change its speed, never its losses, and this script
checks it. The compiled loops are built on a machine's first run and cached: run once
before timing on a fresh machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from alternate import THREAD_VARIABLES, at_least, json_file, write_figures
from suite import busy_neighbour

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TARGET = 1.15


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--turns", type=at_least(1), default=2,
                   help="turns, each a quiet run then one beside the busy core (default: 2)")
    p.add_argument("--one-core", action="store_true",
                   help="each turn also runs the command quiet with --threads 1")
    p.add_argument("--json", type=json_file, help="write the figures here")
    p.add_argument("train", nargs="*", metavar="-- TRAIN ARGUMENTS",
                   help="given to tinyformer train (none: the built-in run)")
    args = p.parse_args(argv)
    if any(a == "--out" or a.startswith("--out=") or a == "--resume" for a in args.train):
        p.error("each run gets a fresh run directory of its own: leave out --out and --resume")
    return args


def timed_run(train_arguments, directory):
    """(seconds, the final validation loss) of `tinyformer train` into `directory`, with the
    environment's thread variables left out (the suite sets them): as a user runs it."""
    env = {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    command = [sys.executable, "-m", "tinyformer_cli", "train", "--out", directory,
               *train_arguments]
    began = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:                  # its own exit status: 2 for bad arguments
        last = (done.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        print(f"tinyformer train {' '.join(train_arguments)} failed: {last}", file=sys.stderr)
        sys.exit(done.returncode)
    with open(os.path.join(directory, "metrics.jsonl")) as f:
        losses = [record["val_loss"] for record in map(json.loads, f) if "val_loss" in record]
    return seconds, losses[-1]


WORDS = {"quiet": "quiet", "beside": "beside a busy core", "one_core": "quiet on one core"}


def main(argv=None):
    args = parse_args(argv)
    turns = []
    with tempfile.TemporaryDirectory() as scratch:
        for turn in range(args.turns):
            runs = {"quiet": timed_run(args.train, os.path.join(scratch, f"quiet-{turn}"))}
            with busy_neighbour():
                runs["beside"] = timed_run(args.train, os.path.join(scratch, f"beside-{turn}"))
            if args.one_core:
                runs["one_core"] = timed_run(args.train + ["--threads", "1"],
                                             os.path.join(scratch, f"one-core-{turn}"))
            losses = {name: loss for name, (_, loss) in runs.items()}
            if len(set(losses.values())) > 1:
                sys.exit(f"turn {turn + 1}: the runs ended at other validation losses "
                         f"({', '.join(f'{name} {loss}' for name, loss in losses.items())}): "
                         f"the losses must not depend on the threads")
            turns.append({f"{name}_s": seconds for name, (seconds, _) in runs.items()})
            turns[-1]["val_loss"] = losses["quiet"]
            print(f"turn {turn + 1}: " + ", ".join(f"{WORDS[name]} {seconds:.1f} s"
                                                   for name, (seconds, _) in runs.items())
                  + f"; val_loss {losses['quiet']:.4f}", flush=True)
    medians = {name: statistics.median(turn[f"{name}_s"] for turn in turns)
               for name in runs}                          # the runs every turn made
    figures = {"command": ["tinyformer", "train", *args.train], "turns": turns,
               "medians_s": medians, "ratio": medians["beside"] / medians["quiet"],
               "target": TARGET}
    verdict = "met" if figures["ratio"] <= TARGET else "not yet"
    print(f"beside a busy core / quiet, medians: {figures['ratio']:.2f} (target at most "
          f"{TARGET}: {verdict})")
    if args.one_core:
        figures["ratio_to_one_core"] = medians["beside"] / medians["one_core"]
        print(f"beside a busy core / quiet on one core, medians: "
              f"{figures['ratio_to_one_core']:.2f}")
    if args.json:
        write_figures(args.json, figures)


if __name__ == "__main__":
    main()
