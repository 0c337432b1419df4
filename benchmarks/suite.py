"""The benchmarks in each case asked for, and a summary table a case: ours against PyTorch eager.

One benchmark after another, and then each case's table, with the project's speed targets in
its last column. `tinyformer bench` runs this script.

    python benchmarks/suite.py                       # one thread; the default benchmarks (minutes)
    python benchmarks/suite.py --quick               # fewer repetitions (about a minute)
    python benchmarks/suite.py --case loaded         # beside a busy core, as a user runs them
    python benchmarks/suite.py --case one-thread two-threads loaded --quick     # all three
    python benchmarks/suite.py --threads 4           # both engines on 4 threads
    python benchmarks/suite.py --only train_step generation
    python benchmarks/suite.py --whole-run           # also 2000 steps of Shakespeare (~10 min)
    python benchmarks/suite.py --whole-run --corpus data/tinyshakespeare.txt   # found there
    python benchmarks/suite.py --only gpt2           # GPT-2 small's generation (~2 min)
    python benchmarks/suite.py --only blocks         # each change to the block (~an hour)
    python benchmarks/suite.py --only builtin_run    # tinyformer train, quiet and loaded (~5 min)
    python benchmarks/suite.py --save                # keep the raw JSON in benchmarks/results/

The cases (--case, one thread unless asked; or --threads N, both engines on N threads):
  one-thread    both engines on one thread: BLAS's and PyTorch's
  two-threads   both on two threads
  loaded        beside a neighbour process that keeps one core busy, as a browser or an editor
                does on a learner's laptop, with each engine as a user gets it: PyTorch at its
                defaults (one thread a core), ours as tinyformer runs by default (training
                and generating time their own steps to choose their threads, with
                AdaptiveThreads of tinyformer/resources.py). The
                neighbour starts before the case's first benchmark and is stopped after its
                last, however the case ends.
The benchmarks whose speed depends on the threads (training step, generation, memory, the whole
run, GPT-2) run in each case; the others (per-op overhead, tokenizer, blocks) run once, with one
BLAS thread and no neighbour, and have a table of their own, with the built-in run
(builtin_run.py: `tinyformer train` as a user runs it, quiet, then beside a neighbour of its
own).

The whole run and the blocks' Shakespeare recipe read the tinyshakespeare text, and so does the
tokenizer benchmark where it is there (else it measures the built-in corpus, whose figures the
summary shows without judging them: the targets are the text's): --corpus PATH, by default
tinyshakespeare.txt in the current directory (README says how to download it).

Each benchmark is its own script, run in its own process (so that each sets its BLAS thread
count before numpy loads, and memory is measured per process); its own table is printed as it
runs, and its JSON is read back for the summary. The scripts that time both engines run each
engine in a process of its own too (benchmarks/alternate.py), so that neither slows the other.
Without PyTorch installed, the scripts print our figures alone and the summary has no ratios
(and no verdicts); the whole run, a comparison, is refused. A PyTorch installed that does not
import is refused before any runs, where a benchmark to run compares with it.
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import shakespeare_text  # noqa: E402
from alternate import (AUTO, RUN_BY, block_ratios, command_of,  # noqa: E402
                       set_thread_variables, torch_import_error)
from quiet_when_stopped import ended_quietly_if_the_reader_goes  # noqa: E402
from tinyautograd import kernels  # noqa: E402
from tinyformer import resources  # noqa: E402

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
    # Quiet, then beside its own busy neighbour: it is not run in a case, and chooses its
    # threads as the command does. Arguments after "--" go to tinyformer train.
    "builtin_run": ("builtin_run.py", ["--turns", "2", "--one-core"],
                    ["--turns", "1", "--one-core", "--", "--iters", "200", "--eval-every",
                     "100"]),
}
# Those whose figures depend on the threads: they take --threads, and run in every case.
TAKES_THREADS = {"train_step", "generation", "memory", "whole_run", "gpt2"}
# Run only when asked for by name (--only), or for whole_run with --whole-run: minutes each.
ON_REQUEST = {"whole_run", "gpt2", "blocks", "builtin_run"}
# Those that time PyTorch beside ours, where it is installed.
COMPARES = {"train_step", "generation", "ops", "memory", "whole_run", "gpt2"}
# Those that read the tinyshakespeare text (--corpus), given to them as --corpus.
READS_TEXT = {"whole_run", "blocks", "tokenizer"}
# Where --save writes each benchmark's JSON: the repository's own figures are there.
RESULTS = os.path.join(HERE, "results")


@dataclasses.dataclass(frozen=True)
class Case:
    """How both engines run: on `threads` (a count, or AUTO: each engine as a user gets it),
    beside a neighbour that keeps a core busy or not; and the targets of the training step's
    and the whole run's time, ours / torch (None: no target)."""
    title: str
    threads: int | str
    neighbour: bool
    step_target: float | None = None
    whole_run_target: float | None = None


