"""`tinyformer bench`: it runs the benchmark scripts, in each case asked for (one thread, two,
beside a busy neighbour), and sums them up against the speed targets. (The figures themselves
are measured, never asserted: a test only checks that the machinery runs, gives each engine the
threads its case says, stops the neighbour however a case ends, and reads its results right.)"""

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tinyformer_cli as cli
from full_disk import files_limited_to
from processes import process_state, running, running_children, runs_code

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("suite", ROOT / "benchmarks" / "suite.py")
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
spec = importlib.util.spec_from_file_location("alternate", ROOT / "benchmarks" / "alternate.py")
alternate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(alternate)
THREAD_VARIABLES = alternate.THREAD_VARIABLES


# A stand-in for the tinyshakespeare text, varied enough for what the benchmarks learn from
# it (the tokenizer benchmark's merges), yet small.
TEXT = "\n".join(" ".join(a + b + c + "e" for b in "aeiou" for c in "bdfgklmnprst")
                 for a in "bcdfghjklmnprstvw") + "\n"


def script(name, *arguments, **options):
    """benchmarks/NAME run in a process of its own, its output captured as text."""
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *arguments],
                          capture_output=True, text=True, **options)


# Runs benchmarks/NAME ARGUMENTS for each [NAME, ARGUMENTS] read as JSON from its standard
# input, one after another in this one process, as `python benchmarks/NAME ARGUMENTS` would
# (the script as __main__, its own environment each time, a SystemExit's status, a traceback
# printed and status 1); prints [[status, stdout, stderr], ...] as JSON.
SCRIPTS_ONE_AFTER_ANOTHER = r"""
import contextlib, io, json, os, runpy, sys, traceback
here = os.path.join(sys.argv[1], "benchmarks")
sys.path.insert(0, here)                    # as `python benchmarks/NAME` has it
environment = dict(os.environ)
results = []
for name, arguments in json.load(sys.stdin):
    os.environ.clear()
    os.environ.update(environment)          # a script sets its thread variables in it
    path = os.path.join(here, name)
    sys.argv = [path, *arguments]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name="__main__")
            status = 0
        except SystemExit as stop:          # as Python ends a process on it
            if stop.code is None:
                status = 0
            elif isinstance(stop.code, int):
                status = stop.code
            else:                           # sys.exit("message"): printed, status 1
                print(stop.code, file=sys.stderr)
                status = 1
        except BaseException:
            traceback.print_exc()
            status = 1
    results.append([status, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


# Before SCRIPTS_ONE_AFTER_ANOTHER: each script stops with status 99 as soon as its arguments
# are read, had they been taken; a refusal of them still ends it as before (status 2).
ARGUMENTS_READ_ONLY = """
import argparse, sys
read = argparse.ArgumentParser.parse_args
def read_only(self, *args, **kwargs):
    read(self, *args, **kwargs)
    sys.exit(99)
