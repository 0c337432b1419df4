"""The BLAS threads of a training run: chosen by timing the run's own steps, applied for real,
and never a cause of different losses."""

import json
import time

from click.testing import CliRunner
from threadpoolctl import threadpool_info

from tinyformer_cli import main
from tinyformer.resources import AdaptiveThreads

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context", "16",
        "--batch-size", "4", "--eval-iters", "2", "--iters", "12", "--eval-every", "6"]


def blas_threads_now():
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def run_steps(threads, n, seconds_per_step):
    """Run `n` steps whose duration depends on the thread count, as a machine's load would
    make it; returns the count each step ran with."""
    used = []
    for _ in range(n):
        with threads.step() as count:
            assert blas_threads_now() == {count}        # the count is really applied
            time.sleep(seconds_per_step[count])
            used.append(count)
    return used


def test_it_tries_each_count_then_keeps_the_fastest_and_chooses_again_later():
    with AdaptiveThreads(candidates=(1, 2), period=12, trial=2) as threads:
        quiet = {1: 0.004, 2: 0.001}                     # two threads faster
        assert run_steps(threads, 12, quiet) == [1, 1, 2, 2] + [2] * 8
        busy = {1: 0.001, 2: 0.004}                      # a neighbour took a core
        assert run_steps(threads, 4, busy) == [1, 1, 2, 2]
        assert blas_threads_now() == {1}      # chosen at once: what runs between steps uses it
        assert run_steps(threads, 8, busy) == [1] * 8


def test_the_limit_is_lifted_when_the_run_ends():
    before = blas_threads_now()
    with AdaptiveThreads(candidates=(1,), period=4, trial=1) as threads:
        run_steps(threads, 3, {1: 0.0})
        assert blas_threads_now() == {1}
    assert blas_threads_now() == before


def test_the_thread_count_does_not_change_the_losses(tmp_path):
    losses = {}
    for threads in ("1", "2", None):                      # None: chosen as it goes
        out = tmp_path / f"run-{threads}"
        args = ["train", *TINY, "--dropout", "0.1", "--out", str(out)]
        args += ["--threads", threads] if threads else []
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        lines = (out / "metrics.jsonl").read_text().splitlines()
        losses[threads] = [json.loads(line)["train_loss"] for line in lines]
    assert losses["1"] == losses["2"] == losses[None]