CASES = {
    "one-thread": Case("both engines on one thread", 1, False, step_target=0.90),
    "two-threads": Case("both engines on two threads", 2, False, step_target=1.00,
                        whole_run_target=1.00),
    "loaded": Case("beside a process that keeps one core busy; PyTorch at its defaults, ours "
                   "choosing its threads", AUTO, True, step_target=0.80),
}
DEFAULT_CASE = "one-thread"
# The benchmarks that do not depend on the threads run once, so: the same in every case.
ONCE = Case("the rest, measured once, quiet (their figures hardly depend on the threads; the "
            "built-in run takes turns, quiet and beside a busy core)", 1, False)


def fixed_threads(n):
    """(name, Case) of --threads N: both engines on N threads, with no neighbour; that is the
    one-thread or two-threads case, or for more threads two threads' targets."""
    if n <= 2:
        name = ["one-thread", "two-threads"][n - 1]
        return name, CASES[name]
    return f"{n}-threads", dataclasses.replace(CASES["two-threads"], threads=n,
                                               title=f"both engines on {n} threads")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__[__doc__.index("The cases"):
                                               __doc__.index("Each benchmark is")])
    # extend: `--case one-thread --case loaded` runs both, as with tinyformer bench (a plain
    # nargs="+" kept the last one given, and ran loaded alone)
    p.add_argument("--only", nargs="+", action="extend", default=[], metavar="NAME",
                   help=f"run only these: {', '.join(BENCHMARKS)}")
    p.add_argument("--case", nargs="+", action="extend", default=[], metavar="CASE", dest="cases",
                   help=f"run these cases: {', '.join(CASES)} (default: {DEFAULT_CASE})")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, rougher figures")
    p.add_argument("--whole-run", action="store_true",
                   help="also train the Shakespeare recipe to the end in both engines")
    p.add_argument("--threads", type=int,
                   help="both engines on this many BLAS and torch threads, instead of --case")
    p.add_argument("--save", action="store_true",
                   help="write each benchmark's JSON to benchmarks/results/, replacing the "
                   "file of its name there: the repository's own figures among them")
    p.add_argument("--corpus", metavar="PATH", help=shakespeare_text.HELP)
    return p.parse_args(argv)


