"""Generation with a KV cache: our GPT against PyTorch eager, tokens per second.

    python benchmarks/generation.py                      # batch 1 and 8, 256 new tokens, 1 thread
    python benchmarks/generation.py --threads 2 --reps 5
    python benchmarks/generation.py --json benchmarks/results/generation.json

The model is the Shakespeare recipe's GPT (4 layers, 4 heads, d_model 128, GELU MLP 512, tied
embeddings, vocab 65) with a context of 320, so that a 64-token prompt and 256 new tokens fit:
past the context the window slides, every position shifts and no cache can help, which would
measure something else. PyTorch's model is benchmarks/shakespeare.py's TorchGPT loaded with our
weights, and decodes with a KV cache written below the way one writes it in eager PyTorch: the
prompt in one pass, then one position per step, keys and values appended per layer,
F.scaled_dot_product_attention over the cache.

Both decode greedily (temperature 0), so both must produce the same tokens: the script reports
the share of generated tokens on which they agree (float32 rounding can flip a near tie, after
which the continuations differ). The engines take turns, repetition by repetition, and the
medians are compared. Tokens per second counts the new tokens of every row of the batch.
"""

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads, and torch's threads")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--reps", type=int, default=5, help="timed repetitions of each engine")
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
from tinyformer.gpt import GPT  # noqa: E402

try:
    import torch
    from torch_gpt import TorchGPT, copy_weights, torch_generate
except ImportError:         # the table still prints, without PyTorch's columns
    torch = None

VOCAB, N_LAYER, N_HEAD, D_MODEL, D_FF = 65, 4, 4, 128, 512


def measure(args):
    context = args.prompt_len + args.new_tokens
    ta.manual_seed(0)
    ours = GPT(VOCAB, context, N_LAYER, N_HEAD, D_MODEL, d_ff=D_FF)
    engines = {"ours": lambda prompt: ours.generate(prompt, args.new_tokens, temperature=0)}
    if torch is not None:
        torch.set_num_threads(args.threads)
        theirs = TorchGPT(VOCAB, context, N_LAYER, N_HEAD, D_MODEL, D_FF)
        copy_weights(ours, theirs)
        theirs.eval()
        engines["torch"] = lambda prompt: torch_generate(theirs, torch.from_numpy(prompt),
                                                         args.new_tokens).numpy()
    rng = np.random.default_rng(0)
    rows = []
    for batch in args.batch_sizes:
        prompt = rng.integers(0, VOCAB, (batch, args.prompt_len))
        times = {name: [] for name in engines}
        outputs = {}
        for rep in range(args.reps + 1):                    # the first of each is a warm-up
            for name, generate in engines.items():          # taking turns
                t0 = time.perf_counter()
                outputs[name] = generate(prompt)[:, args.prompt_len:]
                if rep:
                    times[name].append(time.perf_counter() - t0)
        row = {"batch": batch, "new_tokens": args.new_tokens}
        for name in engines:
            row[f"{name}_tok_s"] = batch * args.new_tokens / statistics.median(times[name])
        if torch is not None:
            row["agree"] = float((outputs["ours"] == outputs["torch"]).mean())
            row["ratio"] = row["ours_tok_s"] / row["torch_tok_s"]  # above 1: we are faster
        rows.append(row)
    return {"machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__ if torch else None,
            "threads": args.threads, "prompt_len": args.prompt_len, "context": context,
            "reps": args.reps, "results": rows}


def report(figures):
    torch_version = f"torch {figures['torch']}" if figures["torch"] else "no PyTorch installed"
    print(f"Greedy generation with a KV cache: prompt {figures['prompt_len']}, "
          f"{figures['results'][0]['new_tokens']} new tokens, context {figures['context']}; "
          f"median of {figures['reps']}; {figures['machine']}, numpy {figures['numpy']}, "
          f"{torch_version} ({figures['threads']} thread(s))")
    print(f"\n{'batch':>5}  {'ours tok/s':>10}  {'torch tok/s':>11}  {'ours/torch':>10}  "
          f"{'same tokens':>11}")
    for r in figures["results"]:
        if "torch_tok_s" in r:
            theirs = f"{r['torch_tok_s']:11.0f}  {r['ratio']:10.2f}  {r['agree']:11.0%}"
        else:
            theirs = f"{'-':>11}  {'-':>10}  {'-':>11}"
        print(f"{r['batch']:5d}  {r['ours_tok_s']:10.0f}  {theirs}")


if __name__ == "__main__":
    figures = measure(ARGS)
    report(figures)
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(figures, f, indent=1)
