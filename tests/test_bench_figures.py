"""The arithmetic and the reporting of the benchmarks, on made-up figures: which way each ratio
goes, medians (not means) over the right values, each target judged in its own direction and
met when reached exactly, and where each benchmark runs (its case's threads, its neighbour, its
own file of results). Nothing here is timed: the processes a benchmark starts are stood in for,
so that these tests take well under a second each (tests/test_bench.py runs the real ones)."""

import contextlib
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import tinyformer_cli as cli

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("suite", ROOT / "benchmarks" / "suite.py")
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)          # it puts benchmarks/ on the path for the imports below
import builtin_run  # noqa: E402
import engine  # noqa: E402
import memory  # noqa: E402
import neighbour_share  # noqa: E402
from alternate import THREAD_VARIABLES  # noqa: E402


def summary_rows(capsys, results, case_name="one-thread", case=None):
    """{a row's label: its words} of the summary of `results`."""
    suite.summary(results, case_name, case or suite.CASES[case_name])
    return {line.strip().split("  ")[0]: line.split()
            for line in capsys.readouterr().out.splitlines()[2:]}


def verdict(words):
    return " ".join(words[-2:]) if words[-2:] == ["not", "yet"] else words[-1]


def step(ratio):
    side = {"median_ms": 50.0, "tokens_per_s": 1.0, "share_of_numpy_gemm": 0.5}
    return {"ratio": ratio, "ours": side, "torch": side}


def test_a_target_reached_exactly_is_met(capsys):
    """Each target is "at most" or "at least" its figure: the figure itself meets it."""
    rows = summary_rows(capsys, {
        "train_step": step(0.90),
        "generation": {"results": [{"batch": 1, "ours_tok_s": 10.0, "torch_tok_s": 10.0,
                                    "ratio": 1.0}]},
        "memory": {"ours": {"peak": 80.0}, "torch": {"peak": 80.0}, "ratio": 1.0},
        "ops": {"rows": [{"overhead ratio": 1.0, "f+b ratio": 1.0}]},
        "builtin_run": {"medians_s": {"quiet": 10.0, "beside": 11.5}, "ratio": 1.15,
                        "target": 1.15}})
    for label in ("training step, ms", "generation, batch 1, tok/s",
                  "peak memory of training, MiB", "per-op overhead (median ratio)",
                  "forward+backward (median ratio)", "beside / quiet"):
        assert verdict(rows[label]) == "met", (label, rows[label])


def test_a_target_missed_is_not_yet_met(capsys):
    rows = summary_rows(capsys, {
        "train_step": step(0.91),
        "memory": {"ours": {"peak": 81.0}, "torch": {"peak": 80.0}, "ratio": 81 / 80},
        "ops": {"rows": [{"overhead ratio": 1.01, "f+b ratio": 1.01}]},
        "builtin_run": {"medians_s": {"quiet": 10.0, "beside": 11.6}, "ratio": 1.16,
                        "target": 1.15}})
    assert [verdict(words) for words in rows.values() if "yet" in words or "met" in words] \
        == ["not yet"] * 5


def test_the_tokenizer_is_judged_on_time_below_and_speed_above(capsys):
    fast = {"results": {"ours bpe": {"train s": 29.0, "encode cold MB/s": 1.0}}}
    slow = {"results": {"ours bpe": {"train s": 31.0, "encode cold MB/s": 0.9}}}
    rows = summary_rows(capsys, {"tokenizer": fast})
    assert verdict(rows["BPE training, s"]) == "met"
    assert verdict(rows["BPE encoding, MB/s"]) == "met"
    rows = summary_rows(capsys, {"tokenizer": slow})
    assert verdict(rows["BPE training, s"]) == "not yet"
    assert verdict(rows["BPE encoding, MB/s"]) == "not yet"


