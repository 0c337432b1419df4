"""How far our training step could go on one thread: benchmarks/train_step.py's step, ours as
the trainer takes it and six variants of it, beside PyTorch's.

    python benchmarks/envelope.py                      # 1 thread, 5 blocks: about 4 minutes
    python benchmarks/envelope.py --blocks 3 --reps 20 --json benchmarks/results/envelope.json
    python benchmarks/envelope.py --tiny               # the fixed cost of each, arrays tiny

The variants answer what the rest of the step costs, with the matrix products unchanged:

- one-part: the batch whole, where the trainer cuts it in two micro-batches (as
  `tinyformer train --micro-batches 1` does). The two parts keep the losses the same whatever
  the thread count; on one thread the engine then runs the step's graph twice.
- free-kernels: layer norm, GELU and attention's softmax do no arithmetic, forward or backward:
  each returns an uninitialised array of its result's shape (attention keeps its two matrix
  products). That is what compiled kernels for them could give at best, were they free. Its
  losses are meaningless (they soon turn to NaN, which costs the matrix products nothing, and
  which the JSON holds as null).
- one-part-free-kernels: both.
- numpy-forms: layer norm, GELU, attention's softmax and AdamW's update as their numpy forms
  (TINYAUTOGRAD_KERNELS=numpy), where ours runs the engine's compiled loops: what the loops
  give. Its losses agree with ours to rounding.
- one-part-numpy-forms: one part and the numpy forms.
- one-graph: a design for one thread that keeps the two parts' losses, measured before it is
  built: the batch whole, in one graph, but each product of the batch by a weight and each sum
  over its rows (a weight's and a bias's gradient) done half by half, the halves' results added,
  as the two parts compute them. What the design would add and this leaves out, all small:
  the norms' parameter sums, the position table's and the embedding's gradients by halves, and
  keeping the parts' gradients apart where a parameter has two uses (the tied embedding).
  Its losses agree with ours to rounding, not bit for bit.

Each engine alone in its own process, the engines taking turns block by block
(benchmarks/alternate.py); the median of all timed steps is compared, as in train_step.py.
"""

import os
import statistics

from alternate import (AUTO, alternate, block_ratios, counted, set_thread_variables, step_options,
                       write_figures)

VARIANTS = ["ours", "one-part", "free-kernels", "one-part-free-kernels", "numpy-forms",
            "one-part-numpy-forms", "one-graph"]


def parse_args(argv=None):
    options = step_options(__doc__.split("\n\n")[0], VARIANTS + ["torch"], blocks=5)
    args = options.parse_args(argv)
    if args.threads == AUTO:
        options.error("--threads auto: the variants are compared at one fixed count; give a number")
    return args


# OpenBLAS reads its thread count when numpy is imported, and the engine its choice of loops at
# its first op, so the arguments come first.
if __name__ == "__main__":
    ARGS = parse_args()
    set_thread_variables(os.environ, ARGS.threads)
    if ARGS.engine and "numpy-forms" in ARGS.engine:
        os.environ["TINYAUTOGRAD_KERNELS"] = "numpy"

import numpy as np  # noqa: E402

import train_step  # noqa: E402  (puts the repository on sys.path)
if __name__ == "__main__" and ARGS.tiny:
    train_step.use_tiny_sizes()
from tinyautograd import functional, kernels, ops, optim  # noqa: E402
from tinyformer import attention  # noqa: E402


class FreeKernels:
    """Layer norm, GELU and attention's softmax that only allocate their results: the same
    graph, the same matrix products, as forward and backward functions of our ops' kind."""

    @staticmethod
    def layer_norm_forward(ctx, x, weight, bias, eps=1e-5):
        return np.empty_like(x)

    @staticmethod
    def layer_norm_backward(ctx, grad):
        _, weight, _ = ctx.operands
        return np.empty_like(grad), np.empty_like(weight), grad

    @staticmethod
    def gelu_forward(ctx, x):
        return np.empty_like(x)

    @staticmethod
    def gelu_backward(ctx, grad):
        return np.empty_like(grad)

    @staticmethod
    def attention_forward(ctx, q, k, v, keep=None, drop=None):
        ctx.p = q @ np.swapaxes(k, -2, -1)                 # the scores, as if the weights
        return ctx.p @ v

    @staticmethod
    def attention_backward(ctx, grad):
        q, k, v = ctx.operands
        d_v = np.swapaxes(ctx.p, -2, -1) @ grad
        d_s = grad @ np.swapaxes(v, -2, -1)
        return d_s @ k, np.swapaxes(d_s, -2, -1) @ q, d_v


def put_in_place(free=FreeKernels):
    """Our layer norm's, GELU's and attention's forward and backward replaced, in this process,
    by FreeKernels'."""
    functional.LayerNorm.forward = staticmethod(free.layer_norm_forward)
    functional.LayerNorm.backward = staticmethod(free.layer_norm_backward)
    ops.Gelu.forward = staticmethod(free.gelu_forward)
    ops.Gelu.backward = staticmethod(free.gelu_backward)
    attention.Attention.forward = staticmethod(free.attention_forward)
    attention.Attention.backward = staticmethod(free.attention_backward)


def by_halves(x, w):
    """x @ w for a batch x (..., k) and a weight w (k, m), its rows in two halves, each its own
    product as each part's is: (x's rows, k) and the result (rows, m), and the halves' sizes."""
    rows = x.reshape(-1, x.shape[-1])
    half = len(rows) // 2
    out = np.empty((len(rows), w.shape[-1]), np.result_type(x, w))
    np.matmul(rows[:half], w, out=out[:half])
    np.matmul(rows[half:], w, out=out[half:])
    return rows, out, half


