"""Does our engine train nanoGPT's Shakespeare model as well as PyTorch does?

nanoGPT's small CPU recipe on character-level tinyshakespeare, trained twice under identical
conditions: once by our engine (tinyformer's Trainer, exactly what `tinyformer train` runs)
and once by PyTorch eager, with a nanoGPT-style model written below.

    python benchmarks/shakespeare.py                          # seeds 0 1 2, 2000 steps each
    python benchmarks/shakespeare.py --seeds 0 --iters 300    # a quick look
    python benchmarks/shakespeare.py --threads 1 --json benchmarks/results/shakespeare.json
    python benchmarks/shakespeare.py --seeds 0 --threads auto  # each engine as a user gets it
    python benchmarks/shakespeare.py --corpus PATH            # the text from PATH

The text is tinyshakespeare.txt in the current directory unless --corpus names another file
(README says how to download it).

The recipe: 4 layers, 4 heads, d_model 128, context 64, batch 12, 2000 steps; AdamW lr 1e-3,
betas (0.9, 0.99), weight decay 0.1 on matrices only; gradients clipped to norm 1.0; 100 warmup
steps, then a cosine decay to 1e-4; no dropout; GELU (tanh) MLP of width 512; tied embeddings;
learned positions; pre-norm blocks and a final LayerNorm; float32 throughout.

"Identical conditions" means, for each seed:
  - the same initial weights: PyTorch's model is a copy of our freshly initialised GPT (checked:
    both give the same logits on a batch before training);
  - the same batches, in the same order: both draw them with lm_batch from a generator seeded
    with the seed, as our trainer does (checked: both generators end in the same state);
  - the same validation batches (eval_iters of them, from a generator seeded with seed + 1);
  - the same optimizer, parameter groups, clipping and learning rate at every step;
  - the same number of CPU threads for numpy's BLAS and for PyTorch; or, with `--threads auto`,
    each engine as a user gets it: PyTorch at its defaults (one thread a core), ours choosing
    its threads by timing its steps, as `Trainer.train` does by default
    (tinyformer.resources.AdaptiveThreads; the count does not change our losses).

Only the arithmetic differs (the order of float32 sums in different kernels). Such rounding
could in principle grow over 2000 steps until the runs differ like two seeds do, so compare the
difference ours - torch with the spread of final losses across seeds. (In our runs it did not
grow: the training losses stayed within about 1e-6 of each other from first step to last, and
the final validation losses agree to 1e-6; benchmarks/results/shakespeare.json.)

Each engine trains in a process of its own (`--engine ours|torch`, the child mode), ours and
then PyTorch's for each seed: in one process they slow each other down (benchmarks/alternate.py
says how much). The losses are compared, evaluation by evaluation and step by step, once both
have finished.
"""

import argparse
import importlib.util
import os
import sys

import shakespeare_text
from recipe import BATCH, BETAS, CLIP, CONTEXT, D_MODEL, LR, N_HEAD, N_LAYER, WEIGHT_DECAY
from alternate import (AUTO, Help, alternate, at_least, json_file, set_thread_variables,
                       set_torch_threads, settings_refused_as_usage, thread_count,
                       write_child_figures, write_figures)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    p.add_argument("--corpus", default=shakespeare_text.DEFAULT, metavar="PATH",
                   help=shakespeare_text.HELP)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iters", type=at_least(1), default=2000, help="training steps")
    p.add_argument("--eval-every", type=at_least(1), default=500,
                   help="validation loss every this many steps (and at the end)")
    p.add_argument("--eval-iters", type=at_least(1), default=200, help="validation batches")
    p.add_argument("--threads", type=thread_count,
                   default=int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count())),
                   help="CPU threads for numpy's BLAS and for PyTorch; auto: each engine as a "
                   "user gets it")
    p.add_argument("--json", type=json_file, help="also write the raw results to this file")
    p.add_argument("--engine", choices=["ours", "torch"],
                   help="child mode: train this engine alone and write its record to --json "
                   "(without it, print it as JSON)")
    args = p.parse_args(argv)
    # Checked before minutes of training ours, which would end in a traceback at torch's turn.
    if args.engine != "ours" and importlib.util.find_spec("torch") is None:
        p.error("this benchmark trains ours and PyTorch's to compare them, and PyTorch is not "
                "installed: pip install torch")
    problem = shakespeare_text.missing(args.corpus)
    if problem:
        p.error(f"this benchmark needs {problem}")
    return args