def check_choices(only, cases, threads, whole_run=False, quick=False, corpus=None,
                  save=False):
    """ValueError, in one line saying what to do, for a benchmark or a case that does not
    exist, `save` where the results folder, or a file of it that a benchmark to run would
    replace, cannot be written (each benchmark would fail at its end, minutes on), a thread
    count below 1, --threads given with --case (or either where no benchmark to run depends
    on the threads), the whole run without PyTorch (a comparison with
    nothing to compare with), a `corpus` that no benchmark to run reads (given, and ignored, it
    would look used), or a benchmark to run that needs the tinyshakespeare text (at `corpus`,
    or by default in the current directory) where it is not: the whole run, the blocks'
    Shakespeare recipe (not with `quick`), and the tokenizer's if `corpus` names it (without,
    it measures the built-in corpus instead); or a text there that those benchmarks cannot
    use; or, where a benchmark to run compares with PyTorch, a PyTorch installed that does not
    import (each such benchmark would end in a traceback, and its figures of ours with it)."""
    for kind, names, known in (("benchmark", only, BENCHMARKS), ("case", cases, CASES)):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"no {kind} is called {unknown[0]!r}; choose from "
                             f"{', '.join(known)}")
    # The folder, or where it is to be made (write_figures makes it).
    if save and not os.access(RESULTS if os.path.isdir(RESULTS) else HERE, os.W_OK):
        raise ValueError("--save writes to benchmarks/results/, which you cannot write to: "
                         "drop --save, or run from a clone of the repository of your own")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be 1 or more, not {threads}")
    if threads is not None and cases:
        raise ValueError("--threads N runs both engines on N threads and --case chooses "
                         "cases: give one or the other")
    to_run = selected(only, whole_run)
    # A file of the folder that cannot be replaced (read-only): its benchmark ran its minutes,
    # then failed to write, with a traceback, the figures lost.
    kept = [path for path in saved_files(to_run, cases, threads)
            if os.path.exists(path) and not os.access(path, os.W_OK)] if save else []
    if kept:
        raise ValueError(f"--save replaces benchmarks/results/{os.path.basename(kept[0])}, "
                         f"which you cannot write to: make it writable (chmod u+w), or drop "
                         f"--save")
    given = "--threads" if threads is not None else "--case" if cases else None
    if given and not TAKES_THREADS & set(to_run):
        raise ValueError(f"{given} applies to {', '.join(sorted(TAKES_THREADS))} only (the "
                         f"others run once, on one thread), and none of them is to run: drop "
                         f"{given}, or name one with --only")
    if "whole_run" in to_run and not have_torch():
        raise ValueError("whole_run trains the recipe in both engines to compare them, and "
                         "PyTorch is not installed: pip install torch")
    reading = [name for name in to_run if name == "whole_run" or
               name == "blocks" and not quick or name == "tokenizer"]
    if corpus is not None and not reading:
        raise ValueError(f"--corpus is read by {', '.join(sorted(READS_TEXT))} only (blocks not "
                         f"with --quick), and none of them is to run: drop --corpus, or name "
                         f"one with --only")
    path = corpus or shakespeare_text.DEFAULT
    needing = [name for name in reading if name != "tokenizer" or corpus is not None]
    if whole_run:                  # said of what the user asked for, not of the tokenizer's
        needing.sort(key=lambda name: name != "whole_run")
    problem = shakespeare_text.missing(path)
    if needing and problem:
        raise ValueError(f"{needing[0]} needs {problem}")
    if reading and not problem:                # as the benchmarks would read it, minutes on
        problem = shakespeare_text.unusable(path, recipe=reading != ["tokenizer"],
                                            bpe="tokenizer" in reading)
        if problem:
            raise ValueError(problem)
    # Last: trying the import takes seconds.
    comparing = [name for name in to_run if name in COMPARES]
    broken = comparing and torch_import_error()
    if broken:
        raise ValueError(f"{comparing[0]} compares our engine with PyTorch, which is installed "
                         f"but does not import ({broken}): reinstall it (pip install "
                         f"--force-reinstall torch)")


def have_torch():
    return importlib.util.find_spec("torch") is not None


def cases_to_run(cases, threads):
    """[(name, Case)]: those named, or the one of --threads N, or the default."""
    if threads is not None:
        return [fixed_threads(threads)]
    return [(name, CASES[name]) for name in dict.fromkeys(cases or [DEFAULT_CASE])]


# The neighbour: a busy loop that also ends by itself if the suite dies without stopping it
# (it is then no longer our child), so that nothing spins on after us; Ctrl-C is left to the
# suite, which stops it.
NEIGHBOUR = """\
import os, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
parent = os.getppid()
print("busy", flush=True)
while os.getppid() == parent:
    for _ in range(1_000_000):
        pass
"""


