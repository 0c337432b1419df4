"""Per-op overhead on tiny tensors: tinyautograd against raw numpy and PyTorch eager.

On an 8x8 tensor the arithmetic is almost free, so what is measured is the bookkeeping each
framework adds around it: creating the result, recording the graph, walking it backward.

    python benchmarks/engine.py                  # the table
    python benchmarks/engine.py --json out.json  # and the raw medians

Columns, in microseconds per call (median of interleaved repetitions):
  numpy       the bare numpy forward computation
  ours, torch forward with inputs that require gradients (so the graph is recorded)
  +ovh        that forward minus numpy's: the framework's own overhead
  ratio       our overhead / torch's overhead (target: <= 1); n/a where either engine's op
              is faster than the numpy composite (a fused kernel, or the compiled loops of
              ours), so that it has no overhead to compare
  f+b         forward and backward together (backward from a .sum(), included in both)
"""

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tinyautograd as ta  # noqa: E402
import tinyautograd.functional as F  # noqa: E402
from alternate import (AUTO, at_least, counted, json_file, set_torch_threads,  # noqa: E402
                       thread_count, write_figures)

# PyTorch, imported by main() once the arguments are read: a usage error or --help costs no
# import of it (a second or two). None where it is not installed: the table still prints,
# without torch's columns.
torch = TF = None


def import_torch():
    global torch, TF
    try:
        import torch
        import torch.nn.functional as TF
    except ImportError:
        pass

SIZE = 8


def cases():
    """(name, numpy forward, our forward, torch forward, number of tensor inputs)."""
    targets = np.arange(SIZE) % SIZE
    t_targets = torch.as_tensor(targets) if torch else None
    w = np.ones(SIZE, np.float32)
    b = np.zeros(SIZE, np.float32)

    def np_layer_norm(x):
        mean = x.mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w + b

    def np_cross_entropy(x):
        z = x - x.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return -logp[np.arange(SIZE), targets].mean()

    def np_softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return [
        ("add", lambda a, b: a + b, lambda a, b: a + b, lambda a, b: a + b, 2),
        ("mul", lambda a, b: a * b, lambda a, b: a * b, lambda a, b: a * b, 2),
        ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, lambda a, b: a @ b, 2),
        ("exp", np.exp, lambda a: a.exp(), torch.exp if torch else None, 1),
        ("tanh", np.tanh, lambda a: a.tanh(), torch.tanh if torch else None, 1),
        ("sum(axis)", lambda a: a.sum(0), lambda a: a.sum(0), lambda a: a.sum(0), 1),
        ("max(axis)", lambda a: a.max(1), lambda a: a.max(1), lambda a: a.amax(1), 1),
        ("reshape", lambda a: a.reshape(-1), lambda a: a.reshape(-1),
         lambda a: a.reshape(-1), 1),
        ("transpose", lambda a: a.T, lambda a: a.T, lambda a: a.T, 1),
        ("getitem", lambda a: a[1:5], lambda a: a[1:5], lambda a: a[1:5], 1),
        ("softmax", np_softmax, lambda a: a.softmax(-1),
         (lambda a: torch.softmax(a, -1)) if torch else None, 1),
        ("layer_norm", np_layer_norm, lambda a: F.layer_norm(a),
         (lambda a: TF.layer_norm(a, (SIZE,))) if torch else None, 1),
        ("cross_entropy", np_cross_entropy, lambda a: F.cross_entropy(a, targets),
         (lambda a: TF.cross_entropy(a, t_targets)) if torch else None, 1),
    ]