argparse.ArgumentParser.parse_args = read_only
"""


def scripts_one_after_another(cases, cwd, before=""):
    """{(NAME, *ARGUMENTS): CompletedProcess} of `python benchmarks/NAME ARGUMENTS` for each
    (NAME, ARGUMENTS) of `cases`, run in `cwd` one after another in one process (after the
    code `before`): each process of its own paid the imports again (numpy, tinyformer), a
    quarter of a second a case."""
    cases = [(name, list(arguments)) for name, arguments in cases]
    done = subprocess.run([sys.executable, "-c", before + SCRIPTS_ONE_AFTER_ANOTHER, str(ROOT)],
                          input=json.dumps(cases), capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return {(name, *arguments): subprocess.CompletedProcess([name, *arguments], *result)
            for (name, arguments), result in zip(cases, json.loads(done.stdout))}


def neighbours_of(parent):
    """The busy neighbours that the process `parent` started and that still run."""
    return running_children(parent, suite.NEIGHBOUR)


def test_bench_runs_a_benchmark_and_prints_the_summary(capfd, monkeypatch):
    # The memory benchmark's quick arguments as the suite has them, but two steps, not 30: the
    # same run end to end (either engine's child, the figures read back), in half the time.
    script_name, arguments, quick = suite.BENCHMARKS["memory"]
    steps = quick.index("--steps") + 1
    monkeypatch.setitem(suite.BENCHMARKS, "memory",
                        (script_name, arguments, [*quick[:steps], "2", *quick[steps + 1:]]))
    monkeypatch.setattr(cli, "bench_suite", lambda: suite)
    result = CliRunner().invoke(cli.main, ["bench", "--quick", "--only", "memory"])
    out = result.output + capfd.readouterr().out    # the suite, and the scripts it starts
    assert result.exit_code == 0, out
    assert "=== memory (one-thread): python benchmarks/memory.py" in out
    assert "median of 1 run each" in out                   # not "1 runs": --runs 1, quick
    summary = out.split("=== summary, one-thread: both engines on one thread")[1]
    assert "peak memory of training, MiB" in summary and "<= 1" in summary


def test_bench_without_the_repository_says_what_to_do(monkeypatch):
    monkeypatch.setattr(cli, "BENCH_SUITE", "/nonexistent/benchmarks/suite.py")
    result = CliRunner().invoke(cli.main, ["bench"])
    assert result.exit_code == 2
    assert "clone the repository" in result.stderr and "Traceback" not in result.output


def test_an_unknown_benchmark_is_a_usage_error():
    result = CliRunner().invoke(cli.main, ["bench", "--only", "nonsense"])
    assert result.exit_code == 2 and "nonsense" in result.stderr


def test_the_whole_run_without_pytorch_is_refused_in_one_line_saying_what_to_install(
        monkeypatch, tmp_path):
    # It compares the two engines: without PyTorch it used to be left out, and bench said
    # nothing was wrong (exit status 0, no table).
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "torch" else find_spec(name, *rest))
    text = tmp_path / "tinyshakespeare.txt"
    text.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    result = CliRunner().invoke(cli.main, ["bench", "--only", "whole_run", "--corpus", text])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["Error: whole_run trains the recipe in both engines "
                                          "to compare them, and PyTorch is not installed: pip "
                                          "install torch"]
    assert result.stdout == ""


def test_a_pytorch_that_does_not_import_is_refused_in_one_line_before_any_runs(monkeypatch,
                                                                                tmp_path):
    # Installed but broken (a library of its missing): found, it was taken to be there, and
    # each benchmark that compares with it ended in a traceback, our own figures lost with it.
    (tmp_path / "torch.py").write_text(
        'raise ImportError("libtorch_cpu.so: cannot open shared object file")\n')
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]))   # for its processes

    def no_benchmark(command, env):
        raise AssertionError(f"a benchmark ran: {command}")
    monkeypatch.setattr(suite, "run_with_all_it_starts", no_benchmark)
    monkeypatch.setattr(cli, "bench_suite", lambda: suite)
    suite.torch_import_error.cache_clear()          # tried afresh, with the broken one first
    try:
        result = CliRunner().invoke(cli.main, ["bench", "--quick", "--only", "train_step"])
        suite.check_choices(["tokenizer"], [], None)    # it does not use PyTorch: not refused
    finally:
        suite.torch_import_error.cache_clear()
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: train_step compares our engine with PyTorch, which is installed but does not "
        "import (ImportError: libtorch_cpu.so: cannot open shared object file): reinstall it "
        "(pip install --force-reinstall torch)"]
    assert result.stdout == ""


def test_every_benchmark_that_times_pytorch_is_one_that_the_suite_says_compares_with_it():
    # COMPARES decides where a PyTorch that does not import is refused before any runs.
    for name, (script_name, *_) in suite.BENCHMARKS.items():
        source = (ROOT / "benchmarks" / script_name).read_text()
        assert ("import torch" in source) == (name in suite.COMPARES), name


@pytest.mark.parametrize("threads, cases", [(4, []), (None, ["loaded"])])
def test_threads_or_a_case_where_no_benchmark_to_run_depends_on_them_is_refused(threads, cases):
    # ops and the tokenizer run once, on one thread: --threads 4 or --case loaded was ignored
    given = "--threads" if threads else "--case"
    with pytest.raises(ValueError, match=f"^{given} applies to generation, gpt2, memory, "
                                         f"train_step, whole_run only"):
        suite.check_choices(["ops", "tokenizer"], cases, threads)
    suite.check_choices(["ops", "memory"], cases, threads)             # memory depends on them


def test_a_corpus_that_no_benchmark_to_run_reads_is_refused():
    # Given and ignored without a word, it would look used.
    for only, quick in ((["train_step", "ops"], False), (["blocks"], True)):  # quick: built-in
        with pytest.raises(ValueError, match=r"^--corpus is read by blocks, tokenizer, "
                           r"whole_run only \(blocks not with --quick\), and none of them is to "
                           r"run: drop --corpus"):
            suite.check_choices(only, [], None, quick=quick, corpus="tinyshakespeare.txt")
    with pytest.raises(ValueError, match="tokenizer needs the tinyshakespeare text"):
        suite.check_choices(["train_step", "tokenizer"], [], None, corpus="no-such-file.txt")

@pytest.mark.parametrize("args, said", [
    (["--case", "one-thread", "--case", "busy"], "no case is called 'busy'; choose from "
     "one-thread, two-threads, loaded"),
    (["--case", "loaded", "--threads", "2"], "give one or the other")])
def test_an_unknown_case_or_a_case_with_threads_is_a_one_line_usage_error(args, said):
    result = CliRunner().invoke(cli.main, ["bench", *args])
    line, = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and line.startswith("Error: ") and said in line


def unwritable_and_no_benchmark_runs(monkeypatch, path):
    """`path` cannot be written to (os.access says so), and starting any benchmark's process
    fails the test: what a refusal before any runs must hold to."""
    path, access = str(path), os.access
    monkeypatch.setattr(os, "access", lambda where, mode, **rest:
                        False if os.path.abspath(where) == path and mode & os.W_OK
                        else access(where, mode, **rest))

    def no_benchmark(*args, **kwargs):
        raise AssertionError(f"a benchmark ran: {args[0]}")
    monkeypatch.setattr(subprocess, "Popen", no_benchmark)


def test_saving_where_the_results_cannot_be_written_is_refused_before_any_runs(monkeypatch):
    # Each benchmark ran its minutes, then failed to write its JSON with a traceback.
    unwritable_and_no_benchmark_runs(monkeypatch, ROOT / "benchmarks" / "results")
    result = CliRunner().invoke(cli.main, ["bench", "--quick", "--only", "ops", "--save"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["Error: --save writes to benchmarks/results/, which "
                                          "you cannot write to: drop --save, or run from a "
                                          "clone of the repository of your own"]
    assert result.stdout == ""


@pytest.mark.parametrize("args, name", [
    (["--only", "tokenizer"], "tokenizer_speed.json"),
    (["--only", "train_step", "--case", "one-thread", "--case", "loaded"],
     "train_step-loaded.json")])
def test_saving_over_a_read_only_result_is_refused_before_any_runs(monkeypatch, args, name):
    # The folder could be written, the file not: the benchmark ran its minutes, then failed to
    # write its JSON with a traceback, its figures lost.
    unwritable_and_no_benchmark_runs(monkeypatch, ROOT / "benchmarks" / "results" / name)
    result = CliRunner().invoke(cli.main, ["bench", "--quick", *args, "--save"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"Error: --save replaces benchmarks/results/{name}, "
                                          f"which you cannot write to: make it writable (chmod "
                                          f"u+w), or drop --save"]
    assert result.stdout == ""


@pytest.fixture
def suite_arguments(tmp_path, monkeypatch):
    """The bench command against a suite whose main only writes down the arguments it got (the
    rest is the real suite's): returns a function from bench's options to the suite's parsed
    arguments."""
    fake = tmp_path / "suite.py"
    got = tmp_path / "argv.json"
    real = str(ROOT / "benchmarks" / "suite.py")
    fake.write_text(
        "import importlib.util, json\n"
        f"spec = importlib.util.spec_from_file_location('real', {real!r})\n"
        "real = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(real)\n"
        "BENCHMARKS, check_choices = real.BENCHMARKS, real.check_choices\n"
        "def main(argv):\n"
        f"    open({str(got)!r}, 'w').write(json.dumps(argv))\n"
        "    return 0\n")
    monkeypatch.setattr(cli, "BENCH_SUITE", str(fake))

    def arguments(*options):
        result = CliRunner().invoke(cli.main, ["bench", *options])
        assert result.exit_code == 0, result.output
        return suite.parse_args(json.loads(got.read_text()))
    return arguments


def test_bench_hands_its_cases_to_the_suite(suite_arguments):
    def cases(args):
        return [(name, case.threads, case.neighbour)
                for name, case in suite.cases_to_run(args.cases, args.threads)]
    args = suite_arguments("--case", "loaded", "--case", "one-thread", "--quick")
    assert cases(args) == [("loaded", "auto", True), ("one-thread", 1, False)] and args.quick
    assert cases(suite_arguments()) == [("one-thread", 1, False)]              # the default
    assert cases(suite_arguments("--case", "two-threads")) == [("two-threads", 2, False)]
    assert cases(suite_arguments("--threads", "2")) == [("two-threads", 2, False)]
    assert cases(suite_arguments("--threads", "3", "--only", "train_step")) == [
        ("3-threads", 3, False)]
    assert suite_arguments("--save").save and not suite_arguments().save


def test_the_suite_runs_every_case_and_benchmark_given_as_the_command_takes_them():
    # `--case one-thread --case loaded`, as tinyformer bench takes it, ran the loaded case alone.
    args = suite.parse_args(["--case", "one-thread", "--case", "loaded", "two-threads",
                             "--only", "ops", "--only", "memory"])
    assert args.cases == ["one-thread", "loaded", "two-threads"]
    assert args.only == ["ops", "memory"]


def test_the_help_names_every_case():
    result = CliRunner().invoke(cli.main, ["bench", "--help"])
    assert all(name in result.output for name in suite.CASES)


def test_the_help_says_that_save_replaces_the_repositorys_own_figures(capsys):
    # It said "write ... to benchmarks/results/", and a run on another machine replaced the
    # figures that BENCHMARKS.md cites without a word that it would.
    said = CliRunner().invoke(cli.main, ["bench", "--help"]).output
    with pytest.raises(SystemExit):
        suite.parse_args(["--help"])
    for help_text in (said, capsys.readouterr().out):
        assert "replacing the file of its name there: the repository's own figures" in " ".join(
            help_text.split())


def documented_bench_commands():
    """(program, arguments) of every `tinyformer bench` and `python benchmarks/suite.py` that
    BENCHMARKS.md shows, in its bash blocks and its inline code."""
    text = (ROOT / "BENCHMARKS.md").read_text().replace("\\\n", " ")
    spans = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S)
             for line in block.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    return [(found[1], shlex.split(found[2])) for span in spans
            if (found := re.match(r"(tinyformer bench|python benchmarks/suite\.py)\b(.*)",
                                  span.split("#")[0].strip()))]


def test_every_bench_command_of_benchmarks_md_is_one_the_programs_take(monkeypatch):
    # A reader checking the figures runs them as written: an option renamed or a benchmark or
    # case unknown would stop them at the first step. (The text is taken to be there.)
    monkeypatch.setattr(suite.shakespeare_text, "missing", lambda path: None)
    monkeypatch.setattr(suite.shakespeare_text, "unusable", lambda path, **kinds: None)
    monkeypatch.setattr(suite, "have_torch", lambda: True)
    commands = documented_bench_commands()
    assert len(commands) > 20
    for program, arguments in commands:
        if program == "tinyformer bench":
            p = cli.bench.make_context("bench", list(arguments)).params
            only, cases, threads, whole_run, quick, corpus = (
                p["only"], p["cases"], p["threads"], p["whole_run"], p["quick"], p["corpus"])
        else:
            a = suite.parse_args(arguments)
            only, cases, threads, whole_run, quick, corpus = (
                a.only, a.cases, a.threads, a.whole_run, a.quick, a.corpus)
        suite.check_choices(only, cases, threads, whole_run, quick, corpus)

def test_a_fixed_thread_count_is_judged_by_the_targets_of_one_or_of_several_threads():
    assert suite.fixed_threads(1) == ("one-thread", suite.CASES["one-thread"])
    name, case = suite.fixed_threads(4)
    assert (name, case.threads, case.neighbour, case.step_target) == ("4-threads", 4, False, 1.0)


@pytest.fixture
def fake_benchmark(tmp_path, monkeypatch):
    """A benchmark that measures nothing: it writes down the threads it was given, the thread
    variables of its environment, the busy neighbours beside it (its parent's, with their
    state) and what ran it (about_this_run's "run by"), then exits with $FAKE_EXIT. Returns the
    records, one a run, as a function."""
    log = tmp_path / "runs.jsonl"
    script = tmp_path / "fake.py"
    script.write_text(
        "import json, os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from processes import process_state, running, running_children, runs_code\n"
        "args = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
        "record = {'threads': args['--threads'],\n"
        f"          'environment': [os.environ.get(v) for v in {THREAD_VARIABLES!r}],\n"
        "          'neighbours': [(pid, process_state(pid)) for pid in\n"
        f"                         running_children(os.getppid(), {suite.NEIGHBOUR!r})],\n"
        f"          'run by': os.environ.get({alternate.RUN_BY!r})}}\n"
        f"open({str(log)!r}, 'a').write(json.dumps(record) + '\\n')\n"
        "json.dump(record, open(args['--json'], 'w'))\n"
        "sys.exit(int(os.environ.get('FAKE_EXIT', '0')))\n")
    monkeypatch.setitem(suite.BENCHMARKS, "fake", (str(script), [], []))
    monkeypatch.setattr(suite, "TAKES_THREADS", suite.TAKES_THREADS | {"fake"})
    monkeypatch.setitem(suite.SUMMARY_ROWS, "fake", lambda r, case: [
        ("fake figure", 1.0, 1.0, 1.0, "", None)])
    for name in THREAD_VARIABLES:        # the caller's own, which the loaded case must drop
        monkeypatch.setenv(name, "3")
    return lambda: [json.loads(line) for line in log.read_text().splitlines()]


def test_each_case_runs_at_its_threads_and_only_the_loaded_one_beside_a_busy_neighbour(
        fake_benchmark, capsys):
    assert suite.main(["--only", "fake", "--case", "one-thread", "loaded"]) == 0
    quiet, loaded = fake_benchmark()
    assert quiet == {"threads": "1", "environment": ["1"] * 3, "neighbours": [],
                     "run by": quiet["run by"]}
    assert loaded["threads"] == "auto" and loaded["environment"] == [None] * 3
    (pid, state), = loaded["neighbours"]
    assert state == "R"                                # spinning, not sleeping
    assert process_state(pid) is None and neighbours_of(os.getpid()) == []
    out = capsys.readouterr().out
    assert "=== summary, one-thread: both engines on one thread" in out
    assert "=== summary, loaded: beside a process that keeps one core busy" in out


def test_more_threads_than_cores_are_run_as_asked_but_said_to_slow_both_engines(
        fake_benchmark, monkeypatch, capsys):
    # On two cores, --threads 64 ran on for many minutes with no word why.
    import tinyformer.resources
    monkeypatch.setattr(tinyformer.resources, "usable_cores", lambda: 2)
    for threads, warned in (("2", False), ("64", True)):
        assert suite.main(["--only", "fake", "--threads", threads]) == 0
        out = capsys.readouterr().out
        assert ("this machine lets the benchmarks use 2 cores, and threads beyond the cores "
                "slow both engines down" in out) is warned
    assert [run["threads"] for run in fake_benchmark()] == ["2", "64"]

def test_the_benchmarks_run_once_are_headed_once_as_their_table_is(monkeypatch, capsys):
    # They were headed "(one-thread)", a case they are not, beside a table headed "once".
    monkeypatch.setattr(suite, "run_with_all_it_starts", lambda command, env: 0)  # no JSON
    assert suite.main(["--only", "ops"]) == 1
    out = capsys.readouterr().out
    assert "=== ops (once): python benchmarks/engine.py" in out
    assert "=== summary, once: the rest, measured once" in out


def test_the_neighbour_is_stopped_when_a_benchmark_fails(fake_benchmark, monkeypatch):
    monkeypatch.setenv("FAKE_EXIT", "1")
    assert suite.main(["--only", "fake", "--case", "loaded"]) == 1
    (pid, _), = fake_benchmark()[0]["neighbours"]
    assert process_state(pid) is None and neighbours_of(os.getpid()) == []


def test_the_neighbour_is_stopped_when_a_case_is_interrupted(monkeypatch):
    seen = []

    def interrupted(*args):                   # Ctrl-C in the middle of the case's benchmark
        seen.extend(neighbours_of(os.getpid()))
        raise KeyboardInterrupt
    monkeypatch.setattr(suite, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        suite.run_case("loaded", suite.CASES["loaded"], ["train_step"], True, "unused")
    assert len(seen) == 1 and process_state(seen[0]) is None


def test_a_neighbour_whose_suite_was_killed_stops_by_itself():
    benchmarks = str(ROOT / "benchmarks")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time; sys.path.insert(0, {benchmarks!r})\n"
         "import suite\n"
         "with suite.busy_neighbour() as pid:\n"
         "    print(pid, flush=True)\n"
         "    time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    pid = int(holder.stdout.readline())
    try:
        assert process_state(pid) == "R"
        holder.kill()                          # no finally runs: the neighbour is on its own
        holder.wait()
        holder.stdout.close()
        deadline = time.monotonic() + 10
        while process_state(pid) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process_state(pid) in (None, "Z")
    finally:                                   # never leave it spinning, even when this fails
        if runs_code(pid, suite.NEIGHBOUR):
            os.kill(pid, signal.SIGKILL)


def test_the_summary_judges_each_target_in_its_own_direction(capsys):
    results = {
        "train_step": {"ratio": 0.6,
                       "ours": {"median_ms": 30.0, "tokens_per_s": 25600.0,
                                "share_of_numpy_gemm": 0.5},
                       "torch": {"median_ms": 50.0, "tokens_per_s": 15360.0,
                                 "share_of_numpy_gemm": 0.3}},
        "generation": {"results": [{"batch": 1, "ours_tok_s": 900.0, "torch_tok_s": 1000.0,
                                    "ratio": 0.9}]},
        "memory": {"ours": {"peak": 100.0}, "torch": {"peak": 300.0}, "ratio": 1 / 3},
        "ops": {"rows": [{"overhead ratio": 0.8, "f+b ratio": 1.2},
                         {"overhead ratio": 1.4, "f+b ratio": 1.1},
                         {"overhead ratio": 0.9, "f+b ratio": None}]},
        "tokenizer": None,
        "gpt2": {"results": [{"batch": 1, "ours_tok_s": 39.0, "torch_tok_s": 24.0,
                              "ratio": 39 / 24}]},
    }
    suite.summary(results, "one-thread", suite.CASES["one-thread"])
    out = capsys.readouterr().out.splitlines()
    lines = {line.strip().split("  ")[0]: line for line in out}
    assert lines["training step, ms"].endswith("met")                # 0.6 <= 0.90
    assert lines["generation, batch 1, tok/s"].endswith("not yet")   # 0.9 tok/s ratio < 1
    assert lines["peak memory of training, MiB"].endswith("met")
    assert lines["per-op overhead (median ratio)"].endswith("met")   # median 0.9
    assert "1.15" in lines["forward+backward (median ratio)"]      # median of 1.2 and 1.1
    assert "(failed)" in lines["tokenizer"]
    assert lines["GPT-2 small generation, batch 1, tok/s"].endswith("met")   # with its unit


def test_a_ratio_that_rounds_to_its_target_shows_the_decimal_that_decides(capsys):
    # 0.904 to two decimals reads "0.90", beside "<= 0.90" and "not yet"; 0.896 reads "0.90"
    # and is met. Either way the third decimal is the verdict's, and is shown.
    def shown(ratio):
        step = {"ratio": ratio, "ours": {"median_ms": 1.0, "tokens_per_s": 1.0,
                                         "share_of_numpy_gemm": 0.5},
                "torch": {"median_ms": 1.0, "tokens_per_s": 1.0, "share_of_numpy_gemm": 0.5}}
        suite.summary({"train_step": step}, "one-thread", suite.CASES["one-thread"])
        row = next(line for line in capsys.readouterr().out.splitlines()
                   if line.startswith("training step"))
        return " ".join(row.split()[5:])      # after "training step, ms", ours and torch's
    assert shown(0.904) == "0.904 <= 0.90 not yet"
    assert shown(0.896) == "0.896 <= 0.90 met"
    assert shown(0.9004) == "0.9004 <= 0.90 not yet"          # three decimals tie too
    assert shown(0.9) == "0.90 <= 0.90 met"                   # the target itself
    assert shown(0.85) == "0.85 <= 0.90 met"                   # far from it: two decimals


def test_without_pytorchs_figures_no_target_is_judged(capsys):
    # PyTorch not installed (or its run failed): no ratio, and so no verdict, not "not yet".
    results = {
        "train_step": {"ours": {"median_ms": 30.0, "tokens_per_s": 25600.0,
                                "share_of_numpy_gemm": 0.5}, "torch": None, "ratio": None},
        "generation": {"results": [{"batch": 1, "ours_tok_s": 900.0}]},
        "memory": {"ours": {"peak": 100.0}},
        "gpt2": {"results": [{"batch": 1, "ours_tok_s": 39.0}]},
    }
    suite.summary(results, "one-thread", suite.CASES["one-thread"])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith(("training step", "generation", "peak", "GPT-2"))]
    assert len(rows) == 4
    for row in rows:
        assert row.split()[-1] in ("0.90", "1") and not row.endswith(("met", "not yet")), row

def test_without_pytorch_the_per_op_overhead_shows_our_own_figures(capsys):
    # No ratio to show, and the ops benchmark's rows were left out: `--only ops` ended with
    # an empty table. engine.py's rows without PyTorch, in microseconds a call:
    rows = [{"op": op, "numpy": 1.0, "ours": 1.0 + overhead, "ours overhead": overhead,
             "ours f+b": both} for op, overhead, both in
            (("add", 2.0, 70.0), ("mul", 3.0, 80.0), ("exp", 5.0, 90.0))]
    suite.summary({"ops": {"size": 8, "torch": None, "rows": rows}}, "once", suite.ONCE)
    lines = capsys.readouterr().out.splitlines()[3:]             # after the title and header
    # ours, torch, ratio, target, and no verdict: the medians of 2, 3, 5 and of 70, 80, 90
    assert [line.split()[-5:] for line in lines] == [["3", "-", "-", "<=", "1"],
                                                     ["80.0", "-", "-", "<=", "1"]]
    assert lines[0].startswith("per-op overhead, µs a call (median)")
    assert lines[1].startswith("  forward+backward, µs a call (median)")


def engine_script():
    """benchmarks/engine.py as a module, to call its table's printing on rows of our own."""
    spec = importlib.util.spec_from_file_location("engine", ROOT / "benchmarks" / "engine.py")
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)
    return engine


def test_the_ops_table_without_pytorch_shows_our_forward_and_backward(capsys):
    # The suite's summary gave the median of an f+b column that the table left out.
    rows = [{"op": op, "numpy": 1.0, "ours": 1.0 + overhead, "ours overhead": overhead,
             "ours f+b": both} for op, overhead, both in (("add", 2.0, 70.0), ("exp", 5.0, 90.0))]
    engine_script().print_table(rows)
    header, _, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["op", "numpy", "ours", "+ovh", "ours", "f+b"]
    assert [line.split()[-1] for line in lines] == ["70.00", "90.00"]


def test_the_ops_table_whose_every_overhead_ratio_is_na_says_its_median_is_too(capsys):
    # Every op faster than numpy's composite in one engine: statistics.StatisticsError.
    rows = [{"op": op, "numpy": 5.0, "ours": 4.0, "ours overhead": -1.0, "ours f+b": 20.0,
             "torch": 6.0, "torch overhead": 1.0, "overhead ratio": None, "torch f+b": 10.0,
             "f+b ratio": 2.0} for op in ("softmax", "layer_norm")]
    engine_script().print_table(rows)
    _, _, *rows_shown, _, summary = capsys.readouterr().out.splitlines()
    assert [line.split()[6] for line in rows_shown] == ["n/a", "n/a"]
    assert summary == ("median overhead ratio (ours/torch): n/a    median forward+backward "
                       "ratio: 2.00")


def test_the_training_step_says_its_blocks_lowest_and_highest_ratio(capsys):
    step = {"ratio": 1.1, "ours": {"median_ms": 55.0, "tokens_per_s": 1.0,
                                   "share_of_numpy_gemm": 0.5,
                                   "block_medians_ms": [60.0, 45.0, 55.0]},
            "torch": {"median_ms": 50.0, "tokens_per_s": 1.0, "share_of_numpy_gemm": 0.5,
                      "block_medians_ms": [40.0, 50.0, 50.0]}}
    suite.summary({"train_step": step}, "one-thread", suite.CASES["one-thread"])
    lines = {line.strip().split("  ")[0]: line.split()
             for line in capsys.readouterr().out.splitlines()}
    assert lines["its blocks' ratios, lowest"][-1] == "0.90"      # 45 / 50
    assert lines["its blocks' ratios, highest"][-1] == "1.50"     # 60 / 40, not 60 / 50


def test_each_case_judges_the_training_step_and_the_whole_run_by_its_own_targets(capsys):
    def verdicts(case_name, step_ratio, wall_ratio, final_diff):
        step = {"ratio": step_ratio, "ours": {"median_ms": 50.0, "tokens_per_s": 1.0,
                                               "share_of_numpy_gemm": 0.5},
                "torch": {"median_ms": 50.0, "tokens_per_s": 1.0, "share_of_numpy_gemm": 0.5}}
        side = {"wall_s": 100.0, "final_val_loss": 1.887}
        whole = {"iters": 200, "results": [{"ours": side, "torch": side, "wall_ratio": wall_ratio,
                                             "final_diff": final_diff}]}
        suite.summary({"train_step": step, "whole_run": whole}, case_name,
                      suite.CASES[case_name])
        lines = capsys.readouterr().out.splitlines()[2:]
        return [line.split("  ")[-1].strip() if "  " in line else "" for line in lines
                if line.startswith(("training step", "whole run", "  final"))]
    # training step: <= 0.90 on one thread, <= 1.00 on two, <= 0.80 beside a busy core
    assert verdicts("one-thread", 0.85, 2.0, 0.0)[0] == "met"
    assert verdicts("loaded", 0.85, 2.0, 0.0)[0] == "not yet"
    assert verdicts("loaded", 0.79, 2.0, 0.0)[0] == "met"
    assert verdicts("one-thread", 0.95, 2.0, 0.0)[0] == "not yet"
    assert verdicts("two-threads", 0.95, 2.0, 0.0)[0] == "met"
    assert verdicts("two-threads", 1.05, 2.0, 0.0)[0] == "not yet"
    # the whole run's time has a target on two threads only; its loss, within 1e-4, in all
    assert verdicts("two-threads", 0.5, 0.99, 5e-5)[1:] == ["met", "met"]
    assert verdicts("two-threads", 0.5, 1.01, -2e-4)[1:] == ["not yet", "not yet"]
    assert verdicts("one-thread", 0.5, 1.5, 0.0)[1:] == ["", "met"]


def test_the_whole_run_says_how_long_its_evaluations_took(capsys):
    ours, torch = ({"wall_s": wall, "final_val_loss": 1.887, "eval_s": evals}
                   for wall, evals in ((110.0, 12.0), (100.0, 8.0)))
    whole = {"iters": 2000, "results": [{"ours": ours, "torch": torch, "wall_ratio": 1.1,
                                          "final_diff": 0.0}]}
    suite.summary({"whole_run": whole}, "two-threads", suite.CASES["two-threads"])
    row, = [line for line in capsys.readouterr().out.splitlines() if "evaluations" in line]
    assert row.split()[-3:] == ["12.0", "8", "1.50"]        # ours, torch, ratio


def test_the_command_names_the_suites_benchmarks_marking_those_not_run_by_default():
    result = CliRunner().invoke(cli.main, ["bench", "--list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == list(suite.BENCHMARKS)
    marked = [line.split()[0] for line in lines if "on request" in line]
    default = suite.selected([], whole_run=False)
    assert marked and sorted(marked) == sorted(set(suite.BENCHMARKS) - set(default))


def test_the_slow_benchmarks_run_only_when_asked_for():
    default = suite.selected([], whole_run=False)
    assert "gpt2" not in default and "whole_run" not in default and "train_step" in default
    assert suite.selected([], whole_run=True) == default + ["whole_run"]
    assert suite.selected(["gpt2"], whole_run=False) == ["gpt2"]
    # --whole-run is "also the whole run", beside --only as beside nothing (it was ignored)
    assert suite.selected(["ops"], whole_run=True) == ["ops", "whole_run"]
    assert suite.selected(["whole_run"], whole_run=True) == ["whole_run"]
    # named twice, run once (as a case named twice is), not for as long again
    assert suite.selected(["ops", "memory", "ops"], whole_run=False) == ["ops", "memory"]


def test_alternate_runs_each_engine_alone_in_turns(tmp_path, monkeypatch):
    """Each child is its own process with the thread count in its environment, or none of the
    thread variables for "auto" (not even those of the caller); the engines take turns block by
    block; a failing child raises with its stderr."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")          # the caller's own: auto must drop it
    order = tmp_path / "order.txt"
    script = tmp_path / "child.py"
    script.write_text(
        "import argparse, json, os\n"
        "p = argparse.ArgumentParser()\n"
        "for name in ('--engine', '--json', '--threads', '--order'): p.add_argument(name)\n"
        "a = p.parse_args()\n"
        "if a.engine == 'broken': raise SystemExit('the child says why')\n"
        "open(a.order, 'a').write(a.engine + ' ')\n"
        f"variables = {THREAD_VARIABLES!r}\n"
        "json.dump({'pid': os.getpid(), 'threads': a.threads,\n"
        "           'environment': [os.environ.get(name) for name in variables]},\n"
        "          open(a.json, 'w'))\n")
    runs = alternate.alternate(str(script), ["ours", "torch"], blocks=2, threads=2,
                               arguments=["--order", order])
    assert order.read_text().split() == ["ours", "torch", "ours", "torch"]
    assert [run["environment"] for run in runs["ours"] + runs["torch"]] == [["2"] * 3] * 4
    assert runs["ours"][0]["threads"] == "2"
    assert len({run["pid"] for run in runs["ours"] + runs["torch"]}) == 4
    runs = alternate.alternate(str(script), ["ours", "torch"], blocks=1, threads="auto",
                               arguments=["--order", order])
    for run in runs["ours"] + runs["torch"]:
        assert run["threads"] == "auto" and run["environment"] == [None] * 3
    with pytest.raises(RuntimeError, match="the child says why"):
        alternate.alternate(str(script), ["broken"], blocks=1, threads=1)


def test_a_scripts_threads_are_a_count_or_auto():
    assert alternate.thread_count("2") == 2 and alternate.thread_count("auto") == "auto"
    for bad in ("0", "-1", "two", "1.5", ""):
        with pytest.raises(Exception, match="whole number of threads"):
            alternate.thread_count(bad)


def test_a_step_scripts_counts_are_whole_numbers_from_their_least(capsys):
    options = alternate.step_options("a step script", ["ours"], blocks=3)
    args = options.parse_args(["--blocks", "1", "--reps", "2", "--warmup", "0"])
    assert (args.blocks, args.reps, args.warmup) == (1, 2, 0)
    for option, bad in [("--blocks", "0"), ("--reps", "0"), ("--warmup", "-1"),
                        ("--reps", "two"), ("--blocks", "1.5")]:
        with pytest.raises(SystemExit) as exit:
            options.parse_args([option, bad])
        assert exit.value.code == 2
        assert f"argument {option}: takes a whole number" in capsys.readouterr().err


def test_auto_leaves_pytorchs_threads_at_its_default():
    calls = []

    class Torch:                    # stands in for the module: records what it is asked
        def set_num_threads(self, n):
            calls.append(n)
    alternate.set_torch_threads(Torch(), "auto")
    assert calls == []
    alternate.set_torch_threads(Torch(), 2)
    assert calls == [2]


@pytest.mark.parametrize("name, arguments, key", [
    ("train_step.py", ["--tiny", "--reps", "1", "--warmup", "0"], "ms"),
    ("generation.py", ["--batch-sizes", "1", "--prompt-len", "1", "--new-tokens", "1",
                       "--reps", "1"], "results")])
def test_a_child_mode_run_by_hand_prints_its_figures(name, arguments, key):
    # BENCHMARKS times one engine alone this way; without --json it timed every step, then
    # ended in a traceback (open(None)) instead of giving its figures.
    done = script(name, "--engine", "ours", *arguments)
    assert done.returncode == 0, done.stderr
    assert key in json.loads(done.stdout.splitlines()[-1])


def test_the_envelope_times_the_step_and_its_variants_each_as_named(tmp_path):
    """A real, tiny run of benchmarks/envelope.py (--tiny: the recipe's graph, its arrays
    tiny): every variant timed; one part takes the batch whole, one graph takes it whole by
    halves, and the numpy forms compute what the compiled loops do, so all three train the same
    model (their losses agree with ours to rounding); free kernels compute nothing for layer
    norm, GELU and softmax (their losses are not the model's). CI has the C compiler that builds
    the loops."""
    out = tmp_path / "envelope.json"
    script("envelope.py", "--tiny", "--blocks", "1", "--reps", "2", "--warmup", "0", "--json",
           str(out), check=True)
    figures = json.loads(out.read_text())
    assert figures["tiny"]
    variants = ["ours", "one-part", "free-kernels", "one-part-free-kernels", "numpy-forms",
                "one-part-numpy-forms", "one-graph"]
    assert all(figures["median_ms"][name] > 0 for name in variants)
    assert [figures["micro_batches"][name] for name in variants] == [2, 1, 2, 1, 2, 1, 1]
    ours = {"layer_norm": "tinyautograd.functional", "gelu": "tinyautograd.ops",
            "attention": "tinyformer.attention", "adam_update": "tinyautograd.optim",
            "linear": "tinyautograd.ops", "loops": True}
    free = dict(ours, layer_norm="__main__", gelu="__main__", attention="__main__")
    numpy_forms = dict(ours, loops=False)
    by_halves = dict(ours, linear="__main__")
    assert [figures["kernels"][name] for name in variants] == [ours, ours, free, free,
                                                               numpy_forms, numpy_forms, by_halves]
    # (a loss that is not a finite number is written null: NaN here again)
    losses = {name: np.array(figures["losses"][name], dtype=float) for name in figures["losses"]}
    for name in ("one-part", "numpy-forms", "one-part-numpy-forms", "one-graph"):
        np.testing.assert_allclose(losses[name], losses["ours"], rtol=1e-5)
    for name in ("free-kernels", "one-part-free-kernels"):
        assert not np.allclose(losses[name], losses["ours"], rtol=1e-3)   # NaN counts as apart
    if "torch" in losses:
        np.testing.assert_allclose(losses["torch"], losses["ours"], rtol=1e-5)


def test_train_step_times_each_engine_in_its_own_process_under_auto_as_a_user_gets_it(tmp_path):
    """A real run with --threads auto, started with the thread variables set to 1 (as a shell
    might have them): the figures the suite reads are there; PyTorch runs on its default count,
    that of a process whose environment has none of them, and ours chose a count by timing its
    steps, after its first round of trials (the warm-up, lengthened to hold it). With --tiny,
    which reaches each engine's process: both run the recipe's graph at d_model 8 and take the
    same steps from the same weights (their losses agree to rounding), which times their fixed
    cost per step. (One run for all of it: each costs two starts of PyTorch, some 6 s; the
    recipe's own sizes, without --tiny, are the next test's. PyTorch's default count is asked
    of a process started beside the run: its import, a second or more, overlaps the run's.)"""
    clean = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    probe = subprocess.Popen([sys.executable, "-c",
                              "import torch; print(torch.get_num_threads())"],
                             env=clean, stdout=subprocess.PIPE, text=True)
    out = tmp_path / "train_step.json"
    with probe:
        script("train_step.py", "--threads", "auto", "--tiny", "--blocks", "1", "--reps", "2",
               "--warmup", "0", "--json", str(out), check=True,
               env=dict(clean, **dict.fromkeys(THREAD_VARIABLES, "1")))
        torch_default_threads = probe.communicate()[0]
    figures = json.loads(out.read_text())
    candidates = {1, len(os.sched_getaffinity(0))}      # AdaptiveThreads': one, and every core
    assert figures["threads"] == "auto" and figures["warmup"] == 4 * len(candidates)
    assert figures["ours"]["median_ms"] > 0 and "own process" in figures["method"]
    assert (f"1 alternating block of {figures['warmup']} untimed + 2 timed steps;"
            in figures["method"])
    assert figures["ours"]["threads"] in candidates
    assert figures["tiny"] and figures["ours"]["d_model"] == 8
    if figures["torch"] is not None:
        assert figures["torch"]["threads"] == int(torch_default_threads)
        assert figures["torch"]["d_model"] == 8
        assert figures["max_loss_diff"] < 1e-4 and figures["ratio"] > 0
        # PyTorch's matmul on the step's shapes, beside numpy's: are the products level here?
        assert figures["torch_gemm_ms"] > 0 and figures["numpy_gemm_ms"] > 0


def test_without_tiny_the_step_is_the_recipes_and_its_flops_are_its_products():
    """Without --tiny: an engine's process runs the recipe's sizes (d_model 128), and the
    step's FLOPs, counted on the model's graph, are those of the matmul shapes that numpy's
    GEMM is timed on (step_flops checks that itself)."""
    done = script("train_step.py", "--engine", "ours", "--reps", "1", "--warmup", "0")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["d_model"] == 128
    flops = subprocess.run([sys.executable, "-c",
                            "import train_step; print(train_step.step_flops())"],
                           cwd=ROOT / "benchmarks", capture_output=True, text=True)
    assert flops.returncode == 0, flops.stderr
    assert int(flops.stdout) > 0


def test_the_blocks_benchmark_trains_each_variant_alike_and_reports_it(tmp_path, capsys):
    """Two variants of the built-in recipe, two steps each (about five seconds: the one run of
    the benchmark end to end); the records and the suite's summary rows."""
    out = tmp_path / "blocks.json"
    done = script("blocks.py", "--recipes", "builtin", "--variants", "baseline", "all", "--iters",
                  "2", "--eval-iters", "1", "--jobs", "2", "--json", str(out), check=True)
    runs = json.loads(out.read_text())["runs"]
    assert [(r["recipe"], r["variant"], r["seed"], r["iters"]) for r in runs] == [
        ("builtin", "baseline", 0, 2), ("builtin", "all", 0, 2)]
    baseline, modern = runs
    assert modern["params"] < baseline["params"]          # fewer key-value heads, no biases
    assert all(r["val_loss"] > 0 and r["val_recall"] is not None and r["ms_per_step"] > 0
               for r in runs)
    assert "| all | 0 |" in done.stdout and "vs baseline" in done.stdout
    suite.summary({"blocks": json.loads(out.read_text())}, "one-thread", suite.CASES["one-thread"])
    assert "builtin all block, val loss" in capsys.readouterr().out


def test_the_neighbours_share_is_measured_for_each_process_count(tmp_path):
    """A real, tiny run of benchmarks/neighbour_share.py: a row for each count asked for, and
    the neighbour's CPU time read as some of the one core it can spin on, never more."""
    out = tmp_path / "share.json"
    done = script("neighbour_share.py", "--processes", "1", "2", "--steps", "10", "--gemms", "20",
                  "--json", str(out), check=True)
    figures = json.loads(out.read_text())
    assert [row["processes"] for row in figures["rows"]] == [1, 2]
    for row in figures["rows"]:
        assert row["quiet_ms"] > 0 and row["beside_ms"] > 0 and row["ours_cores_beside"] > 0
        assert 0 < row["neighbour_cores"] <= 1.05
    assert "| free | fixed | 2 |" in done.stdout and "the neighbour's (cores)" in done.stdout


def test_the_neighbours_share_pins_each_process_to_a_core_of_its_own(tmp_path):
    """--placement pinned: never two of our processes on one core (where there are two
    cores), and none moved; moved: the first done moves the other in every step, and only
    two processes are asked for."""
    out = tmp_path / "share.json"
    script("neighbour_share.py", "--processes", "2", "--placement", "pinned", "moved", "--steps",
           "3", "--gemms", "4", "--json", str(out), check=True)
    rows = json.loads(out.read_text())["rows"]
    assert [(row["placement"], row["processes"]) for row in rows] == [("pinned", 2), ("moved", 2)]
    two_cores = len(os.sched_getaffinity(0)) >= 2
    assert rows[0]["one_core_beside"] == (0 if two_cores else 1)
    assert rows[0]["moved_beside"] == 0 and rows[1]["moved_beside"] == (1 if two_cores else 0)
    refused = script("neighbour_share.py", "--processes", "2", "3", "--placement", "moved",
                     "--gemms", "6")
    assert refused.returncode == 2 and "give --processes 2" in refused.stderr


def test_the_neighbours_share_deals_pieces_to_whichever_process_is_free(tmp_path):
    """--dealt pulled: every piece done once (the script checks each step's count), and with
    three pieces over two processes one of them did two (a fixed share is half each)."""
    out = tmp_path / "share.json"
    script("neighbour_share.py", "--processes", "2", "--dealt", "fixed", "pulled", "--pieces", "3",
           "--steps", "3", "--gemms", "6", "--json", str(out), check=True)
    rows = json.loads(out.read_text())["rows"]
    assert [(row["dealt"], row["processes"]) for row in rows] == [("fixed", 2), ("pulled", 2)]
    assert rows[0]["largest_share_beside"] == 0.5
    assert rows[1]["largest_share_beside"] in (2 / 3, 1.0)
    refused = script("neighbour_share.py", "--processes", "2", "--dealt", "pulled", "--pieces", "4",
                     "--gemms", "6")
    assert refused.returncode == 2 and "cannot be cut into 4 equal pieces" in refused.stderr
    # Pulled alone: pieces that divide the work, whatever the process count.
    script("neighbour_share.py", "--processes", "3", "--dealt", "pulled", "--pieces", "2",
           "--steps", "1", "--gemms", "4", "--json", str(out), check=True)
    assert json.loads(out.read_text())["rows"][0]["largest_share_beside"] in (0.5, 1.0)


def test_the_neighbours_share_refuses_work_that_cannot_be_shared_evenly():
    done = script("neighbour_share.py", "--processes", "2", "3", "--gemms", "4")
    assert done.returncode == 2
    assert "--gemms 4 cannot be shared evenly over 3 processes" in done.stderr


# tinyformer train's arguments for a tiny run of benchmarks/builtin_run.py.
BUILTIN_TINY = ["--iters", "4", "--eval-every", "2", "--eval-iters", "1", "--n-layer", "1",
                "--d-model", "16", "--n-head", "2", "--context", "16", "--batch-size", "4"]


@pytest.fixture(scope="module")
def builtin_run_by_the_suite(tmp_path_factory):
    """(its figures, what it printed) of one real, tiny run of benchmarks/builtin_run.py with
    --one-core (three runs of tinyformer train), run as the suite runs it on request (`--only
    builtin_run`): shared by the tests of the script and of the suite's handling of it, as each
    run of it trains three times. Its --json names a folder not made yet."""
    out_dir = tmp_path_factory.mktemp("builtin") / "results"
    printed = out_dir.parent / "printed.txt"
    with pytest.MonkeyPatch.context() as patch, open(printed, "w") as to:
        patch.setitem(suite.BENCHMARKS, "builtin_run",
                      ("builtin_run.py", ["--turns", "1", "--one-core", "--", *BUILTIN_TINY], []))
        saved = os.dup(1)                 # the script writes to our standard output, fd 1
        os.dup2(to.fileno(), 1)
        try:
            figures = suite.run("builtin_run", "once", suite.ONCE, False, str(out_dir))
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    assert figures is not None, printed.read_text()
    return figures, printed.read_text()


def test_the_builtin_run_is_timed_quiet_and_beside_a_busy_core(tmp_path, builtin_run_by_the_suite):
    """A real, tiny run of benchmarks/builtin_run.py: a turn's three times (quiet, beside the
    busy core, quiet on one core) and the ratios (the script checks that the runs end at one
    loss); a run directory of its own asked for is refused, and a bad setting of tinyformer
    train's is passed on with its exit status."""
    figures, printed = builtin_run_by_the_suite
    assert figures["command"] == ["tinyformer", "train", *BUILTIN_TINY]
    assert figures["target"] == 1.15
    turn, = figures["turns"]
    quiet, beside, one_core = turn["quiet_s"], turn["beside_s"], turn["one_core_s"]
    assert min(quiet, beside, one_core) > 0 and 2.0 < turn["val_loss"] < 4.0
    assert figures["medians_s"] == {"quiet": quiet, "beside": beside, "one_core": one_core}
    assert figures["ratio"] == pytest.approx(beside / quiet)
    assert figures["ratio_to_one_core"] == pytest.approx(beside / one_core)
    assert f"medians: {beside / quiet:.2f} (target at most 1.15" in printed
    assert f"quiet on one core, medians: {beside / one_core:.2f}" in printed
    refused = script("builtin_run.py", "--", "--out", str(tmp_path / "mine"))
    assert refused.returncode == 2 and "leave out --out and --resume" in refused.stderr
    assert not (tmp_path / "mine").exists()
    bad = script("builtin_run.py", "--turns", "1", "--", "--n-head", "3", "--d-model", "16")
    assert bad.returncode == 2 and "does not divide --d-model 16" in bad.stderr


def test_the_builtin_run_refuses_two_runs_that_end_at_other_losses(monkeypatch):
    import builtin_run                       # benchmarks/ is on the path since suite loaded
    losses = iter([3.0, 3.5])
    monkeypatch.setattr(builtin_run, "timed_run", lambda arguments, directory:
                        (1.0, next(losses)))
    monkeypatch.setattr(builtin_run, "busy_neighbour", contextlib.nullcontext)
    with pytest.raises(SystemExit, match="the losses must not depend on the threads"):
        builtin_run.main(["--turns", "1"])


def test_the_suite_runs_the_builtin_run_on_request_and_judges_its_ratio(builtin_run_by_the_suite,
                                                                         capsys):
    """`--only builtin_run`: its script gets --json before the "--" that starts tinyformer
    train's arguments, and the summary holds the run's times and judges beside / quiet."""
    assert "builtin_run" not in suite.selected([], whole_run=True)
    figures, _ = builtin_run_by_the_suite        # suite.run's, with "--" in its arguments
    assert figures["command"] == ["tinyformer", "train", *BUILTIN_TINY]
    for ratio, verdict in ((1.72, "not yet"), (1.10, "met")):
        suite.summary({"builtin_run": dict(figures, ratio=ratio, ratio_to_one_core=1.05)},
                      "once", suite.ONCE)
        lines = {line.strip().split("  ")[0]: line.split()
                 for line in capsys.readouterr().out.splitlines()}
        assert " ".join(lines["beside / quiet"]).endswith(f"{ratio:.4g} - - <= 1.15 {verdict}")
        quiet = figures["turns"][0]["quiet_s"]
        assert lines["built-in train, quiet, s"][-3:] == [f"{quiet:.4g}", "-", "-"]
        assert lines["beside / quiet on one core"][-3:] == ["1.05", "-", "-"]


def test_the_builtin_run_runs_the_command_without_the_suites_thread_variables(monkeypatch,
                                                                               tmp_path):
    import builtin_run
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    seen = {}

    def fake_run(command, env, **_):
        seen.update(command=command, env=env)
        (tmp_path / "metrics.jsonl").write_text('{"step": 1, "val_loss": 2.5}\n')
        return subprocess.CompletedProcess(command, 0, "", "")
    monkeypatch.setattr(builtin_run.subprocess, "run", fake_run)
    seconds, loss = builtin_run.timed_run(["--iters", "1"], str(tmp_path))
    assert loss == 2.5 and seconds >= 0
    assert "OPENBLAS_NUM_THREADS" not in seen["env"]
    assert seen["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    assert seen["command"][-4:] == ["--out", str(tmp_path), "--iters", "1"]


def test_the_builtin_runs_one_core_run_is_the_same_command_on_one_thread(monkeypatch, capsys):
    import builtin_run
    calls = []
    monkeypatch.setattr(builtin_run, "timed_run", lambda arguments, directory:
                        calls.append(arguments) or (2.0 if len(calls) % 3 == 2 else 1.0, 3.0))
    monkeypatch.setattr(builtin_run, "busy_neighbour", contextlib.nullcontext)
    builtin_run.main(["--turns", "1", "--one-core", "--", "--iters", "4"])
    assert calls == [["--iters", "4"], ["--iters", "4"], ["--iters", "4", "--threads", "1"]]
    out = capsys.readouterr().out
    assert "quiet 1.0 s, beside a busy core 2.0 s, quiet on one core 1.0 s" in out
    assert "medians: 2.00 (target at most 1.15: not yet)" in out


def test_the_builtin_run_compares_the_medians_of_its_turns(monkeypatch, tmp_path, capsys):
    import builtin_run
    times = iter([10.0, 20.0, 12.0, 80.0, 11.0, 22.0])       # quiet, beside; three turns
    monkeypatch.setattr(builtin_run, "timed_run", lambda arguments, directory:
                        (next(times), 3.0))
    monkeypatch.setattr(builtin_run, "busy_neighbour", contextlib.nullcontext)
    builtin_run.main(["--turns", "3", "--json", str(tmp_path / "out.json")])
    figures = json.loads((tmp_path / "out.json").read_text())
    assert figures["medians_s"] == {"quiet": 11.0, "beside": 22.0}   # not the means
    assert figures["ratio"] == 2.0 and "ratio_to_one_core" not in figures
    assert "medians: 2.00 (target at most 1.15: not yet)" in capsys.readouterr().out


# -- the tinyshakespeare text: --corpus, by default tinyshakespeare.txt here --------------------

@pytest.mark.parametrize("args", [["--whole-run"], ["--only", "whole_run"], ["--only", "blocks"],
                                  ["--only", "tokenizer", "--corpus", "typo.txt"]])
def test_a_benchmark_that_needs_the_text_says_how_to_get_it_before_running(
        suite_arguments, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)                             # no tinyshakespeare.txt here
    result = CliRunner().invoke(cli.main, ["bench", *args])
    assert result.exit_code == 2
    line, = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "needs the tinyshakespeare text" in line
    assert "curl -o tinyshakespeare.txt https://" in line and "--corpus PATH" in line
    assert not (tmp_path / "argv.json").exists()            # nothing ran


UNUSABLE = [(b"", "corpus 'corpus.txt' is empty; give a file with some text"),
            (b"First\0Citizen", "corpus 'corpus.txt' holds a NUL byte at offset 5: it looks "
             "binary"),
            (b"hi\n", "corpus 'corpus.txt' is too short")]


@pytest.mark.parametrize("args, content, said", [
    *[([], content, said) for content, said in UNUSABLE],          # the tokenizer's
    *[(["--only", "blocks"], content, said) for content, said in UNUSABLE],
    (["--whole-run", "--only", "ops"], *UNUSABLE[2]),
    ([], b"First Citizen:\n" * 100, "corpus 'corpus.txt' is too short for the tokenizer "
     "benchmark's BPE of 512 ids")])
def test_a_text_the_benchmarks_cannot_use_is_refused_before_any_runs(
        suite_arguments, tmp_path, monkeypatch, args, content, said):
    """Read as `tinyformer train --corpus` reads a corpus, before the first benchmark: not
    by the one that reads it, after the others, as its script's usage lines."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_bytes(content)
    result = CliRunner().invoke(cli.main, ["bench", *args, "--corpus", "corpus.txt"])
    assert result.exit_code == 2, result.output
    line, = result.stderr.splitlines()
    assert line.startswith(f"Error: {said}")
    assert not (tmp_path / "argv.json").exists()            # nothing ran


def test_the_text_the_whole_run_needs_is_said_to_be_its(tmp_path, monkeypatch):
    """--whole-run asks for the text: the error names the whole run, not the tokenizer
    benchmark that runs beside it."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.main, ["bench", "--whole-run", "--corpus", "nope.txt"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: whole_run needs the tinyshakespeare text, which "
                                    "is not at 'nope.txt'")


def test_a_folder_given_as_the_text_is_called_a_folder(tmp_path, monkeypatch):
    # It was said to be "not at" the folder's path, which is there.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(cli.main, ["bench", "--only", "tokenizer", "--corpus", "data"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: tokenizer needs the tinyshakespeare text, and 'data' is a "
                             "folder: give the text file's own path with --corpus PATH\n")


def test_the_texts_path_ending_in_a_separator_is_said_to_name_a_file(tmp_path, monkeypatch):
    # It was said to be "not at" the path, with a download to do, of the file that is there.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text("some text\n")
    result = CliRunner().invoke(cli.main, ["bench", "--only", "tokenizer", "--corpus",
                                           "text.txt/"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: tokenizer needs the tinyshakespeare text, and 'text.txt/' "
                             "ends in '/', as a directory's path does, but 'text.txt' is a "
                             "file; drop the '/'\n")


def test_a_named_pipe_given_as_the_text_is_called_one(tmp_path, monkeypatch):
    # It was said to be "not at" the pipe's path, which is there, with a download to do.
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "text")
    result = CliRunner().invoke(cli.main, ["bench", "--only", "tokenizer", "--corpus", "text"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: tokenizer needs the tinyshakespeare text, and 'text' is a "
                             "named pipe (FIFO), not a file, which the benchmarks read more "
                             "than once: save the text to a file and give its path with "
                             "--corpus PATH\n")

def test_the_text_is_found_here_or_where_corpus_says(suite_arguments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert suite_arguments("--only", "tokenizer").corpus is None     # the built-in corpus
    assert suite_arguments("--only", "blocks", "--quick").corpus is None   # built-in recipe
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "shakespeare.txt").write_text(TEXT)
    whole = suite_arguments("--whole-run", "--corpus", "texts/shakespeare.txt")
    assert whole.whole_run and whole.corpus == "texts/shakespeare.txt"
    (tmp_path / "tinyshakespeare.txt").write_text(TEXT)
    assert suite_arguments("--whole-run").corpus is None


def test_the_suite_gives_the_text_to_the_benchmarks_that_read_it(monkeypatch, tmp_path):
    commands = []
    monkeypatch.setattr(suite, "run_with_all_it_starts", lambda command, env: commands.append(
        command) or 1)
    text = tmp_path / "shakespeare.txt"
    text.write_text("First Citizen:\n")
    for name in ("whole_run", "blocks", "tokenizer", "memory"):
        suite.run(name, "one-thread", suite.CASES["one-thread"], True, str(tmp_path),
                  corpus=str(text))
    given = [command[command.index("--corpus") + 1] if "--corpus" in command else None
             for command in commands]
    assert given == [str(text)] * 3 + [None]


@pytest.mark.parametrize("name, arguments", [
    ("shakespeare.py", ["--seeds", "0", "--iters", "1"]),
    ("blocks.py", ["--recipes", "shakespeare", "--variants", "baseline", "--iters", "1"])])
def test_the_scripts_that_need_the_text_say_how_to_get_it(tmp_path, name, arguments):
    done = script(name, *arguments, cwd=tmp_path)           # no tinyshakespeare.txt here
    assert done.returncode == 2, done.stdout + done.stderr
    assert "needs the tinyshakespeare text" in done.stderr and "--corpus PATH" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_tokenizer_benchmark_without_the_text_measures_the_built_in_corpus(tmp_path):
    done = script("tokenizer_speed.py", "--repeats", "1", "--json", str(tmp_path / "t.json"),
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "measuring the built-in corpus" in done.stdout and "curl -o" in done.stdout
    assert json.loads((tmp_path / "t.json").read_text())["corpus"] == "built-in corpus"


def test_every_benchmark_writes_its_figures_through_the_one_writer():
    # Each wrote its --json by hand: into a folder not made yet (results/new/x.json) it failed
    # with a traceback, after the whole run. alternate.write_figures makes the folder.
    for path in (ROOT / "benchmarks").glob("*.py"):
        if path.name != "alternate.py":
            assert "json.dump(" not in path.read_text(), path.name


# Every script that writes its figures (write_figures): --json is theirs.
WRITES_FIGURES = sorted(path.name for path in (ROOT / "benchmarks").glob("*.py")
                        if "write_figures(" in path.read_text() and path.name != "alternate.py")


def test_a_json_path_that_cannot_be_written_is_a_one_line_usage_error_before_any_run(tmp_path):
    # A folder, or a path inside a file, was found at the end of the run (minutes), in a
    # traceback, the file of its figures lost.
    a_file = tmp_path / "figures.json"
    a_file.write_text("{}")
    refusals = {str(tmp_path): "is a folder; give the path of a file",
                str(tmp_path / "new") + os.sep: "as a folder's path does; give the path of a file",
                str(a_file / "x.json"): "is a file, not a folder"}
    assert len(WRITES_FIGURES) >= 12
    cases = [(name, ["--json", path]) for name in WRITES_FIGURES for path in refusals]
    done = scripts_one_after_another(cases, tmp_path, before=ARGUMENTS_READ_ONLY)
    for name, (_, path) in cases:
        result = done[(name, "--json", path)]
        assert result.returncode == 2 and "Traceback" not in result.stderr, (name, result.stderr)
        assert result.stderr.splitlines()[-1].endswith(refusals[path]), (name, result.stderr)
    assert a_file.read_text() == "{}" and sorted(os.listdir(tmp_path)) == ["figures.json"]


def test_figures_are_written_by_a_script_of_a_checkout_not_installed_with_pip(tmp_path):
    # write_figures takes tinyformer.files's atomic_write: in a checkout not installed with pip,
    # a script that puts no repository on sys.path itself (cblas.py, memory.py) failed with
    # ModuleNotFoundError after its whole run. -S -E: no site-packages' .pth (an editable
    # install's), no PYTHONPATH; numpy from site-packages all the same.
    out = tmp_path / "figures.json"
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            f"sys.path.append({sysconfig.get_paths()['purelib']!r})\n"
            "import alternate\n"
            f"alternate.write_figures({str(out)!r}, {{'ratio': 1.14}})\n")
    done = subprocess.run([sys.executable, "-S", "-E", "-c", code], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["ratio"] == 1.14


def test_a_write_of_figures_that_fails_leaves_the_file_it_replaces_as_it_was(tmp_path):
    # --save replaces the repository's own figures: a full disk part way through the JSON left
    # the file cut short, neither the old figures nor the new.
    path = tmp_path / "results" / "train_step.json"
    path.parent.mkdir()
    path.write_text('{"ratio": 1.14}')
    with files_limited_to(4096), pytest.raises(OSError):
        alternate.write_figures(str(path), {"rows": ["x" * 100] * 100})
    assert path.read_text() == '{"ratio": 1.14}'
    assert os.listdir(path.parent) == ["train_step.json"]       # no temporary file left


def test_figures_that_are_not_finite_numbers_are_written_as_standard_json(tmp_path):
    # envelope.py's free kernels lose their losses to NaN: written as Python writes them
    # (NaN, Infinity), the file was one that strict JSON readers refuse.
    path = tmp_path / "envelope.json"
    alternate.write_figures(str(path), {"losses": {"free-kernels": [1e29, float("nan")]},
                                        "ratio": float("inf"), "lowest": -float("inf")})

    def refused(constant):
        raise AssertionError(f"{constant} is not JSON")
    figures = json.loads(path.read_text(), parse_constant=refused)
    assert figures["losses"] == {"free-kernels": [1e29, None]}
    assert figures["ratio"] is None and figures["lowest"] is None


def test_figures_written_to_a_pipe_go_through_it_and_leave_it_a_pipe(tmp_path):
    # --json /dev/stdout, or a named pipe: written to as it is, never replaced by a file.
    pipe = tmp_path / "figures"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)   # there, so that writing need not wait
    try:
        alternate.write_figures(str(pipe), {"ratio": 1.14})
        assert json.loads(os.read(reader, 1 << 16))["ratio"] == 1.14
    finally:
        os.close(reader)
    assert pipe.is_fifo() and os.listdir(tmp_path) == ["figures"]


def test_no_benchmark_looks_for_files_outside_the_repository():
    for path in (ROOT / "benchmarks").glob("*.py"):
        assert not re.search(r'"\.\.",\s*"(\.\.|shared)"', path.read_text()), path.name


COUNTS_OUT_OF_RANGE = [
    ("engine.py", ["--calls", "0"], "--calls: takes a whole number, 1 or more"),
    ("tokenizer_speed.py", ["--vocab-size", "10"], "--vocab-size: takes a whole number, 260"),
    ("tokenizer_speed.py", ["--repeats", "0"], "--repeats: takes a whole number, 1 or more"),
    ("corpus.py", ["--orders", "3,x"], "--orders: takes a whole number, 1 or more; got 'x'"),
    ("corpus.py", ["--recall-stories", "0"], "--recall-stories: takes a whole number, 1 or"),
    ("corpus.py", ["--log-every", "0"], "--log-every: takes a whole number, 1 or more"),
    ("seq2seq.py", ["--min-len", "5", "--max-len", "3"], "--min-len 5 is above --max-len 3"),
    ("seq2seq.py", ["--seed", "-1"], "--seed: takes a whole number, 0 or more"),
    # The model's own refusals, before any work: they were tracebacks, with status 1.
    ("seq2seq.py", ["--n-head", "3", "--n-train", "10", "--n-val", "5"], "n_head 3 does not"),
    ("seq2seq.py", ["--dropout", "2", "--n-train", "10", "--n-val", "5"], "dropout must be"),
    ("corpus.py", ["--n-head", "3", "--n-chars", "5000"], "n_head 3 does not divide d_model"),
    ("corpus.py", ["--n-chars", "50"], "hold stories back for validation: give --n-chars 1000"),
    ("corpus.py", ["--lr", "-1", "--n-chars", "5000"], "AdamW: lr must be"),
    ("corpus.py", ["--context", "1"], "--context: takes a whole number, 2 or more"),
    ("seq2seq.py", ["--lr", "-1", "--n-train", "10", "--n-val", "5"], "AdamW: lr must be"),
    ("seq2seq.py", ["--label-smoothing", "5"], "--label-smoothing takes a number in [0, 1], got 5"),
    ("shakespeare.py", ["--iters", "0"], "--iters: takes a whole number, 1 or more"),
    ("blocks.py", ["--jobs", "0"], "--jobs: takes a whole number, 1 or more")]


@pytest.fixture(scope="module")
def counts_out_of_range_refused(tmp_path_factory):
    """Each case of COUNTS_OUT_OF_RANGE run, all in one process (each refused before any
    work), in a folder of their own."""
    return scripts_one_after_another([(name, arguments) for name, arguments, _ in
                                      COUNTS_OUT_OF_RANGE], tmp_path_factory.mktemp("counts"))


@pytest.mark.parametrize("name, arguments, said", COUNTS_OUT_OF_RANGE)
def test_a_count_out_of_range_is_a_one_line_usage_error(counts_out_of_range_refused, name,
                                                        arguments, said):
    # They went on to a traceback (a median of no repeats, a division by zero calls, int('x')).
    done = counts_out_of_range_refused[(name, *arguments)]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert said in done.stderr.splitlines()[-1]


def test_the_ops_benchmark_reads_its_arguments_before_it_imports_pytorch():
    """A usage error of benchmarks/engine.py costs no import of PyTorch (a second or two, which
    its other usage errors and --help spent for nothing); its run imports it."""
    done = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "benchmarks" /
                                                                  "engine.py"), "--calls", "0"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--calls: takes a whole number" in done.stderr
    imported = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    assert "numpy" in imported and "torch" not in imported


def test_the_whole_run_script_without_pytorch_is_refused_before_it_trains(tmp_path):
    # It trained ours to the end (minutes), then failed with a traceback at PyTorch's turn.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    done = script("shakespeare.py", "--iters", "1", cwd=tmp_path,
                  env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].endswith("PyTorch is not installed: pip install torch")


def test_when_a_blocks_run_fails_the_runs_beside_it_are_stopped(monkeypatch):
    # The other runs of --jobs trained on, for minutes, after the benchmark had given up.
    import blocks                            # benchmarks/ is on the path since suite loaded
    slow = "import time; time.sleep(60)"
    monkeypatch.setattr(blocks, "planned", lambda args: [("builtin", "slow", 0),
                                                         ("builtin", "broken", 0)])
    monkeypatch.setattr(blocks, "child_command", lambda run, args: [
        sys.executable, "-c", slow if run[1] == "slow" else "raise SystemExit(3)"])
    try:
        with pytest.raises(RuntimeError, match="builtin broken 0 failed with exit status 3"):
            blocks.run_all(argparse.Namespace(jobs=2))
        assert running_children(os.getpid(), slow) == []
    finally:                                 # never leave it sleeping, even when this fails
        for pid in running_children(os.getpid(), slow):
            os.kill(pid, signal.SIGKILL)


def test_the_tokenizer_benchmarks_help_says_where_its_corpus_is_by_default(scripts_help):
    # It read "[default: he tinyshakespeare text [tinyshakespeare.txt, ... directory, else ...]".
    said = " ".join(scripts_help["tokenizer_speed.py"].split())
    assert ("--corpus PATH a UTF-8 text file [default: tinyshakespeare.txt in the current "
            "directory, else the built-in corpus]") in said


HELP_SAYS = [
    ("blocks.py", "then with all of them together; same seed, same steps, same data."),
    ("envelope.py", "ours as the trainer takes it and six variants of it, beside PyTorch's."),
    # and how to read what each prints: their help stopped at the docstring's first line
    ("train_step.py", "it reports how close each engine comes to the machine's matrix"),
    ("generation.py", "Tokens per second counts the new tokens of every row of the batch."),
    ("memory.py", 'The "above imports" column shows what training itself added.'),
    ("tokenizer_speed.py", "bytes/token corpus bytes / number of tokens"),
    ("shakespeare.py", "compare the difference ours - torch with the spread of final losses"),
    ("corpus.py", "on a busy machine OPENBLAS_NUM_THREADS=1 avoids threads waiting on each"),
    ("seq2seq.py", "about 20 seconds on an idle 2-core CPU (50 ms a step).")]


@pytest.fixture(scope="module")
def scripts_help(tmp_path_factory):
    """{NAME: what `python benchmarks/NAME --help` printed} for each script of HELP_SAYS, and
    tokenizer_speed.py's, all in one process."""
    names = sorted({name for name, _ in HELP_SAYS} | {"tokenizer_speed.py"})
    helped = scripts_one_after_another([(name, ["--help"]) for name in names],
                                       tmp_path_factory.mktemp("help"))
    assert all(helped[(name, "--help")].returncode == 0 for name in names), helped
    return {name: helped[(name, "--help")].stdout for name in names}


@pytest.mark.parametrize("name, says", HELP_SAYS)
def test_a_scripts_help_says_what_it_measures_to_the_end_of_the_sentence(scripts_help, name,
                                                                          says):
    # Their help stopped at the docstring's first line, mid-sentence ("... Shakespeare recipe,").
    said = " ".join(scripts_help[name].split())
    assert says in said


def test_the_corpus_benchmark_runs_fewer_steps_than_its_warmup_on_a_few_stories():
    # --iters 2 (a quick look that it runs) met the 60 warmup steps in a traceback; a corpus of
    # a few stories met a character its training part lacked (the Markov chain's vocabulary
    # and the tokenizer's were the training part's, not all the text the run reads).
    done = script("corpus.py", "--n-chars", "300", "--iters", "2", "--recall-stories", "3",
                  "--orders", "3", "--context", "16", "--d-model", "8", "--n-layer", "1",
                  "--n-head", "2", "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    assert "GPT 1x8, 2 heads, ctx 16" in done.stdout


def test_an_interrupted_benchmark_leaves_nothing_it_started_running(tmp_path, monkeypatch):
    """Interrupted alone (not its whole process group, as Ctrl-C in a terminal does), the suite
    killed its benchmark and left what that had started running on: an engine's process, a
    run's workers, for minutes."""
    sleeper = "import time; time.sleep(60)"
    pid_file = tmp_path / "pid"
    fake = tmp_path / "fake.py"
    fake.write_text("import subprocess, sys\n"
                    f"child = subprocess.Popen([sys.executable, '-c', {sleeper!r}])\n"
                    f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                    "child.wait()\n")
    monkeypatch.setitem(suite.BENCHMARKS, "fake", (str(fake), [], []))

    def interrupt_once_it_has_started():
        while not (pid_file.exists() and pid_file.read_text()):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt_once_it_has_started, daemon=True).start()
    # No garbage collection while the Ctrl-C is on its way: a KeyboardInterrupt raised inside
    # a gc callback (hypothesis keeps one) is lost as "unraisable", and the suite would then
    # wait out the minute's sleep.
    gc.disable()
    try:
        with pytest.raises(KeyboardInterrupt):
            suite.run("fake", "one-thread", suite.CASES["one-thread"], False, str(tmp_path))
    finally:
        gc.enable()
    pid = int(pid_file.read_text())
    try:
        deadline = time.monotonic() + 10
        while process_state(pid) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process_state(pid) in (None, "Z")
    finally:                                   # never leave it sleeping, even when this fails
        if runs_code(pid, sleeper):
            os.kill(pid, signal.SIGKILL)


def test_the_neighbours_shares_workers_leave_ctrl_c_to_their_parent():
    # Each forked worker took Ctrl-C for itself and ran on into its parent's code (the
    # `with busy_neighbour()` of main, a traceback): one traceback a process.
    benchmarks = str(ROOT / "benchmarks")
    code = (f"import sys; sys.path.insert(0, {benchmarks!r})\n"
            "import neighbour_share\n"
            "neighbour_share.timed_steps(3, steps=10 ** 6, work=3)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(workers := running_children(holder.pid, code)) < 2:     # forked: same code
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(holder.pid, signal.SIGINT)            # Ctrl-C, to every process of it
        _, errors = holder.communicate(timeout=30)
        assert errors.count("Traceback") == 1, errors
        assert all(process_state(pid) in (None, "Z") for pid in workers)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder.pid, signal.SIGKILL)


def test_the_neighbours_shares_workers_end_with_their_parent():
    # Each worker kept its own pipe's other end (and its elder siblings'), so it never saw its
    # parent go: killed, or stopped by a Ctrl-C between two forks, the parent left them waiting.
    benchmarks = str(ROOT / "benchmarks")
    for ctrl_c_at_the_second_fork in (False, True):
        code = (f"import os, signal, sys; sys.path.insert(0, {benchmarks!r})\n"
                "import neighbour_share\n"
                "fork, forks = os.fork, []\n"
                "def fork_then_ctrl_c():\n"
                "    pid = fork()\n"
                "    forks.append(pid)\n"
                f"    if pid and len(forks) == 2 and {ctrl_c_at_the_second_fork}:\n"
                "        os.kill(os.getpid(), signal.SIGINT)\n"
                "    return pid\n"
                "os.fork = fork_then_ctrl_c\n"
                "neighbour_share.timed_steps(3, steps=10 ** 6, work=3)\n")
        holder = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        try:
            if not ctrl_c_at_the_second_fork:
                deadline = time.monotonic() + 30
                while len(running_children(holder.pid, code)) < 2:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                holder.kill()                           # the parent only, with no word
            _, errors = holder.communicate(timeout=30)  # the workers hold its stderr too
            assert ("KeyboardInterrupt" in errors) == ctrl_c_at_the_second_fork, errors
            deadline = time.monotonic() + 30
            while running(code):
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(holder.pid, signal.SIGKILL)


def test_a_second_ctrl_c_while_a_benchmark_stops_still_kills_what_runs_on(monkeypatch):
    # Ctrl-C again during the few seconds given to the interrupted benchmark cut the wait
    # short and skipped the kill: a benchmark slow to stop ran on, in a session of its own.
    code = ("import signal, time\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)     # slow to stop, at the least\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    benchmark = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                 text=True, start_new_session=True)
    try:
        benchmark.stdout.readline()
        wait = subprocess.Popen.wait

        def ctrl_c_while_waiting(process, timeout=None):
            if timeout is not None:                  # the few seconds it is given to stop
                raise KeyboardInterrupt
            return wait(process, timeout)
        monkeypatch.setattr(subprocess.Popen, "wait", ctrl_c_while_waiting)
        with pytest.raises(KeyboardInterrupt):
            suite.stop_with_its_group(benchmark)
        monkeypatch.undo()
        assert benchmark.poll() == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(benchmark.pid, signal.SIGKILL)
        benchmark.wait()
        benchmark.stdout.close()


def test_a_terminated_suite_stops_its_benchmark_as_after_ctrl_c(tmp_path):
    """SIGTERM (`timeout`) or SIGHUP (a terminal closed) ended the suite at once, with no
    `finally` run; its benchmark, in a process group of its own, ran on to its end."""
    benchmarks = str(ROOT / "benchmarks")
    started = tmp_path / "started"
    fake = tmp_path / "fake.py"
    fake.write_text(f"open({str(started)!r}, 'w').close()\nimport time; time.sleep(60)\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {benchmarks!r})\n"
         "import suite\n"
         f"suite.BENCHMARKS['fake'] = ({str(fake)!r}, [], [])\n"
         "suite.run('fake', 'one-thread', suite.CASES['one-thread'], False, "
         f"{str(tmp_path)!r})\n"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        benchmark = int(subprocess.run(["pgrep", "-P", str(holder.pid)], capture_output=True,
                                       text=True).stdout)
        holder.terminate()
        assert holder.wait(timeout=30) == 128 + signal.SIGTERM
        assert process_state(benchmark) in (None, "Z")
    finally:
        holder.kill()
        for pid in subprocess.run(["pgrep", "-f", str(fake)], capture_output=True,
                                  text=True).stdout.split():
            os.kill(int(pid), signal.SIGKILL)


def test_a_benchmark_stopped_by_ctrl_c_ends_without_a_traceback_of_its_own(tmp_path):
    """Ctrl-C reaches the suite alone (its benchmark runs in a session of its own), which
    stops the benchmark with an interrupt: its script printed a KeyboardInterrupt traceback,
    before `tinyformer bench` said "stopped by Ctrl-C". A stand-in script: nothing is timed."""
    benchmarks = str(ROOT / "benchmarks")
    started = tmp_path / "started"
    fake = tmp_path / "fake.py"
    fake.write_text(f"import sys\nassert sys.argv[1] == '--json', sys.argv\n"
                    f"open({str(started)!r}, 'w').close()\nimport time; time.sleep(60)\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {benchmarks!r})\n"
         "import suite\n"
         f"suite.BENCHMARKS['fake'] = ({str(fake)!r}, [], [])\n"
         "try:\n"
         "    suite.run('fake', 'one-thread', suite.CASES['one-thread'], False, "
         f"{str(tmp_path)!r})\n"
         "except KeyboardInterrupt:\n"
         "    print('stopped by Ctrl-C', file=sys.stderr)\n"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline and holder.poll() is None, holder.stderr.read()
            time.sleep(0.01)
        holder.send_signal(signal.SIGINT)            # the terminal's Ctrl-C
        _, stderr = holder.communicate(timeout=30)
        assert stderr == "stopped by Ctrl-C\n"
    finally:
        holder.kill()
        for pid in subprocess.run(["pgrep", "-f", str(fake)], capture_output=True,
                                  text=True).stdout.split():
            os.kill(int(pid), signal.SIGKILL)


@pytest.mark.parametrize("flush", [True, False])
def test_a_benchmark_whose_reader_went_ends_without_a_traceback_of_its_own(tmp_path, flush):
    """`tinyformer bench | head`: the suite stopped quietly (exit status 141), but the script
    it ran printed a BrokenPipeError traceback on its next line; or, where its line was still
    buffered at its end, "Exception ignored ... BrokenPipeError" (exit status 120). A
    stand-in script."""
    fake = tmp_path / "fake.py"
    fake.write_text(f"print('a line the reader will not read', flush={flush})\n")
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    reader, writer = os.pipe()
    os.close(reader)                                   # the reader has gone: `| head` ended
    try:
        done = subprocess.run([sys.executable, suite.QUIET_WHEN_STOPPED, str(fake)],
                              stdout=writer, stderr=subprocess.PIPE, text=True, timeout=30,
                              env=buffered)
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (cli.PIPE_CLOSED, "")



@pytest.mark.parametrize("arguments, status, said", [
    (["--help"], 0, "runs a benchmark script as `python"),
    ([], 2, "usage: python quiet_when_stopped.py SCRIPT ARGUMENTS..."),
    (["no-such-script.py"], 2, "no such file: 'no-such-script.py'"),
])
def test_the_quiet_runner_asked_for_help_or_given_no_script_says_so_without_a_traceback(
        tmp_path, arguments, status, said):
    # --help ran a script named --help: FileNotFoundError's traceback; no script, IndexError's.
    done = script("quiet_when_stopped.py", *arguments, cwd=tmp_path)
    assert done.returncode == status and said in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_the_suite_run_directly_ends_quietly_when_its_reader_went():
    """`python benchmarks/suite.py | head -3`: `tinyformer bench` ended quietly (exit status
    141), but the suite run directly printed a BrokenPipeError traceback of its own. Its first
    line fails at once, unbuffered, so that no benchmark starts."""
    reader, writer = os.pipe()
    os.close(reader)                                   # the reader has gone: `| head` ended
    try:
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--only",
                               "ops", "--quick"], stdout=writer, stderr=subprocess.PIPE,
                              text=True, timeout=60,
                              env={**os.environ, "PYTHONUNBUFFERED": "1",
                                   "PYTHONPATH": str(ROOT)})
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (cli.PIPE_CLOSED, "")


def test_the_suite_run_directly_and_stopped_by_ctrl_c_says_so_in_one_line(monkeypatch, capsys):
    # `tinyformer bench` said "stopped by Ctrl-C"; `python benchmarks/suite.py` ended with a
    # KeyboardInterrupt traceback through the suite's own frames.
    def interrupted(command, env):            # Ctrl-C while the suite waits for a benchmark
        raise KeyboardInterrupt
    monkeypatch.setattr(suite, "run_with_all_it_starts", interrupted)
    try:
        status = suite.as_a_program(["--only", "ops"])
    except KeyboardInterrupt:                 # caught here: it would stop the whole session
        pytest.fail("the interrupt went on, to end in a traceback")
    assert status == 130
    assert capsys.readouterr().err == "stopped by Ctrl-C\n"


def test_the_suite_leaves_no_results_behind_unless_saving(fake_benchmark, tmp_path, monkeypatch):
    # Each run left a folder of JSON in the temporary directory, never removed.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(sys, "argv", ["/clone/benchmarks/suite.py", "--only", "fake"])
    assert suite.main(["--only", "fake"]) == 0
    assert list(scratch.iterdir()) == []
    # The JSON's own command names a file of that scratch folder: it records the suite's too.
    record, = fake_benchmark()
    assert record["run by"] == "python benchmarks/suite.py --only fake"


def test_the_suite_says_where_the_json_went_unless_saving(fake_benchmark, tmp_path, monkeypatch,
                                                          capsys):
    # Each script says "written: PATH" of its JSON, and without --save that folder was gone
    # by the end, with no word of it.
    monkeypatch.setattr(suite, "HERE", str(tmp_path))       # never the repository's results
    for args, saved in ((["--only", "fake"], False), (["--only", "fake", "--save"], True)):
        assert suite.main(args) == 0
        last = capsys.readouterr().out.strip().splitlines()[-1]
        assert ("scratch folder, now removed; --save keeps it" in last) is not saved, last


@pytest.mark.parametrize("text, said", [
    ("", "corpus 'corpus.txt' is empty"),
    ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 10,
     "corpus 'corpus.txt' is too short: its last tenth, held out, has 61 characters")])
def test_the_whole_run_refuses_a_text_it_cannot_train_on_in_one_line(tmp_path, text, said):
    # Each ended in a traceback from the training process, after the run had started.
    (tmp_path / "corpus.txt").write_text(text)
    done = script("shakespeare.py", "--seeds", "0", "--iters", "1", "--corpus", "corpus.txt",
                  cwd=tmp_path)
    line, = done.stderr.splitlines()
    assert done.returncode == 2 and line.startswith(f"shakespeare.py: error: {said}")
    assert done.stdout == ""


def test_the_tokenizer_benchmark_refuses_a_text_too_short_for_its_vocabulary(tmp_path):
    # It ended in the BPE's ValueError, a traceback.
    (tmp_path / "short.txt").write_text("First Citizen:\nBefore we proceed.\n")
    done = script("tokenizer_speed.py", "--corpus", "short.txt", "--repeats", "1", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        "tokenizer_speed.py: error: corpus 'short.txt' is too short for --vocab-size 512: ")


def test_each_tokenizer_gives_back_a_text_that_names_a_special_token(tmp_path):
    # Hugging Face's encode reads "<eos>" in the text as the special token, and its decode
    # dropped it by default: a corpus that wrote one (a text about tokenizers) failed the
    # round trip, and with it the whole tokenizer benchmark.
    spec = importlib.util.spec_from_file_location("tokenizer_speed",
                                                  ROOT / "benchmarks" / "tokenizer_speed.py")
    tokenizer_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tokenizer_speed)
    text = TEXT + "the story ends here <eos> and <bos> begins another\n"
    vocab_size = 300
    our_bpe = tokenizer_speed.BPETokenizer.train(text, vocab_size, tokenizer_speed.SPECIALS)
    columns = {**tokenizer_speed.ours(text, vocab_size),
               **tokenizer_speed.references(text, vocab_size, our_bpe)}
    assert "HF tokenizers" in columns         # a test dependency (transformers needs it)
    for name, (train, load, encode, decode) in columns.items():
        row = tokenizer_speed.measure(name, train, load, encode, decode, text, 1, tmp_path)
        assert row["tokens"] > 0, name


def test_the_suite_runs_its_benchmarks_where_there_are_no_process_groups(fake_benchmark,
                                                                         monkeypatch, tmp_path):
    # Windows has neither os.killpg nor SIGHUP: bench failed there with an AttributeError.
    monkeypatch.delattr(os, "killpg")
    monkeypatch.delattr(signal, "SIGHUP")
    figures = suite.run("fake", "one-thread", suite.CASES["one-thread"], False, str(tmp_path))
    assert figures["threads"] == "1" and fake_benchmark()


def test_each_product_shared_by_threads_is_timed_every_way(tmp_path):
    """A real, tiny run of benchmarks/op_threads.py: a row for each way and each count of
    pieces, in that order (the script checks each way's product against a @ a, starting
    from NaN, so a piece skipped or written into the wrong rows fails it)."""
    out = tmp_path / "op.json"
    done = script("op_threads.py", "--pieces", "2", "3", "--steps", "2", "--gemms", "3",
                  "--json", str(out), check=True)
    rows = json.loads(out.read_text())["rows"]
    assert [(row["way"], row["pieces"]) for row in rows] == [
        ("one thread", None), ("BLAS", None), ("pulled", 2), ("pulled", 3),
        ("pulled, pinned", 2), ("pulled, pinned", 3)]
    assert all(row["quiet_ms"] > 0 and row["beside_ms"] > 0 for row in rows)
    assert "| pulled, pinned | 3 |" in done.stdout
    refused = script("op_threads.py", "--pieces", "1")
    assert refused.returncode == 2 and "--pieces" in refused.stderr


# The simplest CBLAS there is: each element of C by its own loop over k, either operand read
# as stored (111) or transposed (112), as cblas_sgemm's row-major form takes them.
NAIVE_CBLAS = r"""
void cblas_sgemm(int layout, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0;
            for (int p = 0; p < k; p++)
                sum += (trans_a == 111 ? a[i * lda + p] : a[p * lda + i])
                     * (trans_b == 111 ? b[p * ldb + j] : b[j * ldb + p]);
            c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j]);
        }
}
"""


def test_the_cblas_benchmark_hands_each_layout_to_the_library_as_blas_reads_it(tmp_path):
    # The script checks each product against numpy's before timing it: a transposed view
    # passed with the wrong flag or leading dimension fails there, naming the product.
    from tinyautograd.kernels import compiler
    (tmp_path / "naive.c").write_text(NAIVE_CBLAS)
    subprocess.run([*compiler(), "-O2", "-shared", "-fPIC", "-o", str(tmp_path / "naive.so"),
                    str(tmp_path / "naive.c")], check=True)
    done = script("cblas.py", "--cblas", str(tmp_path / "naive.so"), "--reps", "1",
                  "--json", str(tmp_path / "new" / "cblas.json"))
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "new" / "cblas.json").read_text())
    assert [p["product"] for p in figures["products"]][:3] == [
        "q k v out: X @ W", "q k v out: dY @ W^T", "q k v out: X^T @ dY"]
    assert len(figures["products"]) == 12 and figures["rows"] == 384
    counted = sum(p["count"] * p["other_us"] for p in figures["products"]) / 1e3
    assert figures["other_ms"] == pytest.approx(counted)
    assert "one micro-batch's linears: numpy" in done.stdout