@contextlib.contextmanager
def busy_neighbour():
    """A process that keeps one core busy for the length of the `with`, and is stopped at its
    end however it ends (a failure, Ctrl-C). Yields its process id."""
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR], stdout=subprocess.PIPE,
                                 text=True)
    try:
        neighbour.stdout.readline()          # it has started and is spinning
        yield neighbour.pid
    finally:
        neighbour.kill()
        neighbour.wait()
        neighbour.stdout.close()


def end_as_after_ctrl_c(number, frame):
    sys.exit(128 + number)


def run_with_all_it_starts(command, env):
    """Run `command` to its end and return its exit status. It runs in a process group of its
    own, with every process it starts (a benchmark's engines, their workers, a run's own busy
    neighbour), so that however we leave (Ctrl-C, an interrupt sent to this process alone, a
    terminal closed, `timeout`) none of them runs on: they are interrupted, as Ctrl-C would,
    so that each cleans up, and whatever still runs a few seconds later is killed."""
    process = subprocess.Popen(command, env=env, start_new_session=True)
    # Signals that would end us at once, with no `finally` run: end as after Ctrl-C instead.
    previous = {number: signal.signal(number, end_as_after_ctrl_c) for number in
                [getattr(signal, name) for name in ENDING if hasattr(signal, name)]}
    try:
        return process.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        stop_with_its_group(process)


ENDING = ("SIGTERM", "SIGHUP")      # SIGHUP: a terminal closed (POSIX only)


def stop_with_its_group(process):
    """Stop `process` and every process of its group: an interrupt, then a kill a few seconds
    later for whatever still runs. Windows has no process groups: the process alone."""
    if not hasattr(os, "killpg"):
        process.kill()
        process.wait()
        return
    try:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
    finally:
        # Ctrl-C again cuts the wait short, not the kill: what of the group still ran would
        # run on unseen, in a session of its own.
        with contextlib.suppress(ProcessLookupError):     # none left: the usual end
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# Each benchmark script runs under this: quietly on Ctrl-C, and when the output's reader has
# gone (see there).
QUIET_WHEN_STOPPED = os.path.join(HERE, "quiet_when_stopped.py")


def json_name(name, case_name):
    """The name of the JSON file of benchmark `name` run in case `case_name`: the script's
    (gpt2 runs generation.py too, so it gets a name of its own), with the case's name where it
    is not the default and the benchmark runs in every case (train_step-loaded.json)."""
    script = BENCHMARKS[name][0]
    stem = "generation_gpt2" if name == "gpt2" else script.replace(".py", "")
    suffix = f"-{case_name}" if name in TAKES_THREADS and case_name != DEFAULT_CASE else ""
    return stem + suffix + ".json"


def saved_files(names, cases, threads):
    """The files of benchmarks/results/ that --save writes, running `names` in the cases of
    `cases` or `threads` (as main runs them)."""
    case_names = [case_name for case_name, _ in cases_to_run(cases, threads)]
    return [os.path.join(RESULTS, json_name(name, case_name)) for name in names
            for case_name in (case_names if name in TAKES_THREADS else [DEFAULT_CASE])]


def run(name, case_name, case, quick, out_dir, corpus=None):
    """Run one benchmark script under `case`'s threads, its output going straight to ours,
    given the tinyshakespeare text (`corpus`, or the default) if it reads it and it is there;
    returns its JSON or None."""
    script, full, quick_arguments = BENCHMARKS[name]
    arguments = list(quick_arguments if quick else full)
    if name in TAKES_THREADS:
        arguments += ["--threads", str(case.threads)]
    corpus = corpus or shakespeare_text.DEFAULT
    if name in READS_TEXT and os.path.isfile(corpus):
        arguments += ["--corpus", os.path.abspath(corpus)]
    json_path = os.path.join(out_dir, json_name(name, case_name))
    # --json first: what follows a "--" in the arguments is another command's.
    command = [sys.executable, QUIET_WHEN_STOPPED, os.path.join(HERE, script), "--json",
               json_path, *arguments]
    print(f"\n=== {name} ({case_name}): python benchmarks/{script} {' '.join(arguments)}",
          flush=True)
    env = set_thread_variables(dict(os.environ), case.threads)
    env[RUN_BY] = command_of(sys.argv)               # for the script's JSON: what ran it
    returncode = run_with_all_it_starts(command, env)
    if returncode != 0 or not os.path.exists(json_path):
        print(f"(the {name} benchmark failed with exit status {returncode})")
        return None
    with open(json_path) as f:
        return json.load(f)


