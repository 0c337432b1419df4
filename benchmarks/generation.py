"""Generation with a KV cache: our GPT against PyTorch eager, tokens per second.

    python benchmarks/generation.py                      # batch 1 and 8, 256 new tokens, 1 thread
    python benchmarks/generation.py --threads 2 --reps 3 --blocks 5
    python benchmarks/generation.py --threads auto       # each engine as a user gets it
    python benchmarks/generation.py --json benchmarks/results/generation.json
    python benchmarks/generation.py --model gpt2 --batch-sizes 1 --reps 3    # GPT-2 124M

The model is the Shakespeare recipe's GPT (4 layers, 4 heads, d_model 128, GELU MLP 512, tied
embeddings, vocab 65) with a context of 320, so that a 64-token prompt and 256 new tokens fit:
past the context the window slides, every position shifts and no cache can help, which would
measure something else. PyTorch's model is benchmarks/torch_gpt.py's TorchGPT loaded with our
weights, and decodes with that file's KV cache (torch_generate), written the way one writes it
in eager PyTorch: the prompt in one pass, then one position per step, keys and values
appended per layer, F.scaled_dot_product_attention over the cache.

With `--model gpt2` the model is GPT-2 small's shape instead (124M parameters: vocab 50257,
12 layers, 12 heads, d_model 768, MLP 3072), with random weights: speed does not depend on what
the weights say. With transformers installed, a third column decodes with its GPT2LMHeadModel
(our weights, through `save_pretrained`) and `generate`, what a PyTorch user would run.

Both decode greedily (temperature 0), so both must produce the same tokens: the script reports
the share of generated tokens on which they agree (float32 rounding can flip a near tie, after
which the continuations differ). Each engine is timed alone, in a process of its own
(`--engine NAME`, the child mode; benchmarks/alternate.py says why), and the engines take turns
block by block: in every block each generates once untimed, then `--reps` timed times, for each
batch size. The medians over all blocks are compared. Tokens per second counts the new tokens of
every row of the batch.

With `--threads auto` each engine generates as a user gets it: PyTorch at its defaults (one
thread a core), ours as `tinyformer generate` does without --threads: each generation times
its steps (a token each) to choose its BLAS threads, with a fresh
tinyformer.resources.AdaptiveThreads, its first steps the trials.
"""

import argparse
import os
import sys

from alternate import (AUTO, Help, alternate, at_least, counted, json_file,
                       set_thread_variables, set_torch_threads, thread_count,
                       write_child_figures, write_figures)


# vocab, n_layer, n_head, d_model, d_ff
MODELS = {"shakespeare": (65, 4, 4, 128, 512), "gpt2": (50257, 12, 12, 768, 3072)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=Help)
    p.add_argument("--threads", type=thread_count, default=1,
                   help="BLAS threads, and torch's threads; auto: each engine as a user gets it")
    p.add_argument("--model", choices=sorted(MODELS), default="shakespeare",
                   help="the recipe's small GPT, or GPT-2 small's shape (124M parameters)")
    p.add_argument("--batch-sizes", type=at_least(1), nargs="+", default=[1, 8],
                   help="prompts generated together (the batch), each size timed in turn")
    p.add_argument("--prompt-len", type=at_least(1), default=64,
                   help="tokens of each prompt (random ids)")
    p.add_argument("--new-tokens", type=at_least(1), default=256,
                   help="tokens generated after each prompt")
    p.add_argument("--blocks", type=at_least(1), default=3,
                   help="turns of each engine, each its own process")
    p.add_argument("--reps", type=at_least(1), default=2,
                   help="timed repetitions of each engine per block and batch size")
    p.add_argument("--json", type=json_file, help="also write the figures to this file")
    p.add_argument("--engine", choices=["ours", "torch", "transformers"],
                   help="child mode: time this engine alone and write its figures to --json "
                   "(without it, print them as JSON)")
    return p.parse_args(argv)


# OpenBLAS reads its thread count when numpy is imported, so the arguments come first.
if __name__ == "__main__":
    ARGS = parse_args()
    set_thread_variables(os.environ, ARGS.threads)

import importlib.util  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import tinyautograd as ta  # noqa: E402
from tinyformer.gpt import GPT  # noqa: E402
from tinyformer.resources import step_threads  # noqa: E402

# PyTorch (and transformers) are imported only in their own children, so that ours runs without
# them loaded.
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_TRANSFORMERS = HAVE_TORCH and importlib.util.find_spec("transformers") is not None


