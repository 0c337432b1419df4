"""Peak resident memory of a training run: our engine against PyTorch eager.

    python benchmarks/memory.py                  # 200 steps of the Shakespeare recipe, each engine
    python benchmarks/memory.py --steps 50 --json benchmarks/results/memory.json
    python benchmarks/memory.py --threads auto   # each engine as a user gets it

Each engine trains in a process of its own (this script started again with --engine), because
a process's peak resident set size (VmHWM in /proc/self/status) is the one honest figure of
what a run needed, and it cannot be shared between two engines in one process. The step is the
Shakespeare recipe's (4 layers, 4 heads, d_model 128, context 64, batch 12, AdamW, clipping),
on random tokens. Each child reports its resident size after its imports, after building the
model, and its peak; the engines alternate over --runs runs and the medians are compared. Ours
keeps the memory it frees for its next arrays, as `tinyformer train` does
(tinyformer.resources.freed_memory_kept): the peak is what matters here, and it is the same.

Imports count: PyTorch's libraries are far larger than numpy's, and a user pays for them. The
"above imports" column shows what training itself added.

With `--threads auto` PyTorch trains at its defaults and ours through AdaptiveThreads, choosing
its threads by timing its steps as `tinyformer train` does (OpenBLAS's buffers are per
thread, so the count can move the peak a little).
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys

from alternate import (AUTO, Help, at_least, counted, json_file, set_thread_variables,
                       set_torch_threads, thread_count, write_figures)
from recipe import (BATCH, BETAS, CLIP, CONTEXT, D_FF, D_MODEL, LR, N_HEAD, N_LAYER, VOCAB,
                    WEIGHT_DECAY)

# Only asked, not imported: the parent process needs no PyTorch of its own (two seconds).
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    p.add_argument("--steps", type=at_least(1), default=200,
                   help="training steps of each run")
    p.add_argument("--runs", type=at_least(1), default=3, help="runs of each engine, alternating")
    p.add_argument("--threads", type=thread_count, default=1,
                   help="BLAS threads, and torch's threads; auto: each engine as a user gets it")
    p.add_argument("--engine", choices=["ours", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--json", type=json_file, help="also write the figures to this file")
    return p.parse_args(argv)


def resident_mib(field, pid="self"):
    """VmRSS (now) or VmHWM (the peak so far) of this process (or process `pid`), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def child(args):
    """Train one engine for args.steps steps; print its memory figures as JSON."""
    import contextlib

    import numpy as np
    figures, workers = {}, None
    stack = contextlib.ExitStack()
    if args.engine == "ours":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        import tinyautograd as ta
        from tinyautograd import functional as F
        from tinyautograd.optim import AdamW, weight_decay_groups
        from tinyformer.gpt import GPT
        from tinyformer.train import run_conditions, update
        figures["imports"] = resident_mib("VmRSS")
        ta.manual_seed(0)
        model = GPT(VOCAB, CONTEXT, N_LAYER, N_HEAD, D_MODEL, d_ff=D_FF)
        optimizer = AdamW(weight_decay_groups(model.named_parameters(), WEIGHT_DECAY), lr=LR,
                          betas=BETAS)
        figures["model"] = resident_mib("VmRSS")

        params = list(model.parameters())

        def loss_of(batch):
            return F.cross_entropy(model(batch[0]), batch[1])

        # As Trainer.train: the memory kept, the threads chosen (or given), and the
        # micro-batches in worker processes where fork is safe, whose memory counts too.
        threads_chooser, workers = stack.enter_context(run_conditions(
            None if args.threads == AUTO else args.threads, loss_of, model, params, optimizer, 2))
        at_fork = resident_mib("VmRSS")

        def step(x, y):             # the trainer's: two micro-batches side by side
            with threads_chooser.step() as n:
                update(loss_of, (x, y), lambda batch: batch[1].size, params, optimizer, 2, n,
                       CLIP, workers)
    else:
        import torch
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_gpt import TorchGPT, torch_adamw, torch_step
        set_torch_threads(torch, args.threads)
        figures["imports"] = resident_mib("VmRSS")
        torch.manual_seed(0)
        model = TorchGPT(VOCAB, CONTEXT, N_LAYER, N_HEAD, D_MODEL, D_FF)
        optimizer = torch_adamw(model, LR, BETAS, WEIGHT_DECAY)
        figures["model"] = resident_mib("VmRSS")

        def step(x, y):
            torch_step(model, optimizer, torch.from_numpy(x), torch.from_numpy(y), CLIP)

    rng = np.random.default_rng(0)
    with stack:
        for _ in range(args.steps):
            tokens = rng.integers(0, VOCAB, (BATCH, CONTEXT + 1))
            step(tokens[:, :-1], tokens[:, 1:])
        # A worker shares what this process held when it forked; what it added is its own.
        pids = workers.pids if workers else []
        added = sum(max(0.0, resident_mib("VmHWM", pid) - at_fork) for pid in pids)
    figures["peak"] = resident_mib("VmHWM") + added
    figures["workers"] = len(pids)
    print(json.dumps(figures))


def measure(args):
    runs = {"ours": []}
    if HAVE_TORCH:                 # else our figures alone
        runs["torch"] = []
    for _ in range(args.runs):
        for engine in runs:
            env = set_thread_variables(dict(os.environ), args.threads)
            done = subprocess.run([sys.executable, os.path.abspath(__file__), "--engine", engine,
                                   "--steps", str(args.steps), "--threads", str(args.threads)],
                                  capture_output=True, text=True, env=env, check=True)
            runs[engine].append(json.loads(done.stdout.strip().splitlines()[-1]))
    figures = {"threads": args.threads, "steps": args.steps, "runs": args.runs}
    for engine, results in runs.items():
        figures[engine] = {key: statistics.median(r[key] for r in results)
                           for key in ("imports", "model", "peak")}
    if "torch" in figures:
        figures["ratio"] = figures["ours"]["peak"] / figures["torch"]["peak"]
    return figures


def report(figures):
    print(f"Peak resident memory, {counted(figures['steps'], 'training step')} of the "
          f"Shakespeare recipe; median of {counted(figures['runs'], 'run')} each; "
          f"{platform.machine()}, python {platform.python_version()}, "
          f"threads: {figures['threads']}")
    print(f"\n{'engine':7}  {'after imports':>13}  {'with model':>10}  {'peak':>8}  "
          f"{'above imports':>13}   (MiB)")
    for engine in [e for e in ("ours", "torch") if e in figures]:
        f = figures[engine]
        print(f"{engine:7}  {f['imports']:13.0f}  {f['model']:10.0f}  {f['peak']:8.0f}  "
              f"{f['peak'] - f['imports']:13.0f}")
    if "ratio" in figures:
        print(f"\npeak ours / torch: {figures['ratio']:.2f}")
    else:
        print("\n(PyTorch is not installed: no comparison)")


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.engine:
        child(ARGS)
    else:
        figures = measure(ARGS)
        report(figures)
        if ARGS.json:
            write_figures(ARGS.json, figures)