def run_case(case_name, case, names, quick, out_dir, corpus=None):
    """{name: its figures, or None where it failed} for each benchmark of `names` under `case`,
    beside the busy neighbour where the case asks for one."""
    with busy_neighbour() if case.neighbour else contextlib.nullcontext():
        return {name: run(name, case_name, case, quick, out_dir, corpus) for name in names}


# Each row of the summary: (what, ours, torch, ratio ours/torch, target, met?). Every row
# function takes the benchmark's figures and the case it ran in, whose targets some rows use.

def at_most(ratio, target):
    """The target column and its verdict for a ratio that should be at most `target`; no
    verdict without a ratio (PyTorch not installed, or its run failed): nothing to judge."""
    if target is None:
        return "", None
    return f"<= {target:.2f}", None if ratio is None else ratio <= target


def at_least(ratio, target):
    """The same for a ratio that should be at least `target`."""
    return f">= {target:g}", None if ratio is None else ratio >= target


def rows_train_step(r, case):
    ours, torch = r["ours"], r.get("torch")
    ratio = r.get("ratio")
    yield ("training step, ms", ours["median_ms"], torch and torch["median_ms"], ratio,
           *at_most(ratio, case.step_target))
    if torch and "block_medians_ms" in ours and "block_medians_ms" in torch:
        ratios = block_ratios(ours["block_medians_ms"], torch["block_medians_ms"])
        yield ("  its blocks' ratios, lowest", None, None, min(ratios), "", None)
        yield ("  its blocks' ratios, highest", None, None, max(ratios), "", None)
    yield ("  tokens/s", ours["tokens_per_s"], torch and torch["tokens_per_s"], None, "", None)
    yield ("  % of numpy's GEMM FLOP/s", 100 * ours["share_of_numpy_gemm"],
           torch and 100 * torch["share_of_numpy_gemm"], None, "", None)
    if "threads" in ours:           # for ours under AUTO: the count its steps' timing chose
        yield ("  threads", ours["threads"], torch and torch["threads"], None, "", None)


def rows_generation(r, case):
    for row in r["results"]:
        ratio = row.get("ratio")
        yield (f"generation, batch {row['batch']}, tok/s", row["ours_tok_s"],
               row.get("torch_tok_s"), ratio, *at_least(ratio, 1))


def rows_ops(r, case):
    overhead = [row["overhead ratio"] for row in r["rows"]
                if row.get("overhead ratio") is not None]
    both = [row["f+b ratio"] for row in r["rows"] if row.get("f+b ratio") is not None]
    if r["rows"] and not overhead and not both:    # PyTorch not installed: our own medians
        yield ("per-op overhead, µs a call (median)",
               statistics.median(row["ours overhead"] for row in r["rows"]), None, None,
               "<= 1", None)
        yield ("  forward+backward, µs a call (median)",
               statistics.median(row["ours f+b"] for row in r["rows"]), None, None, "<= 1",
               None)
    if overhead:
        median = statistics.median(overhead)
        yield ("per-op overhead (median ratio)", None, None, median, "<= 1", median <= 1)
    if both:
        median = statistics.median(both)
        yield ("  forward+backward (median ratio)", None, None, median, "<= 1", median <= 1)


def rows_memory(r, case):
    ratio = r.get("ratio")
    yield ("peak memory of training, MiB", r["ours"]["peak"], r.get("torch", {}).get("peak"),
           ratio, "<= 1", None if ratio is None else ratio <= 1)