# The thread count has to reach OpenBLAS (numpy's BLAS) through the environment, before numpy is
# imported; so the arguments are read first, and everything else is imported after. Note that on
# a machine where another program keeps a core busy, 2 BLAS threads can be 5 times slower than 1:
# OpenBLAS threads spin waiting for each other (see benchmarks/seq2seq.py). --threads 1 then, or
# auto, with which our trainer times its steps to choose.
if __name__ == "__main__":
    ARGS = parse_args()
    set_thread_variables(os.environ, ARGS.threads)

import contextlib  # noqa: E402
import importlib.metadata  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import tinyautograd as ta  # noqa: E402
from tinyformer.data import lm_batch  # noqa: E402
from tinyformer.files import read_text  # noqa: E402
from tinyformer.train import TrainConfig, Trainer  # noqa: E402

# PyTorch is imported only in its own child (run_torch), so that ours trains without it loaded.

# ---------------------------------------------------------------------------------------------
# Data: characters to ids, 90% / 10%
# ---------------------------------------------------------------------------------------------


def load_corpus(path):
    """(train tokens, val tokens, vocabulary): ids index the sorted set of characters; the first
    90% of the characters train, the last 10% are held out. Written here independently of
    tinyformer, then checked against what our trainer tokenised, so both engines provably see
    the same text. ValueError, in one line, for a file that is empty, not UTF-8 text, or too
    short for the recipe's context of 64 characters."""
    text = read_text(path, "corpus")
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = np.array([lookup[c] for c in text], dtype=np.uint16)
    n_train = int(len(ids) * 0.9)
    problem = shakespeare_text.unusable(path, recipe=True)
    if problem:
        raise ValueError(problem)
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


def evaluate_ours(trainer, threads):
    """Our trainer's own evaluation: the mean loss over eval_iters fixed validation batches, on
    `threads` threads."""
    trainer.model.eval()
    try:
        with ta.no_grad():
            return trainer.job.evaluate(trainer.model, threads)["val_loss"]
    finally:
        trainer.model.train()


def start_trainer(args, seed, train_tokens, val_tokens, out_dir):
    """Our trainer: exactly what `tinyformer train --corpus ... --seed ...` builds. Its defaults
    for a text file are the recipe; the asserts say so. Both children build it: PyTorch's model
    starts as a copy of its freshly initialised one."""
    config = TrainConfig(corpus=args.corpus, seed=seed, iters=args.iters,
                         eval_every=args.eval_every, eval_iters=args.eval_iters)
    trainer = Trainer.start(config, out_dir, force=True, log=lambda message: None)
    c = trainer.config                               # resolved: every default filled in
    assert (c.n_layer, c.n_head, c.d_model, c.context, c.batch_size) == (
        N_LAYER, N_HEAD, D_MODEL, CONTEXT, BATCH)
    assert (c.lr, (c.beta1, c.beta2), c.weight_decay, c.clip, c.dropout) == (
        LR, BETAS, WEIGHT_DECAY, CLIP, 0.0)
    assert c.schedule == "cosine" and math.isclose(c.min_lr, 1e-4)
    assert np.array_equal(trainer.job.data.train, train_tokens), "different training text"
    assert np.array_equal(trainer.job.data.val, val_tokens), "different validation text"
    return trainer


