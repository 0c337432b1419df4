"""Every benchmark, one after another, and one table of ours against PyTorch eager with the
project's speed targets. `tinyformer bench` runs this script.

    python benchmarks/suite.py                       # everything but the whole run (minutes)
    python benchmarks/suite.py --quick               # fewer repetitions (about a minute)
    python benchmarks/suite.py --only train_step generation
    python benchmarks/suite.py --whole-run           # also 2000 steps of Shakespeare (~10 min)
    python benchmarks/suite.py --only gpt2           # GPT-2 small's generation (~2 min)
    python benchmarks/suite.py --only blocks         # each change to the block (~an hour)
    python benchmarks/suite.py --save                # keep the raw JSON in benchmarks/results/

Each benchmark is its own script, run in its own process (so that each sets its BLAS thread
count before numpy loads, and memory is measured per process); its own table is printed as it
runs, and its JSON is read back for the summary. The scripts that time both engines run each
engine in a process of its own too (benchmarks/alternate.py), so that neither slows the other.
Without PyTorch installed, the scripts print our figures alone and the summary has no ratios.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare.txt"))

# name: (script, arguments, arguments with --quick). Threads are added where a script takes them.
GPT2 = ["--model", "gpt2", "--batch-sizes", "1"]
BENCHMARKS = {
    "train_step": ("train_step.py", ["--blocks", "3", "--reps", "30"],
                   ["--blocks", "2", "--reps", "10", "--warmup", "3"]),
    "generation": ("generation.py", ["--blocks", "3", "--reps", "2"],
                   ["--blocks", "2", "--reps", "1"]),
    "ops": ("engine.py", [], ["--repeats", "5", "--calls", "100"]),
    "memory": ("memory.py", ["--steps", "200", "--runs", "3"], ["--steps", "30", "--runs", "1"]),
    "tokenizer": ("tokenizer_speed.py", [], ["--repeats", "1"]),
    "whole_run": ("shakespeare.py", ["--seeds", "0", "--eval-iters", "200"],
                  ["--seeds", "0", "--iters", "200", "--eval-every", "100", "--eval-iters", "20"]),
    "gpt2": ("generation.py", GPT2 + ["--new-tokens", "128", "--blocks", "2", "--reps", "1"],
             GPT2 + ["--prompt-len", "16", "--new-tokens", "16", "--blocks", "1", "--reps", "1"]),
    "blocks": ("blocks.py", [], ["--recipes", "builtin", "--iters", "30", "--eval-iters", "2"]),
}
TAKES_THREADS = {"train_step", "generation", "memory", "whole_run", "gpt2"}
# Run only when asked for by name (--only), or for whole_run with --whole-run: minutes each.
ON_REQUEST = {"whole_run", "gpt2", "blocks"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                   help=f"run only these: {', '.join(BENCHMARKS)}")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, rougher figures")
    p.add_argument("--whole-run", action="store_true",
                   help="also train the Shakespeare recipe to the end in both engines")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads and torch threads (1 is steadiest on a shared machine)")
    p.add_argument("--save", action="store_true",
                   help="write each benchmark's JSON to benchmarks/results/")
    return p.parse_args(argv)


def run(name, args, out_dir):
    """Run one benchmark script, its output going straight to ours; returns its JSON or None."""
    script, full, quick = BENCHMARKS[name]
    arguments = list(quick if args.quick else full)
    if name in TAKES_THREADS:
        arguments += ["--threads", str(args.threads)]
    # Named after the script; gpt2 runs generation.py too, so it gets a name of its own.
    json_path = os.path.join(out_dir, "generation_gpt2.json" if name == "gpt2" else
                             script.replace(".py", ".json"))
    command = [sys.executable, os.path.join(HERE, script), *arguments, "--json", json_path]
    print(f"\n=== {name}: python benchmarks/{script} {' '.join(arguments)}", flush=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads),
               OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    done = subprocess.run(command, env=env)
    if done.returncode != 0 or not os.path.exists(json_path):
        print(f"(the {name} benchmark failed with exit status {done.returncode})")
        return None
    with open(json_path) as f:
        return json.load(f)


# Each row of the summary: (what, ours, torch, ratio ours/torch, target, met?).

def rows_train_step(r):
    ours, torch = r["ours"], r.get("torch")
    ratio = r.get("ratio")
    yield ("training step, ms", ours["median_ms"], torch and torch["median_ms"], ratio,
           "<= 0.75", ratio is not None and ratio <= 0.75)
    yield ("  tokens/s", ours["tokens_per_s"], torch and torch["tokens_per_s"], None, "", None)
    yield ("  % of numpy's GEMM FLOP/s", 100 * ours["share_of_numpy_gemm"],
           torch and 100 * torch["share_of_numpy_gemm"], None, "", None)


def rows_generation(r):
    for row in r["results"]:
        ratio = row.get("ratio")
        yield (f"generation, batch {row['batch']}, tok/s", row["ours_tok_s"],
               row.get("torch_tok_s"), ratio, ">= 1", ratio is not None and ratio >= 1)


def rows_ops(r):
    overhead = [row["overhead ratio"] for row in r["rows"]
                if row.get("overhead ratio") is not None]
    both = [row["f+b ratio"] for row in r["rows"] if row.get("f+b ratio") is not None]
    if overhead:
        median = statistics.median(overhead)
        yield ("per-op overhead (median ratio)", None, None, median, "<= 1", median <= 1)
    if both:
        median = statistics.median(both)
        yield ("  forward+backward (median ratio)", None, None, median, "<= 1", median <= 1)


def rows_memory(r):
    ratio = r.get("ratio")
    yield ("peak memory of training, MiB", r["ours"]["peak"], r.get("torch", {}).get("peak"),
           ratio, "<= 1", ratio is not None and ratio <= 1)


def rows_tokenizer(r):
    bpe = r["results"]["ours bpe"]
    yield ("BPE training, s", bpe["train s"], None, None, "< 30", bpe["train s"] < 30)
    yield ("BPE encoding, MB/s", bpe["encode cold MB/s"], None, None, ">= 1",
           bpe["encode cold MB/s"] >= 1)


def rows_whole_run(r):
    for run in r["results"]:
        o, t = run["ours"], run["torch"]
        yield (f"whole run ({r['iters']} steps), wall s", o["wall_s"], t["wall_s"],
               run["wall_ratio"], "<= 0.75", run["wall_ratio"] <= 0.75)
        yield ("  final validation loss", o["final_val_loss"], t["final_val_loss"], None,
               "within 0.02", abs(run["final_diff"]) <= 0.02)


def rows_gpt2(r):
    for row in r["results"]:
        ratio = row.get("ratio")
        yield (f"GPT-2 small generation, batch {row['batch']}", row["ours_tok_s"],
               row.get("torch_tok_s"), ratio, ">= 1", ratio is not None and ratio >= 1)


def rows_blocks(r):
    for run in r["runs"]:
        if run["variant"] in ("baseline", "all") and run["seed"] == r["runs"][0]["seed"]:
            yield (f"{run['recipe']} {run['variant']} block, val loss", run["val_loss"], None,
                   None, "", None)


SUMMARY_ROWS = {"train_step": rows_train_step, "generation": rows_generation, "ops": rows_ops,
                "memory": rows_memory, "tokenizer": rows_tokenizer, "whole_run": rows_whole_run,
                "gpt2": rows_gpt2, "blocks": rows_blocks}


def number(x):
    if x is None:
        return "-"
    if abs(x) < 10:
        return f"{x:.4g}"                   # losses and shares: 1.887, 0.49
    return f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}"


def summary(results, threads):
    print(f"\n=== summary: ours against PyTorch eager, {threads} thread(s); ratio = ours / "
          f"torch")
    print(f"{'':38}{'ours':>10}{'torch':>10}{'ratio':>8}  {'target':>11}  ")
    for name, figures in results.items():
        if figures is None:
            print(f"{name:38}{'(failed)':>10}")
            continue
        for what, ours, torch, ratio, target, met in SUMMARY_ROWS[name](figures):
            verdict = "" if met is None else ("met" if met else "not yet")
            print(f"{what:38}{number(ours):>10}{number(torch):>10}"
                  f"{'-' if ratio is None else f'{ratio:.2f}':>8}  {target:>11}  {verdict}")


def selected(only, whole_run):
    """The benchmarks to run: those named, or all but the ones run only on request."""
    return list(only) or [name for name in BENCHMARKS
                          if name not in ON_REQUEST or (name == "whole_run" and whole_run)]


def main(argv=None):
    args = parse_args(argv)
    names = selected(args.only or [], args.whole_run)
    if "whole_run" in names and not os.path.exists(CORPUS):
        print(f"(whole_run needs {CORPUS}; left out)")
        names.remove("whole_run")
    if importlib.util.find_spec("torch") is None:
        print("(PyTorch is not installed: our figures alone, no ratios; pip install torch to "
              "compare)")
        if "whole_run" in names:
            print("(whole_run is a comparison with PyTorch; left out)")
            names.remove("whole_run")
    out_dir = os.path.join(HERE, "results") if args.save else tempfile.mkdtemp()
    results = {name: run(name, args, out_dir) for name in names}
    summary(results, args.threads)
    return 0 if all(r is not None for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
