"""Does our engine train nanoGPT's Shakespeare model as well as PyTorch does?

nanoGPT's small CPU recipe on character-level tinyshakespeare, trained twice under identical
conditions: once by our engine (tinyformer's Trainer, exactly what `tinyformer train` runs)
and once by PyTorch eager, with a nanoGPT-style model written below.

    python benchmarks/shakespeare.py                          # seeds 0 1 2, 2000 steps each
    python benchmarks/shakespeare.py --seeds 0 --iters 300    # a quick look
    python benchmarks/shakespeare.py --threads 1 --json benchmarks/results/shakespeare.json

The recipe: 4 layers, 4 heads, d_model 128, context 64, batch 12, 2000 steps; AdamW lr 1e-3,
betas (0.9, 0.99), weight decay 0.1 on matrices only; gradients clipped to norm 1.0; 100 warmup
steps, then a cosine decay to 1e-4; no dropout; GELU (tanh) MLP of width 512; tied embeddings;
learned positions; pre-norm blocks and a final LayerNorm; float32 throughout.

"Identical conditions" means, for each seed:
  - the same initial weights: PyTorch's model is a copy of our freshly initialised GPT (checked:
    both give the same logits on a batch before training);
  - the same batches, in the same order: both draw them with lm_batch from a generator seeded
    with the seed, as our trainer does (checked: both generators stay in the same state);
  - the same validation batches (eval_iters of them, from a generator seeded with seed + 1);
  - the same optimizer, parameter groups, clipping and learning rate at every step;
  - the same number of CPU threads for numpy's BLAS and for PyTorch.

Only the arithmetic differs (the order of float32 sums in different kernels). Such rounding
could in principle grow over 2000 steps until the runs differ like two seeds do, so compare the
difference ours - torch with the spread of final losses across seeds. (In our runs it did not
grow: the training losses stayed within about 1e-6 of each other from first step to last, and
the final validation losses agree to 1e-6; benchmarks/results/shakespeare.json.)

The engines take turns step by step (our step, then PyTorch's), so that a slow spell on a busy
machine slows both alike and the ratio of their ms/step stays fair.
"""

import argparse
import os
import sys


def parse_args(argv=None):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus", default=os.path.normpath(
        os.path.join(root, "..", "shared", "data", "tinyshakespeare.txt")),
        help="a UTF-8 text file (default: tinyshakespeare, next to the repository)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iters", type=int, default=2000, help="training steps")
    p.add_argument("--eval-every", type=int, default=500,
                   help="validation loss every this many steps (and at the end)")
    p.add_argument("--eval-iters", type=int, default=200, help="validation batches")
    p.add_argument("--threads", type=int,
                   default=int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count())),
                   help="CPU threads for numpy's BLAS and for PyTorch")
    p.add_argument("--json", help="also write the raw results to this file")
    return p.parse_args(argv)


# The thread count has to reach OpenBLAS (numpy's BLAS) through the environment, before numpy is
# imported; so the arguments are read first, and everything else is imported after. Note that on
# a machine where another program keeps a core busy, 2 BLAS threads can be 5 times slower than 1:
# OpenBLAS threads spin waiting for each other (see benchmarks/seq2seq.py). --threads 1 then.
if __name__ == "__main__":
    ARGS = parse_args()
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(ARGS.threads)

import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tinyautograd as ta  # noqa: E402
from tinyformer.data import lm_batch  # noqa: E402
from tinyformer.train import TrainConfig, Trainer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpt import TorchGPT, copy_weights  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Data: characters to ids, 90% / 10%
# ---------------------------------------------------------------------------------------------


def load_corpus(path):
    """(train tokens, val tokens, vocabulary): ids index the sorted set of characters; the first
    90% of the characters train, the last 10% are held out. Written here independently of
    tinyformer, then checked against what our trainer tokenised, so both engines provably see
    the same text."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = np.array([lookup[c] for c in text], dtype=np.uint16)
    n_train = int(len(ids) * 0.9)
    return ids[:n_train], ids[n_train:], chars


# ---------------------------------------------------------------------------------------------
# One run of each engine on one seed
# ---------------------------------------------------------------------------------------------


def lr_at(step, c):
    """Our WarmupCosine, written out: linear warmup to c.lr (reached at step c.warmup), then a
    cosine from c.lr down to c.min_lr at step c.iters."""
    if step < c.warmup:
        return c.lr * (step + 1) / (c.warmup + 1)
    if step >= c.iters:
        return c.min_lr
    progress = (step - c.warmup) / (c.iters - c.warmup)
    return c.min_lr + (c.lr - c.min_lr) * (1 + math.cos(math.pi * progress)) / 2


def evaluate_ours(trainer):
    """Our trainer's own evaluation: the mean loss over eval_iters fixed validation batches."""
    trainer.model.eval()
    try:
        with ta.no_grad():
            return trainer.job.evaluate(trainer.model)["val_loss"]
    finally:
        trainer.model.train()


@torch.no_grad()
def evaluate_torch(model, val_batches):
    return float(np.mean([TF.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
                          for x, y in val_batches]))