def halves_summed(a, b, half):
    """a.T @ b over the rows, as two parts sum it: each half's product, then the two added."""
    total = a[:half].T @ b[:half]
    total += a[half:].T @ b[half:]
    return total


class OneGraph:
    """MatMul's and Linear's forward and backward, for a batch by a weight, by halves (see the
    one-graph variant above); any other product as before."""
    matmul_forward, matmul_backward = ops.MatMul.forward, ops.MatMul.backward
    linear_backward = ops.Linear.backward

    @staticmethod
    def halves_apply(x, w):
        return x.ndim > 2 and w.ndim == 2 and np.prod(x.shape[:-1]) % 2 == 0

    @staticmethod
    def matmul(ctx, a, b):
        if not OneGraph.halves_apply(a, b):
            return OneGraph.matmul_forward(ctx, a, b)
        return by_halves(a, b)[1].reshape(a.shape[:-1] + b.shape[-1:])

    @staticmethod
    def gradients(x, w, grad):
        """dL/dx and dL/dw of x @ w, by halves."""
        grad_rows, grad_x, half = by_halves(grad, w.T)
        return (grad_x.reshape(x.shape), grad_rows,
                halves_summed(x.reshape(-1, x.shape[-1]), grad_rows, half), half)

    @staticmethod
    def matmul_grads(ctx, grad):
        a, b = ctx.operands
        if not OneGraph.halves_apply(a, b):
            return OneGraph.matmul_backward(ctx, grad)
        grad_a, _, grad_b, _ = OneGraph.gradients(a, b, grad)
        return grad_a, grad_b

    @staticmethod
    def linear(ctx, x, w, b):
        y = OneGraph.matmul(ctx, x, w)
        y += b
        return y

    @staticmethod
    def linear_grads(ctx, grad):
        x, w, _ = ctx.operands
        if not OneGraph.halves_apply(x, w):
            return OneGraph.linear_backward(ctx, grad)
        grad_x, grad_rows, grad_w, half = OneGraph.gradients(x, w, grad)
        grad_b = grad_rows[:half].sum(axis=0) + grad_rows[half:].sum(axis=0)
        return grad_x, grad_w, grad_b


def one_graph():
    """MatMul and Linear replaced, in this process, by OneGraph's forms."""
    ops.MatMul.forward = staticmethod(OneGraph.matmul)
    ops.MatMul.backward = staticmethod(OneGraph.matmul_grads)
    ops.Linear.forward = staticmethod(OneGraph.linear)
    ops.Linear.backward = staticmethod(OneGraph.linear_grads)


def child(args):
    """One engine alone: train_step.py's child, with this variant's changes made first."""
    if "one-part" in args.engine or args.engine == "one-graph":
        train_step.MICRO_BATCHES = 1
    if args.engine == "one-graph":
        one_graph()
    if "free-kernels" in args.engine:
        put_in_place()
    computes = {name: function.__module__ for name, function in [    # which code computes
        ("layer_norm", functional.LayerNorm.forward), ("gelu", ops.Gelu.forward),
        ("attention", attention.Attention.forward), ("adam_update", optim.Adam.update),
        ("linear", ops.Linear.backward)]}
    computes["loops"] = kernels.in_use()            # the ops' compiled loops, or numpy forms
    if args.engine == "torch":
        train_step.child(args)
    else:
        args.engine = "ours"
        train_step.child(args, record={"kernels": computes})


def main():
    args = ARGS
    engines = VARIANTS + (["torch"] if train_step.HAVE_TORCH else [])
    runs = alternate(__file__, engines, args.blocks, args.threads,
                     ["--warmup", args.warmup, "--reps", args.reps] + ["--tiny"] * args.tiny)
    medians = {name: statistics.median(ms for run in runs[name] for ms in run["ms"])
               for name in engines}
    blocks = {name: [statistics.median(run["ms"]) for run in runs[name]] for name in engines}
    result = {"threads": args.threads, "tiny": args.tiny, "blocks": args.blocks, "reps": args.reps,
              "warmup": args.warmup, "median_ms": medians, "block_medians_ms": blocks,
              "micro_batches": {name: runs[name][0]["micro_batches"] for name in engines},
              "kernels": {name: runs[name][0].get("kernels") for name in engines},
              # the same batches from the same weights in every block: the first block's
              "losses": {name: runs[name][0]["losses"] for name in engines}}
    sizes = f", d_model {train_step.D_MODEL} (tiny)" if args.tiny else ""
    print(f"one training step of nanoGPT's Shakespeare CPU recipe{sizes}, {args.threads} "
          f"thread(s); each engine alone in its own process, "
          f"{counted(args.blocks, 'alternating block')} of {args.warmup} untimed + "
          f"{counted(args.reps, 'timed step')}; median of all timed steps")
    print(f"{'':24}{'ms/step':>9}{'/ torch':>9}   block by block")
    for name in engines:
        versus = ""
        if "torch" in medians and name != "torch":
            ratios = block_ratios(blocks[name], blocks["torch"])
            versus = (f"{medians[name] / medians['torch']:9.2f}   "
                      f"{min(ratios):.2f} to {max(ratios):.2f}")
        print(f"{name:24}{medians[name]:9.1f}{versus}")
    if args.json:
        write_figures(args.json, result)


if __name__ == "__main__":
    if ARGS.engine:
        child(ARGS)
    else:
        main()
