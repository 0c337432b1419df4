"""One training step of nanoGPT's Shakespeare CPU recipe: our engine against PyTorch eager.

    python benchmarks/train_step.py --threads 1                  # 1 thread (the default)
    python benchmarks/train_step.py --threads 2 --reps 60 --blocks 5
    python benchmarks/train_step.py --threads auto               # each engine as a user gets it
    python benchmarks/train_step.py --threads 1 --json benchmarks/results/train_step.json
    python benchmarks/train_step.py --tiny                       # the fixed cost per step

The model is benchmarks/shakespeare.py's: GPT(vocab 65, context 64, 4 layers, 4 heads,
d_model 128, GELU MLP 512, tied embeddings), batch 12, float32; one step is forward,
cross-entropy, backward, clip to norm 1.0 and AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1
on matrices). Ours takes it as the trainer does: the batch in two micro-batches, side by side
on the threads (tinyformer/parallel.py), with the memory it frees kept for the next step
(tinyformer.resources.freed_memory_kept). PyTorch's model is benchmarks/torch_gpt.py's TorchGPT
(the one shakespeare.py trains), loaded with our initial weights. Both engines get the same
batches (random tokens: the time does not depend on the text).

Each engine is timed alone, in a process of its own (`--engine ours|torch`, the child mode),
and the engines take turns block by block (benchmarks/alternate.py says why: in one process
they slow each other down, PyTorch most). A block starts from the same initial weights and runs
`--warmup` untimed steps, then `--reps` timed ones, on the same batches; the median over all
blocks' timed steps is compared, and the losses of the two engines step by step.

Besides ms/step and tokens/s it reports how close each engine comes to the machine's matrix
multiply speed: the step's matmul FLOPs, as tinyformer.summary.flops_per_token counts them on
the model's graph (three times the forward's: backward costs two), divided by the step's time,
as a share of what numpy's GEMM achieves on the step's own matmul shapes, timed alone in a
child of its own (`--engine gemm`) that takes its turn after the engines in every block. That
child also times PyTorch's matmul on the same shapes: numpy's BLAS (OpenBLAS) and PyTorch's
(MKL on x86) are level on some processors and not on others, and a step whose products alone
differ cannot be level either.

With `--threads auto` each engine runs as a user gets it: PyTorch at its defaults (one thread a
core), ours through tinyformer.resources.AdaptiveThreads, as `Trainer.train` trains by default:
it times its own steps at each candidate count and keeps the fastest. Its first round of
trials falls in the untimed warm-up, both engines' warm-up lengthened to hold it if need be: a
run tries again only every 200 steps, so the steady step is the one to compare. numpy's GEMM is then
timed at each of those counts, and the faster taken.
"""

import os
import sys

from alternate import (AUTO, alternate, block_ratios, counted, set_thread_variables,
                       set_torch_threads, step_options, write_child_figures, write_figures)


def parse_args(argv=None):
    return step_options(__doc__, ["ours", "torch", "gemm"], blocks=3).parse_args(argv)


# OpenBLAS reads its thread count when numpy is imported, so the arguments come first.
if __name__ == "__main__":
    ARGS = parse_args()
    set_thread_variables(os.environ, ARGS.threads)

import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import tinyautograd as ta  # noqa: E402
from tinyautograd import functional as F  # noqa: E402
from tinyautograd.optim import AdamW, weight_decay_groups  # noqa: E402
from tinyformer.data import lm_batch  # noqa: E402
from tinyformer.gpt import GPT  # noqa: E402
from tinyformer.train import run_conditions, update  # noqa: E402
from tinyformer.resources import AdaptiveThreads, blas_threads  # noqa: E402
from tinyformer.summary import flops_per_token  # noqa: E402

# PyTorch is imported only in its own child (below), so that ours runs without it loaded.
HAVE_TORCH = importlib.util.find_spec("torch") is not None