def rows_tokenizer(r, case):
    bpe = r["results"]["ours bpe"]
    if r.get("corpus") == shakespeare_text.BUILTIN:
        # Without the tinyshakespeare text it measured the built-in stories, a fifth of its
        # size with a BPE of fewer ids: the aims are the 1.1 MB text's, and judged on another
        # they would read as met on it. The figures are shown, not judged.
        yield ("BPE training, built-in corpus, s", bpe["train s"], None, None, "", None)
        yield ("BPE encoding, built-in corpus, MB/s", bpe["encode cold MB/s"], None, None, "",
               None)
        return
    yield ("BPE training, s", bpe["train s"], None, None, "< 30", bpe["train s"] < 30)
    yield ("BPE encoding, MB/s", bpe["encode cold MB/s"], None, None, ">= 1",
           bpe["encode cold MB/s"] >= 1)


SAME_LOSS = 1e-4          # the whole run's final validation loss, ours against torch's


def rows_whole_run(r, case):
    for run in r["results"]:
        o, t = run["ours"], run["torch"]
        yield (f"whole run ({r['iters']} steps), wall s", o["wall_s"], t["wall_s"],
               run["wall_ratio"], *at_most(run["wall_ratio"], case.whole_run_target))
        if "eval_s" in o and "eval_s" in t:    # where the time went: steps, or evaluations
            yield ("  its evaluations, s", o["eval_s"], t["eval_s"],
                   o["eval_s"] / t["eval_s"] if t["eval_s"] else None, "", None)
        yield ("  final validation loss", o["final_val_loss"], t["final_val_loss"], None,
               "within 1e-4", abs(run["final_diff"]) <= SAME_LOSS)


def rows_gpt2(r, case):
    for row in r["results"]:
        ratio = row.get("ratio")
        yield (f"GPT-2 small generation, batch {row['batch']}, tok/s", row["ours_tok_s"],
               row.get("torch_tok_s"), ratio, *at_least(ratio, 1))


def rows_blocks(r, case):
    for run in r["runs"]:
        if run["variant"] in ("baseline", "all") and run["seed"] == r["runs"][0]["seed"]:
            yield (f"{run['recipe']} {run['variant']} block, val loss", run["val_loss"], None,
                   None, "", None)


def rows_builtin_run(r, case):
    yield ("built-in train, quiet, s", r["medians_s"]["quiet"], None, None, "", None)
    yield ("  beside a busy core, s", r["medians_s"]["beside"], None, None, "", None)
    yield ("  beside / quiet", r["ratio"], None, None, f"<= {r['target']:.2f}",
           r["ratio"] <= r["target"])
    if "ratio_to_one_core" in r:
        yield ("  beside / quiet on one core", r["ratio_to_one_core"], None, None, "", None)


SUMMARY_ROWS = {"train_step": rows_train_step, "generation": rows_generation, "ops": rows_ops,
                "memory": rows_memory, "tokenizer": rows_tokenizer, "whole_run": rows_whole_run,
                "gpt2": rows_gpt2, "blocks": rows_blocks, "builtin_run": rows_builtin_run}


def number(x):
    if x is None:
        return "-"
    if abs(x) < 10:
        return f"{x:.4g}"                   # losses and shares: 1.887, 0.49
    return f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}"


def summary(results, case_name, case):
    """The table of one case: each benchmark's rows, its target and whether it is met."""
    print(f"\n=== summary, {case_name}: {case.title}; ratio = ours / torch")
    print(f"{'':38}{'ours':>10}{'torch':>10}{'ratio':>8}  {'target':>11}  ")
    for name, figures in results.items():
        if figures is None:
            print(f"{name:38}{'(failed)':>10}")
            continue
        for what, ours, torch, ratio, target, met in SUMMARY_ROWS[name](figures, case):
            verdict = "" if met is None else ("met" if met else "not yet")
            # Without a ratio, a verdict is of our own figure (the tokenizer's, the built-in
            # run's beside / quiet).
            judged = ratio is None and met is not None
            print(f"{what:38}{shown_figure(ours, target, judged):>10}{number(torch):>10}"
                  f"{shown_ratio(ratio, target):>8}  {target:>11}  {verdict}")