def test_a_figure_judged_itself_that_rounds_to_its_target_shows_the_decimal_that_decides(
        capsys):
    # The built-in run's beside / quiet of 1.1504 read "1.15" beside "<= 1.15 not yet", and a
    # BPE trained in 29.996 s read "30.0" beside "< 30 met": the ratio column shows the
    # deciding decimal, but these figures, judged without a ratio, were shown as any other.
    def shown(results):
        """{label: (our figure as shown, the verdict)}"""
        return {label: (words[len(label.split())], verdict(words))
                for label, words in summary_rows(capsys, results).items() if label != "ours"}
    assert shown({
        "builtin_run": {"medians_s": {"quiet": 10.0, "beside": 11.504}, "ratio": 1.1504,
                        "target": 1.15},
        "tokenizer": {"results": {"ours bpe": {"train s": 29.996, "encode cold MB/s": 0.99996}}},
    }) == {"built-in train, quiet, s": ("10.0", "-"), "beside a busy core, s": ("11.5", "-"),
           "beside / quiet": ("1.1504", "not yet"), "BPE training, s": ("29.996", "met"),
           "BPE encoding, MB/s": ("0.99996", "not yet")}      # "-": no verdict, no ratio
    # Far from the target, or not judged (PyTorch's peak missing: no verdict, the target
    # last): as number() shows them
    assert shown({"builtin_run": {"medians_s": {"quiet": 10.0, "beside": 12.0}, "ratio": 1.2,
                                  "target": 1.15}})["beside / quiet"] == ("1.2", "not yet")
    assert shown({"memory": {"ours": {"peak": 1.00004}}}) == {
        "peak memory of training, MiB": ("1", "1")}


def test_the_tokenizer_on_the_built_in_corpus_is_shown_but_not_judged(capsys):
    # Without the tinyshakespeare text the benchmark measures the built-in stories: the aims
    # are the 1.1 MB text's, and the summary said "met" of figures of another text.
    figures = {"corpus": "built-in corpus",
               "results": {"ours bpe": {"train s": 0.2, "encode cold MB/s": 3.0}}}
    rows = summary_rows(capsys, {"tokenizer": figures})
    # ours, torch's and the ratio, and no target nor verdict after them
    assert {label: words[-3:] for label, words in rows.items() if label.startswith("BPE")} \
        == {"BPE training, built-in corpus, s": ["0.2", "-", "-"],
            "BPE encoding, built-in corpus, MB/s": ["3", "-", "-"]}


def test_the_per_op_ratios_are_summed_up_by_their_median_not_their_mean(capsys):
    # One op far slower (2.5) would pull a mean above 1; the median is the typical op's.
    rows = summary_rows(capsys, {"ops": {"rows": [
        {"overhead ratio": 0.5, "f+b ratio": 0.5}, {"overhead ratio": 0.9, "f+b ratio": 0.9},
        {"overhead ratio": 2.5, "f+b ratio": 2.5}]}})
    for label in ("per-op overhead (median ratio)", "forward+backward (median ratio)"):
        assert rows[label][-4:] == ["0.90", "<=", "1", "met"], rows[label]


def test_an_op_that_beats_numpys_composite_has_no_overhead_ratio():
    # Our compiled layer norm ahead of numpy's composite (-2.3 us) against torch's 1.8 us gave
    # a ratio of -1.28, which the median counted as our best op.
    assert engine.overhead_ratio(-2.3, 1.8) is None
    assert engine.overhead_ratio(1.8, -2.3) is None
    assert engine.overhead_ratio(1.0, 2.0) == 0.5


def test_the_per_op_overhead_leaves_pytorchs_threads_to_the_suites_environment(monkeypatch,
                                                                               capsys):
    # The suite runs it once on one thread (OMP_NUM_THREADS=1, which PyTorch reads); it set
    # PyTorch's threads to 2 all the same.
    torch = pytest.importorskip("torch")
    asked = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    monkeypatch.setattr(engine, "measure", lambda repeats, calls: [])
    monkeypatch.setattr(engine, "print_table", lambda rows: None)
    engine.main([])
    assert asked == []
    engine.main(["--threads", "3"])
    assert asked == [3]


def test_the_per_op_overheads_help_says_how_to_read_its_columns(capsys):
    # It said only its first line (tests/test_bench.py asks the other scripts, in a process
    # of their own; this one imports PyTorch first, seconds).
    with pytest.raises(SystemExit):
        engine.main(["--help"])
    assert "ratio       our overhead / torch's overhead (target: <= 1)" in capsys.readouterr().out


def test_each_column_holds_its_own_engines_figure(capsys):
    side = {"tokens_per_s": 1.0, "share_of_numpy_gemm": 0.5}
    rows = summary_rows(capsys, {
        "train_step": {"ratio": 0.6, "ours": dict(side, median_ms=30.0),
                       "torch": dict(side, median_ms=50.0)},
        "builtin_run": {"medians_s": {"quiet": 10.0, "beside": 12.0}, "ratio": 1.2,
                        "target": 1.15}})
    assert rows["training step, ms"][-6:-2] == ["30.0", "50.0", "0.60", "<="]
    assert rows["built-in train, quiet, s"][-3:] == ["10.0", "-", "-"]
    assert rows["beside a busy core, s"][-3:] == ["12.0", "-", "-"]