def train_loop(c, step_fn, evaluate, eval_every, seed):
    """The run both engines share: evaluate at step 0, every eval_every steps and at the end;
    step_fn(step) trains one step and returns (loss, lr). The side's record: training losses,
    ms per step, validation losses by step, seconds spent evaluating."""
    side = {"train_loss": [], "ms": [], "val_loss": {}, "eval_s": 0.0}

    def timed_evaluation(step):
        t0 = time.perf_counter()
        side["val_loss"][step] = evaluate()
        side["eval_s"] += time.perf_counter() - t0

    timed_evaluation(0)
    for step in range(c.iters):
        t0 = time.perf_counter()
        loss, lr = step_fn(step)
        side["ms"].append(1000 * (time.perf_counter() - t0))
        # The same learning rate in both engines: our trainer's schedule is lr_at, written out.
        assert math.isclose(lr, lr_at(step, c), rel_tol=1e-12), (step, lr, lr_at(step, c))
        if not math.isfinite(loss):
            raise FloatingPointError(f"seed {seed} step {step}: loss {loss}")
        side["train_loss"].append(loss)
        if (step + 1) % eval_every == 0 or step + 1 == c.iters:
            timed_evaluation(step + 1)
    return side


def run_ours(args, seed, train_tokens, val_tokens):
    # With auto, the threads as Trainer.train chooses them: every step at the count that
    # AdaptiveThreads has chosen or is trying, the evaluations at the one chosen so far.
    with tempfile.TemporaryDirectory() as out_dir, contextlib.ExitStack() as stack:
        trainer = start_trainer(args, seed, train_tokens, val_tokens, out_dir)
        # As Trainer.train: the memory kept, the threads chosen, the worker processes.
        threads, workers = stack.enter_context(trainer.running(None if args.threads == AUTO
                                                               else args.threads))

        def step_fn(step):          # batch, forward, backward, clip, AdamW, schedule
            with threads.step() as n:
                done = trainer.train_step(n, workers)
            return done.loss, done.lr

        def evaluate():             # on the count chosen so far, or given
            return evaluate_ours(trainer, threads.chosen)

        side = train_loop(trainer.config, step_fn, evaluate, args.eval_every, seed)
        side["batch_rng_state"] = trainer.data_rng.bit_generator.state
    return side


def run_torch(args, seed, train_tokens, val_tokens):
    import torch
    import torch.nn.functional as TF
    from torch_gpt import TorchGPT, copy_weights, torch_adamw, torch_step
    set_torch_threads(torch, args.threads)

    with tempfile.TemporaryDirectory() as out_dir:
        trainer = start_trainer(args, seed, train_tokens, val_tokens, out_dir)
    c, model = trainer.config, trainer.model

    # PyTorch: a copy of our freshly initialised model.
    cfg = model.config
    torch_model = TorchGPT(cfg["vocab_size"], cfg["context"], cfg["n_layer"], cfg["n_head"],
                           cfg["d_model"], cfg["d_ff"])
    copy_weights(model, torch_model)
    torch_opt = torch_adamw(torch_model, lr_at(0, c), (c.beta1, c.beta2), c.weight_decay)

    # The same validation batches as ours: our job draws them from default_rng(seed + 1).
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
    print(f"seed {seed}: initial logits, max |ours - torch| = {logit_diff:.2e} "
          f"(logits up to {np.abs(ours0).max():.2f})", flush=True)
    assert logit_diff < 1e-4, "the PyTorch copy does not compute what our model computes"
    del trainer, model

    @torch.no_grad()
    def evaluate():
        return float(np.mean([TF.cross_entropy(torch_model(x).flatten(0, 1), y.flatten()).item()
                              for x, y in val_batches]))

    # PyTorch draws its training batches from its own generator with the same seed, as our
    # trainer's data_rng: the same windows, in the same order.
    torch_rng = np.random.default_rng(seed)

    def step_fn(step):              # the same sequence of operations as our trainer's step
        lr = lr_at(step, c)
        for group in torch_opt.param_groups:
            group["lr"] = lr
        x, y = map(torch.from_numpy, lm_batch(train_tokens, c.batch_size, c.context,
                                              torch_rng))
        return torch_step(torch_model, torch_opt, x, y, c.clip), lr

    side = train_loop(c, step_fn, evaluate, args.eval_every, seed)
    side["batch_rng_state"] = torch_rng.bit_generator.state
    side["initial_logit_max_abs_diff"] = logit_diff
    return side


