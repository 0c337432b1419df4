"""One training step of nanoGPT's Shakespeare CPU recipe: our engine against PyTorch eager.

    python benchmarks/train_step.py --threads 1                  # 1 BLAS thread (the default: 1)
    python benchmarks/train_step.py --threads 2 --reps 200
    python benchmarks/train_step.py --threads 1 --json benchmarks/results/train_step.json

The model is benchmarks/shakespeare.py's: GPT(vocab 65, context 64, 4 layers, 4 heads,
d_model 128, GELU MLP 512, tied embeddings), batch 12, float32; one step is forward,
cross-entropy, backward, clip to norm 1.0 and AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1
on matrices). PyTorch's model is benchmarks/torch_gpt.py's TorchGPT (the one shakespeare.py
trains), loaded with our initial weights. Both engines get the same batches (random tokens: the
time does not depend on the text), and take turns step by step, so that a busy spell on a shared
machine slows both alike; the medians of the per-step times are compared.

Besides ms/step and tokens/s it reports how close each engine comes to the machine's matrix
multiply speed: the step's matmul FLOPs, counted analytically (6 x parameters in matmuls x
tokens, plus attention's q k^T and p v, forward and backward), divided by the step's time, as a
share of what numpy's GEMM achieves on the step's own matmul shapes, timed here.
"""

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads, and torch's threads")
    p.add_argument("--reps", type=int, default=100, help="timed steps of each engine")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps of each engine first")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args(argv)


# OpenBLAS reads its thread count when numpy is imported, so the arguments come first.
if __name__ == "__main__":
    ARGS = parse_args()
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(ARGS.threads)

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinyautograd as ta  # noqa: E402
from tinyautograd import functional as F  # noqa: E402
from tinyautograd.optim import AdamW, clip_grad_norm, weight_decay_groups  # noqa: E402
from tinyformer.data import lm_batch  # noqa: E402
from tinyformer.gpt import GPT  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
    from torch_gpt import TorchGPT, copy_weights
except ImportError:         # our figures alone, without PyTorch's
    torch = None

VOCAB, CONTEXT, N_LAYER, N_HEAD, D_MODEL, D_FF, BATCH = 65, 64, 4, 4, 128, 512, 12
LR, BETAS, WEIGHT_DECAY, CLIP = 1e-3, (0.9, 0.99), 0.1, 1.0


def build(seed=0):
    """Our model and optimizer, and PyTorch's copy of both."""
    ta.manual_seed(seed)
    ours = GPT(VOCAB, CONTEXT, N_LAYER, N_HEAD, D_MODEL, D_FF)
    our_opt = AdamW(weight_decay_groups(ours.named_parameters(), WEIGHT_DECAY), lr=LR,
                    betas=BETAS)
    if torch is None:
        return ours, our_opt, None, None
    theirs = TorchGPT(VOCAB, CONTEXT, N_LAYER, N_HEAD, D_MODEL, D_FF)
    copy_weights(ours, theirs)
    params = list(theirs.parameters())
    their_opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=LR, betas=BETAS, eps=1e-8)
    return ours, our_opt, theirs, their_opt


def our_step(model, optimizer, x, y):
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    clip_grad_norm(model.parameters(), CLIP)
    optimizer.step()
    return loss.item()


