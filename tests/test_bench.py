"""`tinyformer bench`: it runs the benchmark scripts and sums them up against issue 7's targets.
(The figures themselves are measured, never asserted: a test only checks that the machinery
runs and reads its results right.)"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import tinyformer_cli as cli

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("suite", ROOT / "benchmarks" / "suite.py")
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)


def test_bench_runs_a_benchmark_and_prints_the_summary(capfd):
    result = CliRunner().invoke(cli.main, ["bench", "--quick", "--only", "memory"])
    out = result.output + capfd.readouterr().out    # the suite, and the scripts it starts
    assert result.exit_code == 0, out
    assert "=== memory: python benchmarks/memory.py" in out
    summary = out.split("=== summary")[1]
    assert "peak memory of training, MiB" in summary and "<= 1" in summary


def test_bench_without_the_repository_says_what_to_do(monkeypatch):
    monkeypatch.setattr(cli, "BENCH_SUITE", "/nonexistent/benchmarks/suite.py")
    result = CliRunner().invoke(cli.main, ["bench"])
    assert result.exit_code == 2
    assert "clone the repository" in result.stderr and "Traceback" not in result.output


def test_an_unknown_benchmark_is_a_usage_error():
    result = CliRunner().invoke(cli.main, ["bench", "--only", "nonsense"])
    assert result.exit_code == 2 and "nonsense" in result.stderr


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
    suite.summary(results, threads=1)
    out = capsys.readouterr().out.splitlines()
    lines = {line.strip().split("  ")[0]: line for line in out}
    assert lines["training step, ms"].endswith("met")                # 0.6 <= 0.75
    assert lines["generation, batch 1, tok/s"].endswith("not yet")   # 0.9 tok/s ratio < 1
    assert lines["peak memory of training, MiB"].endswith("met")
    assert lines["per-op overhead (median ratio)"].endswith("met")   # median 0.9
    assert "1.15" in lines["forward+backward (median ratio)"]      # median of 1.2 and 1.1
    assert "(failed)" in lines["tokenizer"]
    assert lines["GPT-2 small generation, batch 1"].endswith("met")


def test_the_command_names_the_suites_benchmarks():
    result = CliRunner().invoke(cli.main, ["bench", "--list"])
    assert result.exit_code == 0 and result.output.split() == list(suite.BENCHMARKS)


def test_the_slow_benchmarks_run_only_when_asked_for():
    default = suite.selected([], whole_run=False)
    assert "gpt2" not in default and "whole_run" not in default and "train_step" in default
    assert suite.selected([], whole_run=True) == default + ["whole_run"]
    assert suite.selected(["gpt2"], whole_run=False) == ["gpt2"]


def test_alternate_runs_each_engine_alone_in_turns(tmp_path):
    """Each child is its own process with the thread count in its environment; the engines take
    turns block by block; a failing child raises with its stderr."""
    spec = importlib.util.spec_from_file_location("alternate",
                                                  ROOT / "benchmarks" / "alternate.py")
    alternate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(alternate)
    order = tmp_path / "order.txt"
    script = tmp_path / "child.py"
    script.write_text(
        "import argparse, json, os\n"
        "p = argparse.ArgumentParser()\n"
        "for name in ('--engine', '--json', '--threads', '--order'): p.add_argument(name)\n"
        "a = p.parse_args()\n"
        "if a.engine == 'broken': raise SystemExit('the child says why')\n"
        "open(a.order, 'a').write(a.engine + ' ')\n"
        "json.dump({'pid': os.getpid(), 'blas': os.environ['OPENBLAS_NUM_THREADS'],\n"
        "           'threads': a.threads}, open(a.json, 'w'))\n")
    runs = alternate.alternate(str(script), ["ours", "torch"], blocks=2, threads=2,
                               arguments=["--order", order])
    assert order.read_text().split() == ["ours", "torch", "ours", "torch"]
    assert [run["blas"] for run in runs["ours"] + runs["torch"]] == ["2"] * 4
    assert runs["ours"][0]["threads"] == "2"
    assert len({run["pid"] for run in runs["ours"] + runs["torch"]}) == 4
    try:
        alternate.alternate(str(script), ["broken"], blocks=1, threads=1)
    except RuntimeError as error:
        assert "the child says why" in str(error)
    else:
        raise AssertionError("a failing child must raise")


def test_train_step_times_each_engine_in_its_own_process(tmp_path):
    """A real, tiny run: the figures the suite reads are there, and both engines took the same
    steps from the same weights (their losses agree to rounding)."""
    out = tmp_path / "train_step.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--blocks", "1",
                    "--reps", "2", "--warmup", "0", "--json", str(out)], check=True,
                   capture_output=True)
    figures = json.loads(out.read_text())
    assert figures["ours"]["median_ms"] > 0 and "own process" in figures["method"]
    if figures["torch"] is not None:
        assert figures["max_loss_diff"] < 1e-4 and figures["ratio"] > 0


def test_the_blocks_benchmark_trains_each_variant_alike_and_reports_it(tmp_path, capsys):
    """Two variants of the built-in recipe, two steps each (about five seconds: the one run of
    the benchmark end to end); the records and the suite's summary rows."""
    out = tmp_path / "blocks.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "blocks.py"), "--recipes",
                           "builtin", "--variants", "baseline", "all", "--iters", "2",
                           "--eval-iters", "1", "--jobs", "2", "--json", str(out)],
                          check=True, capture_output=True, text=True)
    runs = json.loads(out.read_text())["runs"]
    assert [(r["recipe"], r["variant"], r["seed"], r["iters"]) for r in runs] == [
        ("builtin", "baseline", 0, 2), ("builtin", "all", 0, 2)]
    baseline, modern = runs
    assert modern["params"] < baseline["params"]          # fewer key-value heads, no biases
    assert all(r["val_loss"] > 0 and r["val_recall"] is not None and r["ms_per_step"] > 0
               for r in runs)
    assert "| all | 0 |" in done.stdout and "vs baseline" in done.stdout
    suite.summary({"blocks": json.loads(out.read_text())}, threads=1)
    assert "builtin all block, val loss" in capsys.readouterr().out