def per_call_us(fn, args, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    return (time.perf_counter() - start) / calls * 1e6


def forward_backward(forward):
    def run(*args):
        out = forward(*args)
        out = out if out.ndim == 0 else out.sum()
        out.backward()
    return run


def overhead_ratio(ours, torch):
    """Our overhead over torch's, or None where either is not above 0: that engine's op beat
    numpy's composite (torch's C kernel for a fused op, or our compiled loop), so it has no
    overhead over numpy to compare with (a negative ratio would read as a win), and f+b
    speaks instead."""
    return ours / torch if ours > 0 and torch > 0 else None


def measure(repeats, calls):
    rng = np.random.default_rng(0)
    rows = []
    for name, np_fn, our_fn, torch_fn, n_in in cases():
        arrays = [rng.standard_normal((SIZE, SIZE)).astype(np.float32) for _ in range(n_in)]
        ours = [ta.Tensor(a, requires_grad=True) for a in arrays]
        runs = {"numpy": (np_fn, arrays), "ours": (our_fn, ours),
                "ours f+b": (forward_backward(our_fn), ours)}
        if torch is not None:
            theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
            runs["torch"] = (torch_fn, theirs)
            runs["torch f+b"] = (forward_backward(torch_fn), theirs)
        samples = {key: [] for key in runs}
        for _ in range(repeats):              # interleaved, so drifts hit every column alike
            for key, (fn, args) in runs.items():
                samples[key].append(per_call_us(fn, args, calls))
        row = {"op": name, **{key: statistics.median(v) for key, v in samples.items()}}
        row["ours overhead"] = row["ours"] - row["numpy"]
        if torch is not None:
            row["torch overhead"] = row["torch"] - row["numpy"]
            row["overhead ratio"] = overhead_ratio(row["ours overhead"], row["torch overhead"])
            row["f+b ratio"] = row["ours f+b"] / row["torch f+b"]
        rows.append(row)
    return rows


def print_table(rows):
    with_torch = "torch" in rows[0]
    header = f"{'op':<14}{'numpy':>8}{'ours':>8}{'+ovh':>8}"
    if with_torch:
        header += (f"{'torch':>8}{'+ovh':>8}{'ratio':>8}"
                   f"{'ours f+b':>10}{'torch f+b':>11}{'ratio':>8}")
    else:          # PyTorch not installed: our f+b all the same, whose median the suite shows
        header += f"{'ours f+b':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        line = f"{r['op']:<14}{r['numpy']:>8.2f}{r['ours']:>8.2f}{r['ours overhead']:>8.2f}"
        if with_torch:
            ratio = "n/a" if r["overhead ratio"] is None else f"{r['overhead ratio']:.2f}"
            line += (f"{r['torch']:>8.2f}{r['torch overhead']:>8.2f}{ratio:>8}"
                     f"{r['ours f+b']:>10.2f}{r['torch f+b']:>11.2f}{r['f+b ratio']:>8.2f}")
        else:
            line += f"{r['ours f+b']:>10.2f}"
        print(line)
    if with_torch:
        # Every op's overhead ratio n/a (each op beat numpy's composite in one engine) leaves
        # none to take the median of: n/a too, as in the table.
        ratios = [r["overhead ratio"] for r in rows if r["overhead ratio"] is not None]
        overhead = f"{statistics.median(ratios):.2f}" if ratios else "n/a"
        both = statistics.median(r["f+b ratio"] for r in rows)
        print(f"\nmedian overhead ratio (ours/torch): {overhead}    "
              f"median forward+backward ratio: {both:.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=at_least(1), default=15)
    parser.add_argument("--calls", type=at_least(1), default=300, help="calls per timed repetition")
    # auto by default: PyTorch's own count, which the OMP_NUM_THREADS the suite sets decides
    # (one thread). A fixed 2 here gave PyTorch two threads beside our one, whose hand-offs on
    # a busy machine cost it milliseconds a call on the fused ops.
    parser.add_argument("--threads", type=thread_count, default=AUTO,
                        help="PyTorch's threads; auto (the default): its own count, which "
                        "OMP_NUM_THREADS sets")
    parser.add_argument("--json", type=json_file, help="also write the raw medians to this file")
    args = parser.parse_args(argv)
    import_torch()
    if torch is not None:
        set_torch_threads(torch, args.threads)
    machine = platform.processor() or platform.machine()
    print(f"{SIZE}x{SIZE} float32, microseconds per call; {machine}, "
          f"python {platform.python_version()}, numpy {np.__version__}"
          + (f", torch {torch.__version__} ({counted(torch.get_num_threads(), 'thread')})"
             if torch else ", torch not installed") + "\n")
    rows = measure(args.repeats, args.calls)
    print_table(rows)
    if args.json:
        write_figures(args.json, {"size": SIZE, "torch": torch.__version__ if torch else None,
                                  "rows": rows})


if __name__ == "__main__":
    main()
