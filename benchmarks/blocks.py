"""What each change to the 2017 block buys: the built-in recipe and the Shakespeare recipe,
trained with the block as GPT-2 uses it, then with each of today's changes added one at a time,
then with all of them together; same seed, same steps, same data.

    python benchmarks/blocks.py                              # both recipes, every variant
    python benchmarks/blocks.py --corpus PATH                # Shakespeare's text from PATH
    python benchmarks/blocks.py --recipes builtin --jobs 2   # two variants at a time
    python benchmarks/blocks.py --iters 20 --eval-iters 2    # a quick look that it all runs
    python benchmarks/blocks.py --json benchmarks/results/blocks.json

Each run is exactly `tinyformer train` (the trainer, with the recipe's defaults: the built-in
corpus's, or nanoGPT's small CPU recipe for a text file: the tinyshakespeare text, --corpus,
tinyshakespeare.txt in the current directory by default) plus the variant's switches, and
reports:

    val loss     the mean loss on the held-out batches at the last step
    recall       built-in corpus only: the share of held-out stories whose colour comes back
    ms/step      the median time of a training step (forward, backward, AdamW), one thread
    params       the parameters the model learns

The variants, each against the baseline (LayerNorm, GELU, learned positions, one key and value
head per query head, biases):

    rmsnorm      normalization = rmsnorm              (Llama, Gemma)
    swiglu       activation = swiglu, d_ff 8/3 d_model (Llama); about the same parameters
    relu2        activation = relu2                   (Primer, nanochat)
    rope         positions = rope                     (RoFormer, every model since)
    gqa          n_kv_head = n_head / 2               (Llama 2 70B, Llama 3)
    mqa          n_kv_head = 1                        (PaLM, Falcon)
    qk_norm      qk_norm                              (OLMo 2, Qwen3, nanochat)
    softcap      logit_softcap = 15                   (Gemma 2, nanochat)
    no_bias      bias = false                         (PaLM, Llama)
    all          rope, rmsnorm, swiglu, gqa, qk_norm, softcap, no_bias together

Every run is seeded alike, so the initial weights differ only where the variant changes the
model's shape; the batches are the same. One seed says little about small differences: a run
of the baseline with another seed (`--seeds 0 1`) shows how far losses move by chance alone.
Runs go in parallel with --jobs, one BLAS thread each; their times per step are then measured
side by side, so compare them within one table only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import shakespeare_text
from alternate import at_least, json_file, write_figures

HERE = os.path.dirname(os.path.abspath(__file__))

VARIANTS = {
    "baseline": {},
    "rmsnorm": dict(normalization="rmsnorm"),
    "swiglu": dict(activation="swiglu"),
    "relu2": dict(activation="relu2"),
    "rope": dict(positions="rope"),
    "gqa": dict(n_kv_head=2),                # the recipes have 4 heads
    "mqa": dict(n_kv_head=1),
    "qk_norm": dict(qk_norm=True),
    "softcap": dict(logit_softcap=15.0),
    "no_bias": dict(bias=False),
    "all": dict(positions="rope", normalization="rmsnorm", activation="swiglu", n_kv_head=2,
                qk_norm=True, logit_softcap=15.0, bias=False),
}
RECIPES = ("builtin", "shakespeare")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--corpus", default=shakespeare_text.DEFAULT, metavar="PATH",
                   help=f"the Shakespeare recipe's: {shakespeare_text.HELP}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="every variant with the first; the baseline with each")
    p.add_argument("--iters", type=at_least(1), help="training steps [the recipe's: 800, 2000]")
    p.add_argument("--eval-iters", type=at_least(1), help="validation batches [20; 200 for "
                   "Shakespeare, as in the README's run]")
    p.add_argument("--jobs", type=at_least(1), default=1,
                   help="runs at a time, each in its own process")
    p.add_argument("--json", type=json_file, help="also write the results to this file")
    p.add_argument("--run", nargs=3, metavar=("RECIPE", "VARIANT", "SEED"),
                   help="child mode: one run, its record as JSON on stdout")
    args = p.parse_args(argv)
    problem = shakespeare_text.missing(args.corpus)
    if "shakespeare" in ([args.run[0]] if args.run else args.recipes) and problem:
        p.error(f"the Shakespeare recipe needs {problem} (or run --recipes builtin)")
    return args


# ---------------------------------------------------------------------------------------------
# One run (a child process)
# ---------------------------------------------------------------------------------------------


def one_run(recipe, variant, seed, args):
    """Train one variant of one recipe with the trainer; its figures as a dict."""
    import dataclasses

    import numpy as np

    sys.path.insert(0, os.path.join(HERE, ".."))
    from tinyformer.train import TrainConfig, Trainer

    settings = dict(VARIANTS[variant], seed=seed, sample_tokens=0, iters=args.iters)
    if recipe == "shakespeare":
        settings.update(corpus=args.corpus, eval_iters=args.eval_iters or 200)
    else:
        settings.update(eval_iters=args.eval_iters or 20)
    config = TrainConfig(**settings).resolved()
    # Evaluated before training and at the end only: the last figures are the ones reported.
    config = dataclasses.replace(config, eval_every=config.iters, checkpoint_every=config.iters)
    with tempfile.TemporaryDirectory() as directory:
        trainer = Trainer.start(config, directory, log=lambda *_: None)
        step, times = trainer.train_step, []

        def timed_step(threads=1, workers=None):
            began = time.perf_counter()
            figures = step(threads, workers)
            times.append(time.perf_counter() - began)
            return figures

        trainer.train_step = timed_step
        trainer.train()
        with open(os.path.join(directory, "metrics.jsonl")) as f:
            last = [json.loads(line) for line in f][-1]
        return {"recipe": recipe, "variant": variant, "seed": seed,
                "iters": trainer.config.iters, "val_loss": last["val_loss"],
                "val_recall": last.get("val_recall"),
                "ms_per_step": 1000 * float(np.median(times)),
                "params": trainer.model.num_parameters(),
                "final_train_loss": last["train_loss"]}


# ---------------------------------------------------------------------------------------------
# All the runs, and the table
# ---------------------------------------------------------------------------------------------


def planned(args):
    """(recipe, variant, seed) of every run: each variant with the first seed, the baseline
    with every seed."""
    runs = []
    for recipe in args.recipes:
        runs += [(recipe, variant, args.seeds[0]) for variant in args.variants]
        if "baseline" in args.variants:
            runs += [(recipe, "baseline", seed) for seed in args.seeds[1:]]
    return runs


def child_command(run, args):
    command = [sys.executable, os.path.abspath(__file__), "--run", *map(str, run),
               "--corpus", args.corpus]
    for name in ("iters", "eval_iters"):
        if getattr(args, name) is not None:
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return command


def run_all(args):
    """Every planned run, --jobs at a time, each in a process of its own with one BLAS
    thread; their records, in the planned order."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    todo, running, records = list(planned(args)), [], {}
    order = list(todo)
    try:
        while todo or running:
            while todo and len(running) < args.jobs:
                run = todo.pop(0)
                errors = tempfile.TemporaryFile(mode="w+")   # the child's progress bar, or why
                running.append((run, errors, subprocess.Popen(
                    child_command(run, args), env=env, stdout=subprocess.PIPE, stderr=errors,
                    text=True)))
            for job in list(running):
                run, errors, process = job
                if process.poll() is None:
                    continue
                running.remove(job)
                if process.returncode != 0:
                    errors.seek(0)
                    raise RuntimeError(f"the run {' '.join(map(str, run))} failed with exit "
                                       f"status {process.returncode}:\n{errors.read()[-2000:]}")
                records[run] = json.loads(process.stdout.read())
                print(f"  done: {row_text(records[run])}", flush=True)
            time.sleep(0.2)
    finally:
        # A run failed, or we were interrupted: the runs still going would train on for
        # minutes with nobody to read them. Stop them.
        for _, _, process in running:
            process.kill()
            process.wait()
    return [records[run] for run in order]