def test_a_case_named_twice_runs_once():
    assert [name for name, _ in suite.cases_to_run(["loaded", "one-thread", "loaded"], None)] \
        == ["loaded", "one-thread"]


@contextlib.contextmanager
def no_neighbour_but_a_flag(flags):
    """Stands in for the busy neighbour: `flags` says whether it is up now."""
    flags.append(True)
    try:
        yield 0
    finally:
        flags.append(False)


@contextlib.contextmanager
def stand_in_benchmarks(monkeypatch, failing=()):
    """The suite with its benchmarks stood in for: each writes figures of its kind where the
    suite reads them, and records its command, its thread variables and whether the neighbour
    ran beside it; those whose results file is named in `failing` exit with status 1. Yields
    the records."""
    records, neighbour = [], []

    def benchmark(command, env):
        path = command[command.index("--json") + 1]
        name = os.path.basename(path)
        figures = {"rows": []} if name == "engine.json" else {"ours": {"peak": 1.0}}
        with open(path, "w") as f:
            json.dump(figures, f)
        records.append({"file": name, "command": command,
                        "threads": [env.get(v) for v in THREAD_VARIABLES],
                        "beside_the_neighbour": bool(neighbour) and neighbour[-1]})
        return 1 if name in failing else 0
    monkeypatch.setattr(suite, "run_with_all_it_starts", benchmark)
    monkeypatch.setattr(suite, "busy_neighbour", lambda: no_neighbour_but_a_flag(neighbour))
    yield records


def test_what_does_not_depend_on_the_threads_runs_once_on_one_thread_and_quiet(monkeypatch,
                                                                                capsys):
    with stand_in_benchmarks(monkeypatch) as records:
        assert suite.main(["--only", "ops", "memory", "--case", "loaded", "two-threads"]) == 0
    assert [(r["file"], r["threads"], r["beside_the_neighbour"]) for r in records] == [
        ("memory-loaded.json", [None] * 3, True),
        ("memory-two-threads.json", ["2"] * 3, False),
        ("engine.json", ["1"] * 3, False)]
    assert "--threads" not in records[2]["command"]
    out = capsys.readouterr().out
    assert "=== summary, once: the rest, measured once, quiet" in out


def test_the_suite_fails_when_any_of_its_benchmarks_fails(monkeypatch, capsys):
    with stand_in_benchmarks(monkeypatch, failing=["memory.json"]):
        assert suite.main(["--only", "ops", "memory"]) == 1
    assert "memory                                  (failed)" in capsys.readouterr().out


def test_each_case_keeps_its_results_in_a_file_of_its_own(monkeypatch, tmp_path, capsys):
    # With --save, a case's results must not overwrite another's.
    with stand_in_benchmarks(monkeypatch) as records:
        for name in ("one-thread", "two-threads", "loaded"):
            suite.run("memory", name, suite.CASES[name], True, str(tmp_path))
    assert [r["file"] for r in records] == ["memory.json", "memory-two-threads.json",
                                            "memory-loaded.json"]
    capsys.readouterr()