def target_bound(target):
    """The number of a target ("<= 0.90": 0.9), or None where it has none ("")."""
    try:
        return float(target.split()[-1])
    except (IndexError, ValueError):
        return None


def shown_figure(figure, target, judged):
    """A figure as number() shows it; but one that is `judged` against `target` itself, where
    that would show the target's own number (1.1504 as "1.15" beside "<= 1.15 not yet"), with
    the decimals that decide the verdict, as shown_ratio shows a ratio."""
    shown = number(figure)
    bound = target_bound(target) if judged else None
    if bound is None or figure is None or figure == bound or \
            float(shown.replace(",", "")) != bound:
        return shown
    return shown_ratio(figure, target)


def shown_ratio(ratio, target):
    """A ratio to two decimals; to more where two would show the target's own number (0.904
    as 0.90 beside "<= 0.90 not yet"): as many as it takes to show the decimal that decides
    the verdict (0.904, 0.9004), up to six."""
    if ratio is None:
        return "-"
    bound = target_bound(target)
    if bound is None:                   # no number to meet: ""
        return f"{ratio:.2f}"
    decimals = 2
    while decimals < 6 and ratio != bound and round(ratio, decimals) == bound:
        decimals += 1
    return f"{ratio:.{decimals}f}"


def selected(only, whole_run):
    """The benchmarks to run: those named (each once), or all but the ones run only on
    request; and the whole run too with `whole_run` (--whole-run beside --only adds it, as
    beside nothing)."""
    names = list(dict.fromkeys(only)) or [name for name in BENCHMARKS if name not in ON_REQUEST]
    return names + ["whole_run"] * (whole_run and "whole_run" not in names)


def main(argv=None):
    args = parse_args(argv)
    try:
        check_choices(args.only, args.cases, args.threads, args.whole_run, args.quick,
                      args.corpus, args.save)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    names = selected(args.only, args.whole_run)
    if not have_torch():
        print("(PyTorch is not installed: our figures alone, no ratios; pip install torch to "
              "compare)")
    print(f"(ours: {kernels.summary()})")
    cores = resources.usable_cores()
    if args.threads is not None and args.threads > cores:     # run as asked, but not unwarned
        print(f"(--threads {args.threads}: this machine lets the benchmarks use {cores} "
              f"core{'s' * (cores > 1)}, and threads beyond the cores slow both engines down, "
              f"many of them by far: a run can take many times its usual minutes)")
    per_case = [name for name in names if name in TAKES_THREADS]
    once = [name for name in names if name not in TAKES_THREADS]
    with tempfile.TemporaryDirectory() as scratch:     # the JSON, unless kept with --save
        out_dir = RESULTS if args.save else scratch
        tables = [(case_name, case, run_case(case_name, case, per_case, args.quick, out_dir,
                                             args.corpus))
                  for case_name, case in cases_to_run(args.cases, args.threads) if per_case]
        if once:
            # Headed "(once)", as their table is: not as the default case, which they are not.
            tables.append(("once", ONCE, run_case("once", ONCE, once, args.quick, out_dir,
                                                  args.corpus)))
    for case_name, case, results in tables:
        summary(results, case_name, case)
    if not args.save:         # each script said "written: PATH" of a file now gone
        print("\n(the JSON written above went to a scratch folder, now removed; --save keeps "
              "it in benchmarks/results/)")
    return 0 if all(r is not None for *_, results in tables for r in results.values()) else 1


def as_a_program(argv=None):
    """main's exit status as `python benchmarks/suite.py` ends: quietly when the output's
    reader has gone, and on Ctrl-C with "stopped by Ctrl-C" and exit status 130, as
    `tinyformer bench` ends, not with a traceback (the benchmark it ran has ended quietly, and
    whatever it started is stopped)."""
    try:
        return ended_quietly_if_the_reader_goes(lambda: main(argv))
    except KeyboardInterrupt:
        print("stopped by Ctrl-C", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(as_a_program())