def row_text(r):
    recall = "-" if r["val_recall"] is None else f"{r['val_recall']:.2f}"
    return (f"{r['recipe']:<12} {r['variant']:<10} seed {r['seed']}  val loss "
            f"{r['val_loss']:.4f}  recall {recall}  {r['ms_per_step']:.1f} ms/step  "
            f"{r['params']:,} params")


def table(records):
    """The results as a Markdown table, each variant's loss also against the baseline's."""
    lines = []
    for recipe in dict.fromkeys(r["recipe"] for r in records):
        rows = [r for r in records if r["recipe"] == recipe]
        base = next((r for r in rows if r["variant"] == "baseline"), None)
        iters = rows[0]["iters"]
        lines += [f"\n{recipe} ({iters} steps)\n",
                  "| variant | seed | val loss | vs baseline | recall | ms/step | params |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            delta = "" if base is None or r is base else f"{r['val_loss'] - base['val_loss']:+.4f}"
            recall = "-" if r["val_recall"] is None else f"{r['val_recall']:.2f}"
            lines.append(f"| {r['variant']} | {r['seed']} | {r['val_loss']:.4f} | {delta} | "
                         f"{recall} | {r['ms_per_step']:.1f} | {r['params']:,} |")
    return "\n".join(lines)


def main():
    args = parse_args()
    if args.run:
        recipe, variant, seed = args.run
        print(json.dumps(one_run(recipe, variant, int(seed), args)))
        return 0
    print(f"{len(planned(args))} runs, {args.jobs} at a time", flush=True)
    began = time.perf_counter()
    records = run_all(args)
    print(table(records))
    print(f"\n{time.perf_counter() - began:.0f} s in all")
    for recipe in args.recipes:
        losses = [r["val_loss"] for r in records
                  if r["recipe"] == recipe and r["variant"] == "baseline"]
        if len(losses) > 1:
            print(f"{recipe}: the baseline's val loss over {len(losses)} seeds spreads by "
                  f"{max(losses) - min(losses):.4f} (standard deviation "
                  f"{statistics.stdev(losses):.4f})")
    if args.json:
        write_figures(args.json, {"runs": records, "argv": sys.argv[1:]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