def test_a_benchmarks_json_says_what_measured_it_when_and_how(tmp_path, monkeypatch, capsys):
    # Each script wrote its own few facts, if any: memory.json no numpy, engine.json no
    # machine, none a date or the command, so saved figures could not be told apart later.
    import alternate
    import numpy as np
    import threadpoolctl
    from tinyautograd import kernels
    from tinyformer import resources
    monkeypatch.setattr(sys, "argv", ["/clone/benchmarks/memory.py", "--steps", "3"])
    monkeypatch.delenv(alternate.RUN_BY, raising=False)
    alternate.write_figures(str(tmp_path / "memory.json"), {"peak": 1.0})
    figures = json.loads((tmp_path / "memory.json").read_text())
    about = figures["about"]
    assert figures["peak"] == 1.0
    assert about["command"] == "python benchmarks/memory.py --steps 3" and about["run by"] is None
    assert about["numpy"] == np.__version__
    assert datetime.datetime.fromisoformat(about["date"]).date() == datetime.date.today()
    assert {"cpu", "blas", "python", "torch"} <= set(about)
    # The kernels and the BLAS threads it ran with, as they are then.
    for compiled, said in ((False, "numpy forms"), (True, "compiled loops")):
        monkeypatch.setattr(kernels, "in_use", lambda compiled=compiled: compiled)
        assert alternate.about_this_run()["our ops"] == said
    blas = [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert blas and alternate.about_this_run()["blas threads"] == [1] * len(blas)
    # The cores this process may use (under a container's quota of one here), not the machine's.
    monkeypatch.setattr(resources, "cpu_quota", lambda: 1.0)
    assert alternate.about_this_run()["cores"] == 1
    # Run by the suite: its own command beside the script's, whose --json is a scratch file.
    monkeypatch.setenv(alternate.RUN_BY, "tinyformer bench --only memory")
    assert alternate.about_this_run()["run by"] == "tinyformer bench --only memory"
    capsys.readouterr()

# -- builtin_run.py: tinyformer train, quiet and beside a busy core ---------------------------

def fake_runs(monkeypatch, times):
    """builtin_run with its runs stood in for: each takes the next of `times` and ends at loss
    3.0; returns, for each run, its arguments and whether the neighbour was up."""
    flags, calls, times = [], [], iter(times)

    def timed_run(arguments, directory):
        calls.append((arguments, bool(flags) and flags[-1]))
        return next(times), 3.0
    monkeypatch.setattr(builtin_run, "timed_run", timed_run)
    monkeypatch.setattr(builtin_run, "busy_neighbour", lambda: no_neighbour_but_a_flag(flags))
    return calls


def test_the_builtin_run_runs_beside_the_busy_core_only_its_second_run(monkeypatch, capsys):
    calls = fake_runs(monkeypatch, [1.0, 2.0, 1.0])
    builtin_run.main(["--turns", "1", "--one-core"])
    assert [beside for _, beside in calls] == [False, True, False]
    capsys.readouterr()


def test_the_builtin_run_reaching_its_target_exactly_meets_it(monkeypatch, capsys):
    fake_runs(monkeypatch, [10.0, 11.5])
    builtin_run.main(["--turns", "1"])
    assert "medians: 1.15 (target at most 1.15: met)" in capsys.readouterr().out


def test_the_builtin_run_compares_beside_the_busy_core_with_one_core(monkeypatch, tmp_path,
                                                                     capsys):
    # quiet, beside, one core: turns of 1, 3, 2 s and 1, 4, 2 s (medians 1, 3.5, 2)
    fake_runs(monkeypatch, [1.0, 3.0, 2.0, 1.0, 4.0, 2.0])
    out = tmp_path / "out.json"
    builtin_run.main(["--turns", "2", "--one-core", "--json", str(out)])
    figures = json.loads(out.read_text())
    assert figures["medians_s"] == {"quiet": 1.0, "beside": 3.5, "one_core": 2.0}
    assert (figures["ratio"], figures["ratio_to_one_core"]) == (3.5, 1.75)
    assert "quiet on one core, medians: 1.75" in capsys.readouterr().out


# -- memory.py: each engine's peak in its own process ----------------------------------------

def fake_children(monkeypatch, peaks):
    """memory.py with its children stood in for: each engine's child reports the next of its
    peaks (and 10 MiB after imports, 20 with the model); returns each child's command and
    thread variables."""
    monkeypatch.setattr(memory, "HAVE_TORCH", True)
    children, peaks = [], {engine: iter(values) for engine, values in peaks.items()}

    def run(command, env, **_):
        engine = command[command.index("--engine") + 1]
        children.append((command, [env.get(v) for v in THREAD_VARIABLES]))
        figures = {"imports": 10.0, "model": 20.0, "peak": next(peaks[engine])}
        return subprocess.CompletedProcess(command, 0, "noise\n" + json.dumps(figures), "")
    monkeypatch.setattr(memory.subprocess, "run", run)
    return children


def test_memory_compares_the_median_peaks_ours_over_torchs(monkeypatch):
    fake_children(monkeypatch, {"ours": [100.0, 400.0, 110.0], "torch": [50.0, 60.0, 55.0]})
    figures = memory.measure(memory.parse_args(["--runs", "3"]))
    assert figures["ours"] == {"imports": 10.0, "model": 20.0, "peak": 110.0}   # not the mean
    assert figures["torch"]["peak"] == 55.0 and figures["ratio"] == 2.0


def test_memory_gives_each_child_the_threads_asked_for(monkeypatch):
    for threads, variables in (("2", ["2"] * 3), ("auto", [None] * 3)):
        children = fake_children(monkeypatch, {"ours": [1.0], "torch": [1.0]})
        for name in THREAD_VARIABLES:
            monkeypatch.setenv(name, "3")              # the caller's, which auto must drop
        memory.measure(memory.parse_args(["--runs", "1", "--threads", threads]))
        assert [command[command.index("--engine") + 1] for command, _ in children] == [
            "ours", "torch"]
        for command, seen in children:
            assert command[command.index("--threads") + 1] == threads and seen == variables


# -- neighbour_share.py: what each side got of the cores --------------------------------------

def test_the_neighbours_share_says_what_each_side_got(monkeypatch, tmp_path, capsys):
    """A step of 10 ms on one core, 6 quiet over two processes and 8 beside the neighbour:
    ours got 10 / 8 of a core; the neighbour spun 0.5 s of CPU in 1 s of wall time."""
    steps = iter([(0.010, 0, 0, 1.0), (0.006, 0, 0, 0.5), (0.008, 0.25, 0, 0.5)])
    monkeypatch.setattr(neighbour_share, "timed_steps", lambda *args: next(steps))
    monkeypatch.setattr(neighbour_share, "busy_neighbour", lambda: no_neighbour_but_a_flag([]))
    cpu = iter([1.0, 1.5])
    monkeypatch.setattr(neighbour_share, "cpu_seconds", lambda pid: next(cpu))
    monkeypatch.setattr(neighbour_share, "threadpool_limits", lambda n: None)   # ours to keep
    monkeypatch.setattr(neighbour_share, "time",
                        types.SimpleNamespace(perf_counter=iter([10.0, 11.0]).__next__))
    out = tmp_path / "share.json"
    neighbour_share.main(["--processes", "2", "--json", str(out)])
    row, = json.loads(out.read_text())["rows"]
    assert (row["quiet_ms"], row["beside_ms"]) == (6.0, 8.0)
    assert row["ours_cores_beside"] == 1.25 and row["neighbour_cores"] == 0.5
    assert "| 6.0 ms | 8.0 ms | 1.33 | 1.25 | 0.50 |" in capsys.readouterr().out


def test_the_neighbours_share_leaves_its_two_warm_up_steps_out(monkeypatch):
    # One process, three steps after two warm-up steps of 100 s each: the median is of 1, 2, 3.
    ends = iter([0, 100, 0, 100, 0, 1, 0, 2, 0, 3])
    monkeypatch.setattr(neighbour_share, "time",
                        types.SimpleNamespace(perf_counter=ends.__next__))
    median, *_ = neighbour_share.timed_steps(1, steps=3, work=1)
    assert median == 2


def test_the_neighbours_share_counts_two_on_one_core_in_timed_steps_only():
    # Held to one core, two processes end every step on it: every timed step, and no more.
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        _, together, moved, _ = neighbour_share.timed_steps(2, steps=3, work=2)
    finally:
        os.sched_setaffinity(0, cores)
    assert (together, moved) == (1.0, 0.0)


# -- the bench command hands every option on to the suite --------------------------------------

def test_bench_hands_every_option_to_the_suite(tmp_path, monkeypatch):
    got = tmp_path / "argv.json"
    fake = tmp_path / "suite.py"
    fake.write_text("import json\n"
                    "BENCHMARKS, ON_REQUEST = {}, set()\n"
                    "def check_choices(*args):\n"
                    "    pass\n"
                    "def main(argv):\n"
                    f"    open({str(got)!r}, 'w').write(json.dumps(argv))\n"
                    "    return 0\n")
    monkeypatch.setattr(cli, "BENCH_SUITE", str(fake))
    result = CliRunner().invoke(cli.main, ["bench", "--save", "--whole-run", "--quick",
                                           "--case", "loaded", "--case", "two-threads",
                                           "--only", "memory", "--corpus", "text.txt"])
    assert result.exit_code == 0, result.output
    args = suite.parse_args(json.loads(got.read_text()))
    assert args.save and args.whole_run and args.quick and args.threads is None
    assert (args.cases, args.only, args.corpus) == (["loaded", "two-threads"], ["memory"],
                                                     "text.txt")