from recipe import (BATCH, BETAS, CLIP, CONTEXT, D_FF, D_MODEL, LR, N_HEAD,  # noqa: E402
                    N_LAYER, VOCAB, WEIGHT_DECAY)


def use_tiny_sizes():
    """The same graph, every array tiny (--tiny): here, and for envelope.py, which imports it."""
    global CONTEXT, D_MODEL, D_FF, BATCH
    CONTEXT, D_MODEL, D_FF, BATCH = 2, 8, 16, 2


if __name__ == "__main__" and ARGS.tiny:
    use_tiny_sizes()
MICRO_BATCHES = 2                 # the trainer's default (TrainConfig.micro_batches)


def build_ours(seed=0):
    ta.manual_seed(seed)
    model = GPT(VOCAB, CONTEXT, N_LAYER, N_HEAD, D_MODEL, D_FF)
    optimizer = AdamW(weight_decay_groups(model.named_parameters(), WEIGHT_DECAY), lr=LR,
                      betas=BETAS)
    return model, optimizer


def our_stepper(threads, stack):
    """(our step, the AdaptiveThreads choosing its count or None). The step is the trainer's
    own (`tinyformer.train.update`) under the trainer's conditions (`run_conditions`, as long
    as `stack` lasts): the batch in MICRO_BATCHES parts side by side in up to `threads`
    processes where fork is safe (else threads); with "auto", each step on the count the
    steps' timing chooses."""
    model, optimizer = build_ours()
    params = list(model.parameters())

    def loss_of(batch):
        x, y = batch
        return F.cross_entropy(model(x), y)

    threads_chooser, workers = stack.enter_context(run_conditions(
        None if threads == AUTO else threads, loss_of, model, params, optimizer, MICRO_BATCHES))

    def step(x, y):
        with threads_chooser.step() as n:          # fixed, or chosen by the steps' timing
            loss, _ = update(loss_of, (x, y), lambda batch: batch[1].size, params, optimizer,
                             MICRO_BATCHES, n, CLIP, workers)
        return loss
    return step, threads_chooser


def torch_stepper(threads):
    """PyTorch's step, on a copy of our freshly initialised model (built here too); its version
    and the threads it runs on."""
    import torch
    from torch_gpt import TorchGPT, copy_weights, torch_adamw, torch_step

    set_torch_threads(torch, threads)
    model = TorchGPT(VOCAB, CONTEXT, N_LAYER, N_HEAD, D_MODEL, D_FF)
    copy_weights(build_ours()[0], model)
    optimizer = torch_adamw(model, LR, BETAS, WEIGHT_DECAY)

    def step(x, y):
        return torch_step(model, optimizer, torch.from_numpy(x), torch.from_numpy(y), CLIP)
    return step, torch.__version__, torch.get_num_threads()


# ---------------------------------------------------------------------------------------------
# FLOPs: what the step's matrix multiplies cost, and how fast numpy's GEMM does them


def matmul_shapes():
    """Every matrix multiply of one training step, as (count, batch, M, K, N): `count` times a
    batch of `batch` products (M, K) @ (K, N), for numpy's GEMM to be timed on. Forward, then
    backward's two products per matmul (dA = dY B^T, dB = A^T dY), which cost what the forward
    did."""
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
    """The step's matmul FLOPs, the library's count; the shapes the GEMM is timed on must be
    the same work, or the share of GEMM speed would compare unlike things."""
    flops = flops_per_token(build_ours()[0])["training"] * BATCH * CONTEXT
    by_shapes = sum(2 * count * batch * m * k * n for count, batch, m, k, n in matmul_shapes())
    assert flops == by_shapes, f"matmul_shapes() counts {by_shapes} FLOPs, the model {flops}"
    return int(flops)                                   # a whole number, as JSON shows it