def child(args):
    """Train one engine alone in this process, for each of args.seeds, and write its records
    (one per seed) to args.json (or the screen)."""
    train_tokens, val_tokens, _ = load_corpus(args.corpus)
    run = run_ours if args.engine == "ours" else run_torch
    sides = []
    for seed in args.seeds:
        sides.append(run(args, seed, train_tokens, val_tokens))
        print(f"seed {seed}: {args.engine} done", flush=True)
    write_child_figures(args.json, sides)


def run_seed(args, seed):
    """Both engines on one seed, each in a process of its own, one after the other; their
    records side by side, and the validation losses compared at every evaluation."""
    began = time.perf_counter()
    runs = alternate(__file__, ["ours", "torch"], 1, args.threads,
                     ["--corpus", args.corpus, "--seeds", seed, "--iters", args.iters,
                      "--eval-every", args.eval_every, "--eval-iters", args.eval_iters],
                     show_output=True)
    ours, theirs = runs["ours"][0][0], runs["torch"][0][0]
    for side in (ours, theirs):                      # JSON keys are strings: steps again
        side["val_loss"] = {int(step): loss for step, loss in side["val_loss"].items()}
    # Both batch generators drew the same windows: they end in the same state.
    assert ours.pop("batch_rng_state") == theirs.pop("batch_rng_state"), "different batches"
    for step, ours_val in ours["val_loss"].items():
        torch_val = theirs["val_loss"][step]
        print(f"seed {seed} step {step:5d}: val loss ours {ours_val:.4f}  torch "
              f"{torch_val:.4f}  (ours - torch {ours_val - torch_val:+.4f})")
    record = {"seed": seed,
              "initial_logit_max_abs_diff": theirs.pop("initial_logit_max_abs_diff"),
              "ours": ours, "torch": theirs, "wall_s": time.perf_counter() - began}
    return summarise(record, args.iters)


def summarise(record, iters):
    ours, theirs = record["ours"], record["torch"]
    for side in (ours, theirs):
        side["median_ms"] = statistics.median(side["ms"])
        side["final_val_loss"] = side["val_loss"][iters]
        # Each engine's own wall time: its steps and its evaluations (the record's wall_s is
        # both processes', start-up included).
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


def threads_text(threads):
    if threads == AUTO:
        return "threads: ours chosen by timing its steps, PyTorch's defaults"
    return f"{threads} thread(s) each"


def main():
    args = ARGS
    with settings_refused_as_usage(__file__):
        train_tokens, val_tokens, chars = load_corpus(args.corpus)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    torch_version = importlib.metadata.version("torch")
    print(f"{args.corpus}: {len(train_tokens):,} train / {len(val_tokens):,} val characters, "
          f"vocabulary {len(chars)}; {args.iters} steps, seeds {args.seeds}\n"
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{load:.2f} at the start; numpy {np.__version__} and torch {torch_version}, "
          f"{threads_text(args.threads)}; each engine in its own process, one after the other"
          f"\n", flush=True)
    results = []
    for seed in args.seeds:
        results.append(run_seed(args, seed))
        print(f"seed {seed}: {results[-1]['wall_s']:.0f} s", flush=True)
    print_table(results, args.iters)
    if args.json:
        write_figures(args.json, {
            "corpus": os.path.basename(args.corpus), "iters": args.iters,
            "threads": args.threads, "torch": torch_version,
            "load_average_at_start": load,
            "method": "each engine alone in its own process, one after the other",
            "results": results})


if __name__ == "__main__":
    if ARGS.engine:
        child(ARGS)
    else:
        main()