@pytest.mark.parametrize("library, said", [
    ("no-such.so", "cannot open shared object file"),
    (None, "undefined symbol: cblas_sgemm"),             # a library, but not a BLAS
])
def test_the_cblas_benchmark_refuses_what_is_no_blas_in_one_line(tmp_path, library, said):
    import ctypes.util
    path = str(tmp_path / library) if library else ctypes.util.find_library("m")
    done = script("cblas.py", "--cblas", path)
    assert done.returncode == 2 and "not a library with cblas_sgemm" in done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr


def test_the_cblas_benchmark_hands_blis_each_operand_as_stored_with_its_transpose_flag(
        monkeypatch, capsys):
    # BLIS's gemm takes each operand as stored and a flag to read it transposed; a .T view
    # handed as it is would be read through the wrong strides, or copied.
    import types

    import cblas

    def gemm(a, b, trans1=False, trans2=False, beta=1.0):
        assert a.flags.c_contiguous and b.flags.c_contiguous and beta == 0.0
        return (a.T if trans1 else a) @ (b.T if trans2 else b)

    package = types.ModuleType("blis")
    package.py = types.SimpleNamespace(gemm=gemm)
    monkeypatch.setitem(sys.modules, "blis", package)
    monkeypatch.setitem(sys.modules, "blis.py", package.py)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4), dtype=np.float32)
    b = rng.standard_normal((4, 5), dtype=np.float32)
    for x, y in ((a, b), (a.T.copy().T, b), (a, b.T.copy().T)):
        np.testing.assert_allclose(cblas.BLIS().matmul(x, y), x @ y, rtol=1e-6)
    monkeypatch.setitem(sys.modules, "blis", None)               # not installed
    monkeypatch.setattr(sys, "argv", ["cblas.py", "--blis"])
    with pytest.raises(SystemExit) as exit_:
        cblas.main()
    assert exit_.value.code == 2
    assert "not installed: pip install blis" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["generation.py", "memory.py", "seq2seq.py", "corpus.py"])
def test_every_option_of_a_scripts_help_says_its_default(scripts_help, name):
    # The formatter says a default only beside an option's help: --steps, --prompt-len,
    # seq2seq's --n-head and corpus's --context, with none, said nothing of theirs.
    listed = scripts_help[name].split("\noptions:\n", 1)[1]
    entries = re.split(r"\n(?=  -)", listed)        # an option's lines, up to the next's
    unsaid = [entry.split()[0] for entry in entries
              if entry.startswith("  --") and "(default:" not in " ".join(entry.split())]
    assert unsaid == []