def generator(args):
    """(generate(prompt) -> the prompt and its new tokens as a numpy array, the engine's version,
    our model's parameter count) for args.engine; every engine starts from our weights."""
    vocab, n_layer, n_head, d_model, d_ff = MODELS[args.model]
    ta.manual_seed(0)
    ours = GPT(vocab, args.prompt_len + args.new_tokens, n_layer, n_head, d_model, d_ff=d_ff)
    parameters = ours.num_parameters()
    if args.engine == "ours":
        def generate(prompt):           # as `tinyformer generate`: the count, or its steps' choice
            with step_threads(None if args.threads == AUTO else args.threads) as steps:
                return ours.generate(prompt, args.new_tokens, temperature=0, threads=steps)
        return generate, np.__version__, parameters
    import torch
    set_torch_threads(torch, args.threads)
    if args.engine == "torch":
        from torch_gpt import TorchGPT, copy_weights, torch_generate
        theirs = TorchGPT(vocab, args.prompt_len + args.new_tokens, n_layer, n_head, d_model,
                          d_ff)
        copy_weights(ours, theirs)
        theirs.eval()
        return (lambda prompt: torch_generate(theirs, torch.from_numpy(prompt),
                                              args.new_tokens).numpy(),
                torch.__version__, parameters)
    # transformers' GPT2LMHeadModel with our weights, saved and loaded in the GPT-2 format, and
    # its generate: what a PyTorch user would run.
    import transformers
    with tempfile.TemporaryDirectory() as directory:
        ours.save_pretrained(directory)
        hf_model = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    return (lambda prompt: hf_model.generate(
        torch.from_numpy(prompt), attention_mask=torch.ones(prompt.shape, dtype=int),
        do_sample=False, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
        pad_token_id=0).numpy(), transformers.__version__, parameters)


def child(args):
    """Time one engine alone in this process: per batch size one untimed generation, then
    args.reps timed ones; write the seconds and the last new tokens to args.json (or the screen)."""
    generate, version, parameters = generator(args)
    rng = np.random.default_rng(0)              # every engine and block: the same prompts
    results = []
    for batch in args.batch_sizes:
        prompt = rng.integers(0, MODELS[args.model][0], (batch, args.prompt_len))
        seconds = []
        for rep in range(args.reps + 1):        # the first is a warm-up
            t0 = time.perf_counter()
            tokens = generate(prompt)[:, args.prompt_len:]
            if rep:
                seconds.append(time.perf_counter() - t0)
        results.append({"batch": batch, "seconds": seconds, "tokens": tokens.tolist()})
    write_child_figures(args.json, {"version": version, "parameters": parameters,
                                    "results": results})


def measure(args):
    """Run the children in turns and gather their figures."""
    engines = ["ours", "torch"] if HAVE_TORCH else ["ours"]
    if args.model == "gpt2" and HAVE_TRANSFORMERS:
        engines.append("transformers")
    runs = alternate(__file__, engines, args.blocks, args.threads,
                     ["--model", args.model, "--batch-sizes", *args.batch_sizes,
                      "--prompt-len", args.prompt_len, "--new-tokens", args.new_tokens,
                      "--reps", args.reps])
    rows = []
    for i, batch in enumerate(args.batch_sizes):
        row = {"batch": batch, "new_tokens": args.new_tokens}
        tokens = {}
        for name in engines:
            seconds = [s for run in runs[name] for s in run["results"][i]["seconds"]]
            row[f"{name}_tok_s"] = batch * args.new_tokens / statistics.median(seconds)
            tokens[name] = np.array(runs[name][0]["results"][i]["tokens"])
        if HAVE_TORCH:
            row["agree"] = float((tokens["ours"] == tokens["torch"]).mean())
            row["ratio"] = row["ours_tok_s"] / row["torch_tok_s"]  # above 1: we are faster
        if "transformers" in engines:
            row["transformers_agree"] = float((tokens["ours"] == tokens["transformers"]).mean())
        rows.append(row)
    method = (f"each engine alone in its own process, "
              f"{counted(args.blocks, 'alternating block')} of 1 untimed + "
              f"{counted(args.reps, 'timed generation')} per batch size; medians over the blocks")
    return {"torch": runs["torch"][0]["version"] if HAVE_TORCH else None,
            "transformers": runs["transformers"][0]["version"] if "transformers" in runs else None,
            "threads": args.threads, "model": args.model,
            "parameters": runs["ours"][0]["parameters"], "prompt_len": args.prompt_len,
            "context": args.prompt_len + args.new_tokens, "reps": args.reps,
            "blocks": args.blocks, "method": method, "results": rows}


def report(figures):
    torch_version = f"torch {figures['torch']}" if figures["torch"] else "no PyTorch installed"
    print(f"Greedy generation with a KV cache: prompt {figures['prompt_len']}, "
          f"{figures['results'][0]['new_tokens']} new tokens, context {figures['context']}; "
          f"{figures['method']}; {platform.machine()}, numpy {np.__version__}, "
          f"{torch_version} (threads: {figures['threads']})")
    print(f"model: {figures['model']}, {figures['parameters']:,} parameters")
    hf = "transformers_tok_s" in figures["results"][0]
    print(f"\n{'batch':>5}  {'ours tok/s':>10}  {'torch tok/s':>11}  {'ours/torch':>10}  "
          f"{'same tokens':>11}" + (f"  {'transformers tok/s':>18}  {'same':>5}" if hf else ""))
    for r in figures["results"]:
        if "torch_tok_s" in r:
            theirs = f"{r['torch_tok_s']:11.0f}  {r['ratio']:10.2f}  {r['agree']:11.0%}"
        else:
            theirs = f"{'-':>11}  {'-':>10}  {'-':>11}"
        if hf:
            theirs += f"  {r['transformers_tok_s']:18.1f}  {r['transformers_agree']:5.0%}"
        print(f"{r['batch']:5d}  {r['ours_tok_s']:10.1f}  {theirs}")


if __name__ == "__main__":
    if ARGS.engine:
        child(ARGS)
    else:
        figures = measure(ARGS)
        report(figures)
        if ARGS.json:
            write_figures(ARGS.json, figures)