def torch_step(model, optimizer, x, y):
    loss = TF.cross_entropy(model(x).flatten(0, 1), y.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    optimizer.step()
    return loss.item()


# ---------------------------------------------------------------------------------------------
# FLOPs: what the step's matrix multiplies cost, and how fast numpy's GEMM does them


def matmul_shapes():
    """Every matrix multiply of one training step, as (count, batch, M, K, N): `count` times a
    batch of `batch` products (M, K) @ (K, N). Forward, then backward's two products per matmul
    (dA = dY B^T, dB = A^T dY), which cost what the forward did."""
    rows, H, d = BATCH * CONTEXT, N_HEAD, D_MODEL // N_HEAD
    linears = [(4 * N_LAYER, D_MODEL, D_MODEL),      # q, k, v and out of each layer
               (N_LAYER, D_MODEL, D_FF),             # fc1
               (N_LAYER, D_FF, D_MODEL),             # fc2
               (1, D_MODEL, VOCAB)]                  # the tied head: x @ E^T
    shapes = []
    for count, k, n in linears:
        shapes += [(count, 1, rows, k, n),           # forward        (rows, k) @ (k, n)
                   (count, 1, rows, n, k),           # dX = dY W^T    (rows, n) @ (n, k)
                   (count, 1, k, rows, n)]           # dW = X^T dY    (k, rows) @ (rows, n)
    T, bh = CONTEXT, BATCH * H
    shapes += [(N_LAYER, bh, T, d, T), (N_LAYER, bh, T, T, d),          # q k^T, p v
               (N_LAYER, bh, T, T, d), (N_LAYER, bh, T, d, T),          # dV = p^T dO, dP
               (N_LAYER, bh, T, T, d), (N_LAYER, bh, T, T, d)]          # dQ = dS k, dK
    return shapes


def step_flops():
    return sum(2 * count * batch * m * k * n for count, batch, m, k, n in matmul_shapes())


def numpy_gemm_seconds(reps=20):
    """How long numpy takes for the step's matmuls alone, each shape timed on its own (median
    of `reps`) in float32, times its count."""
    rng = np.random.default_rng(0)
    total = 0.0
    for count, batch, m, k, n in matmul_shapes():
        lead = (batch,) if batch > 1 else ()
        a = rng.standard_normal(lead + (m, k), dtype=np.float32)
        b = rng.standard_normal(lead + (k, n), dtype=np.float32)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        total += count * statistics.median(times)
    return total


# ---------------------------------------------------------------------------------------------


def main():
    args = ARGS
    ours, our_opt, theirs, their_opt = build()
    engines = {"ours": lambda x, y: our_step(ours, our_opt, x, y)}
    if torch is not None:
        torch.set_num_threads(args.threads)
        engines["torch"] = lambda x, y: torch_step(theirs, their_opt, torch.from_numpy(x),
                                                   torch.from_numpy(y))
    tokens = np.random.default_rng(0).integers(0, VOCAB, 100_000).astype(np.uint16)
    rng = np.random.default_rng(1)
    ms = {name: [] for name in engines}
    losses = {name: [] for name in engines}
    for i in range(args.warmup + args.reps):
        x, y = lm_batch(tokens, BATCH, CONTEXT, rng)
        for name, step in engines.items():              # taking turns, on the same batch
            t0 = time.perf_counter()
            losses[name].append(step(x, y))
            if i >= args.warmup:
                ms[name].append(1000 * (time.perf_counter() - t0))

    tokens_per_step = BATCH * CONTEXT
    flops = step_flops()
    gemm_s = numpy_gemm_seconds()
    gemm_flops_per_s = flops / gemm_s
    result = {"threads": args.threads, "reps": args.reps, "numpy": np.__version__,
              "torch": torch.__version__ if torch else None, "machine": platform.machine(),
              "cpus": os.cpu_count(), "tokens_per_step": tokens_per_step,
              "step_matmul_flops": flops, "numpy_gemm_ms": 1000 * gemm_s,
              "numpy_gemm_gflops": gemm_flops_per_s / 1e9}
    for name in engines:
        median_ms = statistics.median(ms[name])
        result[name] = {"median_ms": median_ms, "tokens_per_s": tokens_per_step / median_ms * 1e3,
                        "gflops": flops / median_ms / 1e6,
                        "share_of_numpy_gemm": flops / (median_ms / 1e3) / gemm_flops_per_s}
    if torch is not None:
        result["ratio"] = result["ours"]["median_ms"] / result["torch"]["median_ms"]
        result["max_loss_diff"] = float(np.max(np.abs(np.subtract(losses["ours"],
                                                                  losses["torch"]))))

    print(f"one training step, batch {BATCH} x {CONTEXT} tokens, {args.threads} thread(s), "
          f"{args.reps} interleaved steps each (median)")
    print(f"matmul FLOPs per step {flops / 1e9:.3f} G; numpy GEMM on these shapes "
          f"{result['numpy_gemm_ms']:.1f} ms = {result['numpy_gemm_gflops']:.1f} GFLOP/s")
    print(f"{'':8}{'ms/step':>9}{'tokens/s':>10}{'GFLOP/s':>9}{'of GEMM':>9}")
    for name in engines:
        r = result[name]
        print(f"{name:8}{r['median_ms']:9.1f}{r['tokens_per_s']:10.0f}{r['gflops']:9.1f}"
              f"{r['share_of_numpy_gemm']:9.0%}")
    if torch is None:
        print("(PyTorch is not installed: no comparison)")
    else:
        print(f"ratio ours / torch: {result['ratio']:.2f}   (largest |loss ours - torch| over "
              f"the steps: {result['max_loss_diff']:.1e})")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