def gemm_seconds(reps=20, convert=None):
    """How long numpy takes for the step's matmuls alone, each shape timed on its own (median
    of `reps`) in float32, times its count. With `convert` (torch.from_numpy), how long
    PyTorch's matmul takes for the same products: whether the two libraries' GEMMs are level
    on this machine (OpenBLAS's and PyTorch's MKL are not, on every processor)."""
    rng = np.random.default_rng(0)
    total = 0.0
    for count, batch, m, k, n in matmul_shapes():
        lead = (batch,) if batch > 1 else ()
        a = rng.standard_normal(lead + (m, k), dtype=np.float32)
        b = rng.standard_normal(lead + (k, n), dtype=np.float32)
        if convert:
            a, b = convert(a), convert(b)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        total += count * statistics.median(times)
    return total


# ---------------------------------------------------------------------------------------------
# The child: one engine alone


def gemm_child(args):
    """numpy's GEMM on the step's shapes: at the fixed count, or for "auto" at each count
    AdaptiveThreads would try, the faster kept; then PyTorch's on the same shapes, on the
    same count (for "auto", its defaults), where it is installed."""
    if args.threads != AUTO:
        figures = {"gemm_ms": 1000 * gemm_seconds()}
    else:
        seconds = {}
        for n in AdaptiveThreads().candidates:
            with blas_threads(n):
                seconds[n] = gemm_seconds()
        figures = {"gemm_ms": 1000 * min(seconds.values())}
    if HAVE_TORCH:
        import torch
        set_torch_threads(torch, args.threads)
        figures["torch_gemm_ms"] = 1000 * gemm_seconds(convert=torch.from_numpy)
    return figures


def child(args, record=None):
    """Time one engine (or numpy's GEMM) in this process and write its figures to args.json (or
    the screen): the timed steps' ms, every step's loss, and the threads the engine ran on (for
    ours under "auto", the count it had chosen at the end), with what the caller adds in
    `record`."""
    if args.engine == "gemm":
        figures = gemm_child(args)
    else:
        with contextlib.ExitStack() as stack:
            threads_chooser = None
            if args.engine == "ours":
                (step, threads_chooser), version, threads = (our_stepper(args.threads, stack),
                                                      np.__version__, args.threads)
            else:
                step, version, threads = torch_stepper(args.threads)
            tokens = np.random.default_rng(0).integers(0, VOCAB, 100_000).astype(np.uint16)
            rng = np.random.default_rng(1)           # every block and engine: the same batches
            ms, losses = [], []
            for i in range(args.warmup + args.reps):
                x, y = lm_batch(tokens, BATCH, CONTEXT, rng)
                t0 = time.perf_counter()
                losses.append(step(x, y))
                if i >= args.warmup:
                    ms.append(1000 * (time.perf_counter() - t0))
            figures = {"ms": ms, "losses": losses, "version": version,
                       "threads": threads_chooser.chosen if threads_chooser else threads,
                       "micro_batches": MICRO_BATCHES if args.engine == "ours" else None,
                       "d_model": D_MODEL}
    figures.update(record or {})
    write_child_figures(args.json, figures)


# ---------------------------------------------------------------------------------------------
# The parent: the children in turns, then the figures