def run_seed(args, seed, train_tokens, val_tokens, log):
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        # Ours: exactly what `tinyformer train --corpus ... --seed ...` builds. Its defaults for
        # a text file are the recipe; the asserts below say so.
        config = TrainConfig(corpus=args.corpus, seed=seed, iters=args.iters,
                             eval_every=args.eval_every, eval_iters=args.eval_iters)
        trainer = Trainer.start(config, out_dir, force=True, log=lambda message: None)
        c = trainer.config                               # resolved: every default filled in
        assert (c.n_layer, c.n_head, c.d_model, c.context, c.batch_size) == (4, 4, 128, 64, 12)
        assert (c.lr, c.beta1, c.beta2, c.weight_decay, c.clip, c.dropout) == (
            1e-3, 0.9, 0.99, 0.1, 1.0, 0.0)
        assert c.schedule == "cosine" and math.isclose(c.min_lr, 1e-4)
        assert np.array_equal(trainer.job.data.train, train_tokens), "different training text"
        assert np.array_equal(trainer.job.data.val, val_tokens), "different validation text"
        model = trainer.model

        # PyTorch: a copy of our freshly initialised model.
        cfg = model.config
        torch_model = TorchGPT(cfg["vocab_size"], cfg["context"], cfg["n_layer"], cfg["n_head"],
                               cfg["d_model"], cfg["d_ff"])
        copy_weights(model, torch_model)
        # nanoGPT's two groups: decay the matrices (ndim >= 2), not biases and norm gains.
        params = list(torch_model.parameters())          # the tied matrix appears once
        torch_opt = torch.optim.AdamW(
            [{"params": [p for p in params if p.dim() >= 2], "weight_decay": c.weight_decay},
             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
            lr=lr_at(0, c), betas=(c.beta1, c.beta2), eps=1e-8)

        # The same validation batches for both: our job draws them from default_rng(seed + 1).
        val_rng = np.random.default_rng(seed + 1)
        val_batches = [tuple(map(torch.from_numpy,
                                 lm_batch(val_tokens, c.batch_size, c.context, val_rng)))
                       for _ in range(c.eval_iters)]

        # Before training, the two models must be the same function.
        x0 = val_batches[0][0]
        with ta.no_grad():
            ours0 = model(x0.numpy()).data
        with torch.no_grad():
            theirs0 = torch_model(x0).numpy()
        logit_diff = float(np.abs(ours0 - theirs0).max())
        log(f"seed {seed}: initial logits, max |ours - torch| = {logit_diff:.2e} "
            f"(logits up to {np.abs(ours0).max():.2f})")
        assert logit_diff < 1e-4, "the PyTorch copy does not compute what our model computes"

        # PyTorch draws its training batches from its own generator with the same seed, as our
        # trainer's data_rng: the same windows, in the same order.
        torch_rng = np.random.default_rng(seed)
        record = {"seed": seed, "initial_logit_max_abs_diff": logit_diff,
                  "ours": {"train_loss": [], "ms": [], "val_loss": {}, "eval_s": 0.0},
                  "torch": {"train_loss": [], "ms": [], "val_loss": {}, "eval_s": 0.0}}

        def evaluate(step):
            t0 = time.perf_counter()
            ours_val = evaluate_ours(trainer)
            t1 = time.perf_counter()
            torch_val = evaluate_torch(torch_model, val_batches)
            record["ours"]["eval_s"] += t1 - t0
            record["torch"]["eval_s"] += time.perf_counter() - t1
            record["ours"]["val_loss"][step] = ours_val
            record["torch"]["val_loss"][step] = torch_val
            log(f"seed {seed} step {step:5d}: val loss ours {ours_val:.4f}  torch "
                f"{torch_val:.4f}  (ours - torch {ours_val - torch_val:+.4f})")

        evaluate(0)
        for step in range(c.iters):
            # Our step: batch, forward, backward, clip, AdamW, schedule.
            t0 = time.perf_counter()
            ours_loss, ours_lr, _ = trainer.train_step()
            t1 = time.perf_counter()
            trainer.step += 1

            # PyTorch's step, the same sequence of operations.
            lr = lr_at(step, c)
            for group in torch_opt.param_groups:
                group["lr"] = lr
            x, y = map(torch.from_numpy, lm_batch(train_tokens, c.batch_size, c.context,
                                                  torch_rng))
            loss = TF.cross_entropy(torch_model(x).flatten(0, 1), y.flatten())
            torch_opt.zero_grad(set_to_none=True)
            loss.backward()
            tnn.utils.clip_grad_norm_(torch_model.parameters(), c.clip)
            torch_opt.step()
            torch_loss = loss.item()
            t2 = time.perf_counter()

            # Cheap checks that the conditions stay identical: the same lr, and both batch
            # generators in the same state (so the next batches are the same too).
            assert math.isclose(ours_lr, lr, rel_tol=1e-12), (step, ours_lr, lr)
            assert trainer.data_rng.bit_generator.state == torch_rng.bit_generator.state
            if not (math.isfinite(ours_loss) and math.isfinite(torch_loss)):
                raise FloatingPointError(f"seed {seed} step {step}: loss ours {ours_loss}, "
                                         f"torch {torch_loss}")
            for name, value, ms in (("ours", ours_loss, t1 - t0), ("torch", torch_loss, t2 - t1)):
                record[name]["train_loss"].append(value)
                record[name]["ms"].append(1000 * ms)

            done = step + 1
            if done % args.eval_every == 0 or done == c.iters:
                evaluate(done)
    record["wall_s"] = time.perf_counter() - began
    return summarise(record, c.iters)


def summarise(record, iters):
    ours, theirs = record["ours"], record["torch"]
    for side in (ours, theirs):
        side["median_ms"] = statistics.median(side["ms"])
        side["final_val_loss"] = side["val_loss"][iters]
        # Each engine's own wall time: its steps and its evaluations (they take turns, so the
        # run's wall time is the sum of both engines').
        side["wall_s"] = sum(side["ms"]) / 1000 + side["eval_s"]
    record["final_diff"] = ours["final_val_loss"] - theirs["final_val_loss"]
    record["ms_ratio"] = ours["median_ms"] / theirs["median_ms"]
    record["wall_ratio"] = ours["wall_s"] / theirs["wall_s"]
    # Where do the runs part? The first step whose training losses differ by more than each
    # threshold (identical inputs, so any difference is accumulated rounding).
    gaps = np.abs(np.array(ours["train_loss"]) - np.array(theirs["train_loss"]))
    record["first_step_train_gap_over"] = {
        str(t): (int(np.argmax(gaps > t)) if (gaps > t).any() else None)
        for t in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)}
    # Mean training-loss gap over windows of 100 steps: does it grow, or stay at noise level?
    record["train_gap_by_100_steps"] = [float(gaps[i:i + 100].mean())
                                        for i in range(0, len(gaps), 100)]
    return record


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def print_table(results, iters):
    evals = sorted({int(s) for r in results for s in r["ours"]["val_loss"]} - {0, iters})
    head = "seed" + "".join(f"  {f'val@{s} ours/torch':<17}" for s in evals)
    print("\n" + head + f"  |  final@{iters}: ours    torch    diff  |  ms/step: ours  "
          f"torch  ratio  |  wall s: ours  torch  ratio")
    for r in results:
        o, t = r["ours"], r["torch"]
        cells = "".join(f"  {o['val_loss'][s]:.4f}/{t['val_loss'][s]:.4f}    " for s in evals)
        print(f"{r['seed']:4d}{cells}  |  {o['final_val_loss']:14.4f} {t['final_val_loss']:8.4f}"
              f" {r['final_diff']:+8.1e}  |  {o['median_ms']:13.1f} {t['median_ms']:6.1f} "
              f"{r['ms_ratio']:6.2f}  |  {o['wall_s']:12.0f} {t['wall_s']:6.0f} "
              f"{r['wall_ratio']:6.2f}")
    if len(results) > 1:
        diffs = [r["final_diff"] for r in results]
        spread = {name: statistics.stdev(r[name]["final_val_loss"] for r in results)
                  for name in ("ours", "torch")}
        print(f"\nfinal val loss, mean over seeds: ours "
              f"{statistics.mean(r['ours']['final_val_loss'] for r in results):.4f}, torch "
              f"{statistics.mean(r['torch']['final_val_loss'] for r in results):.4f}; "
              f"ours - torch: mean {statistics.mean(diffs):+.1e}, per seed "
              f"{', '.join(f'{d:+.1e}' for d in diffs)}")
        print(f"seed-to-seed standard deviation of the final val loss: ours "
              f"{spread['ours']:.4f}, torch {spread['torch']:.4f} (the noise to compare with)")
    for r in results:
        first = ", ".join(f"{t}: {'never' if v is None else v}"
                          for t, v in r["first_step_train_gap_over"].items())
        print(f"seed {r['seed']}: initial logits max |diff| {r['initial_logit_max_abs_diff']:.1e}"
              f"; first step where |train loss ours - torch| > {first}; largest 100-step "
              f"mean {max(r['train_gap_by_100_steps']):.1e}")


def main():
    args = ARGS
    torch.set_num_threads(args.threads)
    train_tokens, val_tokens, chars = load_corpus(args.corpus)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.corpus}: {len(train_tokens):,} train / {len(val_tokens):,} val characters, "
          f"vocabulary {len(chars)}; {args.iters} steps, seeds {args.seeds}\n"
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{load:.2f} at the start; numpy {np.__version__} and torch {torch.__version__}, "
          f"{args.threads} thread(s) each; the engines alternate step by step\n")
    results = []
    for seed in args.seeds:
        results.append(run_seed(args, seed, train_tokens, val_tokens,
                                lambda message: print(message, flush=True)))
        print(f"seed {seed}: {results[-1]['wall_s']:.0f} s", flush=True)
    print_table(results, args.iters)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"corpus": os.path.basename(args.corpus), "iters": args.iters,
                       "threads": args.threads, "numpy": np.__version__,
                       "torch": torch.__version__, "load_average_at_start": load,
                       "results": results}, f, indent=1)
        print(f"\nraw results: {args.json}")


if __name__ == "__main__":
    main()