def main():
    args = ARGS
    if args.threads == AUTO:
        # Ours' first round of trials is warm-up (a run tries again only every `period` steps):
        # lengthened if need be to hold it, for both engines alike.
        trials = AdaptiveThreads()
        args.warmup = max(args.warmup, len(trials.candidates) * trials.trial)
    engines = ["ours", "torch"] if HAVE_TORCH else ["ours"]
    runs = alternate(__file__, engines + ["gemm"], args.blocks, args.threads,
                     ["--warmup", args.warmup, "--reps", args.reps] + ["--tiny"] * args.tiny)

    tokens_per_step = BATCH * CONTEXT
    flops = step_flops()
    gemm_s = statistics.median(run["gemm_ms"] for run in runs["gemm"]) / 1000
    gemm_flops_per_s = flops / gemm_s
    method = (f"each engine alone in its own process, "
              f"{counted(args.blocks, 'alternating block')} of {args.warmup} untimed + "
              f"{counted(args.reps, 'timed step')}; median of all timed steps")
    result = {"threads": args.threads, "tiny": args.tiny, "reps": args.reps, "blocks": args.blocks,
              "warmup": args.warmup, "method": method,
              "torch": None,                # the engine's figures below, where installed
              "torch_version": runs["torch"][0]["version"] if HAVE_TORCH else None,
              "tokens_per_step": tokens_per_step, "step_matmul_flops": flops,
              "numpy_gemm_ms": 1000 * gemm_s, "numpy_gemm_gflops": gemm_flops_per_s / 1e9,
              "torch_gemm_ms": (statistics.median(run["torch_gemm_ms"] for run in runs["gemm"])
                                if HAVE_TORCH else None)}
    for name in engines:
        median_ms = statistics.median(ms for run in runs[name] for ms in run["ms"])
        result[name] = {"median_ms": median_ms, "tokens_per_s": tokens_per_step / median_ms * 1e3,
                        "gflops": flops / median_ms / 1e6,
                        "share_of_numpy_gemm": flops / (median_ms / 1e3) / gemm_flops_per_s,
                        "block_medians_ms": [statistics.median(run["ms"]) for run in runs[name]],
                        # the count most blocks ran on (for ours under auto: chose)
                        "threads": statistics.mode(run["threads"] for run in runs[name]),
                        "d_model": runs[name][0]["d_model"]}       # the sizes it ran (--tiny)
    if HAVE_TORCH:
        result["ratio"] = result["ours"]["median_ms"] / result["torch"]["median_ms"]
        # The same batches from the same weights in every block: compare them all, pairwise.
        result["max_loss_diff"] = max(
            float(np.max(np.abs(np.subtract(ours["losses"], theirs["losses"]))))
            for ours, theirs in zip(runs["ours"], runs["torch"]))

    threads = ("threads as a user gets them (ours timing its steps to choose, PyTorch at its "
               "defaults)" if args.threads == AUTO else f"{args.threads} thread(s)")
    sizes = f", d_model {D_MODEL} (tiny)" if args.tiny else ""
    print(f"one training step, batch {BATCH} x {CONTEXT} tokens{sizes}, {threads}; {method}")
    print(f"matmul FLOPs per step {flops / 1e9:.3f} G; numpy GEMM on these shapes "
          f"{result['numpy_gemm_ms']:.1f} ms = {result['numpy_gemm_gflops']:.1f} GFLOP/s"
          + (f", PyTorch's {result['torch_gemm_ms']:.1f} ms" if HAVE_TORCH else ""))
    print(f"{'':8}{'ms/step':>9}{'tokens/s':>10}{'GFLOP/s':>9}{'of GEMM':>9}{'threads':>9}"
          f"   per block")
    for name in engines:
        r = result[name]
        blocks = " ".join(f"{ms:.1f}" for ms in r["block_medians_ms"])
        print(f"{name:8}{r['median_ms']:9.1f}{r['tokens_per_s']:10.0f}{r['gflops']:9.1f}"
              f"{r['share_of_numpy_gemm']:9.0%}{r['threads']:9d}   {blocks}")
    if not HAVE_TORCH:
        print("(PyTorch is not installed: no comparison)")
    else:
        blocks = block_ratios(result["ours"]["block_medians_ms"],
                              result["torch"]["block_medians_ms"])
        print(f"ratio ours / torch: {result['ratio']:.2f}, block by block {min(blocks):.2f} to "
              f"{max(blocks):.2f}   (largest |loss ours - torch| over the steps: "
              f"{result['max_loss_diff']:.1e})")
    if args.json:
        write_figures(args.json, result)


if __name__ == "__main__":
    if ARGS.engine:
        child(ARGS)
    else:
        main()
