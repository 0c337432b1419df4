"""The BLAS threads of a training run: chosen by timing the run's own steps, applied for real,
and never a cause of different losses. The memory a run frees: kept for its next arrays."""

import contextlib
import dataclasses
import functools
import json
import os
import platform
import subprocess
import sys
import time
from types import SimpleNamespace

from click.testing import CliRunner
from threadpoolctl import threadpool_info

import numpy as np
import pytest

import tinyautograd as ta
import tinyformer.resources
import tinyformer.train
from tinyformer.decoding import beam_search
from tinyformer.files import size_said
from tinyformer.gpt import GPT
from tinyformer.prompts import respond
from tinyformer.tokenizers import CharTokenizer
from tinyformer.transformer import Transformer
from tinyformer_cli import main
from tinyformer import resources
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


def clocked_steps(monkeypatch, threads, n, seconds):
    """Run `n` steps, step i taking seconds(i, count) on a clock of the test's own, the one
    AdaptiveThreads reads, so that no machine's timing blurs a near thing (a busy spell of a
    few ms on a shared machine would decide between steps of 1 and 4); returns the count
    each step ran with."""
    now = [0.0]
    monkeypatch.setattr(tinyformer.resources, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    used = []
    for i in range(n):
        with threads.step() as count:
            assert blas_threads_now() == {count}        # the count is really applied
            now[0] += seconds(i, count)
            used.append(count)
    return used


def test_it_tries_each_count_then_keeps_the_fastest_and_chooses_again_later(monkeypatch):
    with AdaptiveThreads(candidates=(1, 2), period=12, trial=2) as threads:
        quiet = {1: 0.004, 2: 0.001}                     # two threads faster
        assert clocked_steps(monkeypatch, threads, 12, lambda i, n: quiet[n]) == \
            [1, 2, 1, 2] + [2] * 8
        busy = {1: 0.001, 2: 0.002}                      # a neighbour took a core: the
        # new trials alone choose (with the last period's times, two threads would win)
        assert clocked_steps(monkeypatch, threads, 4, lambda i, n: busy[n]) == [1, 2, 1, 2]
        assert blas_threads_now() == {1}      # chosen at once: what runs between steps uses it
        assert clocked_steps(monkeypatch, threads, 8, lambda i, n: busy[n]) == [1] * 8


def test_a_slow_spell_as_the_trials_begin_does_not_decide_them(monkeypatch):
    # The first steps after an evaluation run slow whatever the count. The counts take turns
    # on trial, so the spell slows one step of each, and the medians still see one thread
    # as the faster. (In blocks, one thread would have had two slow steps of its three.)
    with AdaptiveThreads(candidates=(1, 2), period=12, trial=3) as threads:
        used = clocked_steps(monkeypatch, threads, 12,
                             lambda i, count: 0.03 if i < 2 else {1: 0.002, 2: 0.008}[count])
        assert used == [1, 2, 1, 2, 1, 2] + [1] * 6


def test_more_threads_must_be_clearly_faster_to_be_chosen(monkeypatch):
    # Beside a busy neighbour one thread and two come close; one is kept unless two win by
    # more than the margin (10%).
    with AdaptiveThreads(candidates=(1, 2), period=8, trial=3) as threads:
        near = {1: 0.010, 2: 0.0095}                                       # 5% faster
        assert clocked_steps(monkeypatch, threads, 8, lambda i, n: near[n])[6:] == [1, 1]
        clear = {1: 0.010, 2: 0.007}                                       # 30% faster
        assert clocked_steps(monkeypatch, threads, 8, lambda i, n: clear[n])[6:] == [2, 2]
        just_over = {1: 0.010, 2: 0.0090}                                  # 11% faster
        assert clocked_steps(monkeypatch, threads, 8, lambda i, n: just_over[n])[6:] == [2, 2]


def test_a_count_exactly_at_the_margin_is_within_it_and_the_fewer_threads_win(monkeypatch):
    # "Within the margin" includes its edge. (A margin of a quarter: the times are then exact
    # binary fractions, so that no rounding decides the edge.)
    with AdaptiveThreads(candidates=(1, 2), period=8, trial=2) as threads:
        threads.margin = 0.25
        edge = {1: 1.25, 2: 1.0}                                   # two threads 25% faster
        assert clocked_steps(monkeypatch, threads, 8, lambda i, n: edge[n])[4:] == [1] * 4
        beyond = {1: 1.375, 2: 1.0}
        assert clocked_steps(monkeypatch, threads, 8, lambda i, n: beyond[n])[4:] == [2] * 4


def test_one_slow_step_of_a_trial_does_not_decide_it(monkeypatch):
    # By the median: one step of one thread's trial slowed by a moment's load (a page fault
    # storm, another program waking) weighs no more than any other; by the mean it would
    # make two threads look faster.
    with AdaptiveThreads(candidates=(1, 2), period=8, trial=3) as threads:
        def seconds(i, n):
            return 0.100 if i == 2 else {1: 0.010, 2: 0.020}[n]       # step 2: one thread's
        assert clocked_steps(monkeypatch, threads, 8, seconds) == [1, 2, 1, 2, 1, 2, 1, 1]


def test_the_candidates_go_no_higher_than_the_cores_whatever_the_most(monkeypatch):
    monkeypatch.setattr(tinyformer.resources, "usable_cores", lambda: 2)
    assert AdaptiveThreads(most=8).candidates == (1, 2)        # 8 micro-batches, 2 cores
    assert AdaptiveThreads(most=2).candidates == (1, 2)
    assert AdaptiveThreads(most=1).candidates == (1,)
    assert AdaptiveThreads().candidates == (1, 2)


def test_the_limit_is_lifted_when_the_run_ends():
    before = blas_threads_now()
    with AdaptiveThreads(candidates=(1,), period=4, trial=1) as threads:
        run_steps(threads, 3, {1: 0.0})
        assert blas_threads_now() == {1}
    assert blas_threads_now() == before



@pytest.mark.parametrize("threads", [1, None], ids=["given", "chosen"])
def test_the_limit_is_lifted_when_a_run_ends_by_an_error(tmp_path, monkeypatch, threads):
    # A notebook's run that diverged (or any error) must not leave the session's BLAS on the
    # run's count. Three threads before it, whatever this machine's cores: not the run's.
    def diverged(self, threads, workers):
        raise FloatingPointError("the loss became nan")
    monkeypatch.setattr(tinyformer.train.Trainer, "train_step", diverged)
    trainer = tinyformer.train.Trainer.start(
        tinyformer.train.TrainConfig(n_layer=1, n_head=2, d_model=16, context=16,
                                     batch_size=4, iters=4),
        str(tmp_path / "run"), log=lambda *_: None)
    with resources.blas_threads(3):
        with pytest.raises(FloatingPointError):
            trainer.train(threads)
        assert blas_threads_now() == {3}

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


def test_on_more_cores_than_micro_batches_the_timing_chooses_among_counts_that_agree(
        tmp_path, monkeypatch):
    """Beyond a process a micro-batch, BLAS would split each product over the threads left
    over, and a product's last bits depend on how it is split: a run whose timing chose that
    count would lose the same seed's losses. The candidates stop at the micro-batches."""
    monkeypatch.setattr(tinyformer.resources, "usable_cores", lambda: 8)
    counts = []
    step = tinyformer.train.Trainer.train_step
    monkeypatch.setattr(tinyformer.train.Trainer, "train_step",
                        lambda self, threads, workers: counts.append(threads) or
                        step(self, threads, workers))
    for micro_batches in (2, 1):
        trainer = tinyformer.train.Trainer.start(
            tinyformer.train.TrainConfig(n_layer=1, n_head=2, d_model=16, context=16,
                                         batch_size=4, iters=4, eval_every=4,
                                         micro_batches=micro_batches),
            str(tmp_path / f"run-{micro_batches}"), log=lambda *_: None)
        trainer.train()                                 # the first steps: the trials
    assert counts == [1, 2, 1, 2] + [1, 1, 1, 1]


# ----- generating: each token a step, timed to choose the BLAS threads


def counted_steps(work):
    """(what work(threads) returns, the number of steps it ran under `threads`): an
    AdaptiveThreads that tries one thread, then two, a step each."""
    with AdaptiveThreads(candidates=(1, 2), period=1000, trial=1) as threads:
        result = work(threads)
    return result, threads.count


def test_each_generated_token_is_a_timed_step_and_the_tokens_do_not_change():
    ta.manual_seed(0)
    gpt = GPT(11, 16, n_layer=1, n_head=2, d_model=8)
    prompt = np.array([[1, 2, 3]])
    plain = gpt.generate(prompt, 6, temperature=0)
    tokens, count = counted_steps(lambda threads: gpt.generate(prompt, 6, temperature=0,
                                                                  threads=threads))
    assert count == 6 and np.array_equal(tokens, plain)
    best, count = counted_steps(lambda threads: beam_search(
        gpt.start_decoding(prompt), beam_size=2, max_len=5, threads=threads))
    assert count == 5                                   # no eos: every step to max_len
    assert np.array_equal(best.tokens,
                          beam_search(gpt.start_decoding(prompt), beam_size=2, max_len=5).tokens)
    ta.manual_seed(0)
    seq2seq = Transformer(9, 9, context=10, n_layer=1, n_head=2, d_model=8).eval()
    src = np.array([[3, 4, 5]])
    out, count = counted_steps(lambda threads: seq2seq.greedy_decode(src, 4, 1, 2,
                                                                         threads=threads))
    assert count == len(out[0]) - 1 >= 1
    assert np.array_equal(out, seq2seq.greedy_decode(src, 4, 1, 2))


@pytest.mark.parametrize("threads", [1, 2])
def test_an_answer_is_computed_on_the_threads_given(monkeypatch, threads):
    ta.manual_seed(0)
    tokenizer = CharTokenizer("abcdefgh .")
    gpt = GPT(tokenizer.vocab_size, 32, n_layer=1, n_head=2, d_model=8)
    seen = []
    forward = GPT.forward
    monkeypatch.setattr(GPT, "forward", lambda self, *args, **kwargs: seen.append(
        blas_threads_now()) or forward(self, *args, **kwargs))
    before = blas_threads_now()
    respond(gpt, tokenizer, "gpt", "abc", max_new_tokens=3, temperature=0,
            threads=threads)(lambda text: None)
    assert seen and all(count == {threads} for count in seen)
    assert blas_threads_now() == before


def test_without_a_count_the_answer_times_its_steps_to_choose(monkeypatch):
    ta.manual_seed(0)
    tokenizer = CharTokenizer("abcdefgh .")
    gpt = GPT(tokenizer.vocab_size, 32, n_layer=1, n_head=2, d_model=8)
    made = []
    original_init = AdaptiveThreads.__init__

    def recorded_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        made.append(self)
    monkeypatch.setattr(AdaptiveThreads, "__init__", recorded_init)
    texts, before = [], blas_threads_now()
    respond(gpt, tokenizer, "gpt", "abc", max_new_tokens=5, temperature=0)(texts.append)
    assert len(made) == 1 and made[0].count == 5         # a step a token, timed
    assert blas_threads_now() == before                 # and the limit lifted afterwards
    with_one = []
    respond(gpt, tokenizer, "gpt", "abc", max_new_tokens=5, temperature=0,
            threads=1)(with_one.append)
    assert texts == with_one                            # the same text, whatever the count


# ----- the memory a run frees

# In a process of its own (the allocator's settings are the process's): the page faults of
# allocating and freeing 8 arrays of 1 MiB, 20 times, inside the block and after it; and the
# bytes of memory the process gave back as the block ended. With "stopped" as its argument,
# the block ends by an exception (a second Ctrl-C, say).
FAULTS = """
import json, os, resource, sys
import numpy as np
from tinyformer.resources import freed_memory_kept

def faults(rounds=20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        arrays = [np.ones(1 << 18, np.float32) for _ in range(8)]
        del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

try:
    with freed_memory_kept() as kept:  # first: glibc has not yet adapted its thresholds itself
        faults(1)                     # the heap grows to hold them once
        inside = faults()
        held = resident()
        if sys.argv[1:] == ["stopped"]:
            raise KeyboardInterrupt
except KeyboardInterrupt:
    pass
given_back = held - resident()
after = faults()
print(json.dumps({"kept": kept, "inside": inside, "after": after, "given_back": given_back}))
"""


def page_faults(*arguments, **environment):
    out = subprocess.run([sys.executable, "-c", FAULTS, *arguments], capture_output=True,
                         text=True, check=True, env={**os.environ, **environment})
    return json.loads(out.stdout)


@pytest.mark.parametrize("ending", ["done", "stopped"])
def test_freed_memory_is_kept_for_the_next_arrays_then_handed_back(ending):
    figures = page_faults(ending)
    # A Linux with glibc is where it applies (CI's); elsewhere it must say it did nothing.
    assert figures["kept"] == (sys.platform.startswith("linux") and
                               platform.libc_ver()[0] == "glibc")
    if figures["kept"]:
        pages = 20 * 8 * (1 << 20) // 4096
        assert figures["inside"] < 50             # inside, the freed pages are reused
        assert figures["given_back"] > 4 << 20    # as the block ends, the 8 MiB go back
        assert figures["after"] > pages / 2       # afterwards handed back, and faulted again


@pytest.mark.parametrize("setting", [{"MALLOC_ARENA_MAX": "2"},
                                     {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}],
                         ids=["MALLOC_", "GLIBC_TUNABLES"])
def test_the_allocator_settings_of_the_environment_are_left_alone(setting):
    figures = page_faults(**setting)
    assert figures["kept"] is False
    assert figures["inside"] > 20 * 8 * (1 << 20) // 4096 / 2       # glibc's own ways


def test_training_keeps_the_memory_it_frees(tmp_path, monkeypatch):
    entered = []

    @contextlib.contextmanager
    def recorded():
        entered.append("in")
        yield True
        entered.append("out")

    monkeypatch.setattr(tinyformer.train, "freed_memory_kept", recorded)
    result = CliRunner().invoke(main, ["train", *TINY, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert entered == ["in", "out"]


# ---------------------------------------------------------------------------------------------
# A container's limits: its cgroup's files, here written into a directory of the test's own


def cgroup_tree(tmp_path, files, membership):
    """A cgroup file system under tmp_path/cgroup (files: {relative path: text}), and the
    process's membership file (/proc/self/cgroup's format)."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "membership").write_text(membership)
    return str(root), str(tmp_path / "membership")


def test_a_cpu_quota_is_read_from_cgroup_v2_the_least_up_to_the_root(tmp_path):
    v2 = {"cgroup.controllers": "cpu memory\n", "box/cpu.max": "150000 100000\n",
          "box/run/cpu.max": "max 100000\n", "cpu.max": "800000 100000\n"}
    assert tinyformer.resources.cpu_quota(*cgroup_tree(tmp_path, v2, "0::/box/run\n")) == 1.5
    # Without any quota, none; and a container's path not visible here: the root it sees.
    none = {"cgroup.controllers": "cpu\n", "cpu.max": "max 100000\n"}
    assert tinyformer.resources.cpu_quota(*cgroup_tree(tmp_path / "a", none, "0::/\n")) is None
    assert tinyformer.resources.cpu_quota(*cgroup_tree(
        tmp_path / "b", {"cgroup.controllers": "", "cpu.max": "250000 100000"},
        "0::/docker/1234\n")) == 2.5


def test_a_cpu_quota_is_read_from_cgroup_v1(tmp_path):
    v1 = {"cpu/docker/abc/cpu.cfs_quota_us": "-1\n", "cpu/docker/abc/cpu.cfs_period_us": "100000\n",
          "cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}
    membership = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n"
    assert tinyformer.resources.cpu_quota(*cgroup_tree(tmp_path, v1, membership)) == 2.0
    assert tinyformer.resources.cpu_quota(str(tmp_path / "nothing"), membership) is None
    # A line for each hierarchy: the cpu's own path, not the path on whichever line is last.
    v1["cpu/docker/abc/cpu.cfs_quota_us"] = "150000\n"
    lines = "3:cpu,cpuacct:/docker/abc\n2:pids:/system.slice\n1:name=systemd:/init.scope\n"
    assert tinyformer.resources.cpu_quota(*cgroup_tree(tmp_path / "lines", v1, lines)) == 1.5


def test_usable_cores_are_at_most_the_quota_rounded_up(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for quota, cores in [(None, 8), (1.5, 2), (0.2, 1), (32.0, 8)]:
        monkeypatch.setattr(tinyformer.resources, "cpu_quota", lambda q=quota: q)
        assert tinyformer.resources.usable_cores() == cores


def test_a_memory_limit_leaves_what_the_group_has_not_used_its_cache_aside(tmp_path):
    gib = 1 << 30
    v2 = {"cgroup.controllers": "memory\n", "box/memory.max": f"{2 * gib}\n",
          "box/memory.current": f"{gib}\n",
          "box/memory.stat": f"anon 5\ninactive_file {gib // 4}\n",
          "memory.max": "max\n", "memory.current": f"{3 * gib}\n"}
    left = tinyformer.resources.cgroup_memory_left(*cgroup_tree(tmp_path, v2, "0::/box\n"))
    assert left == 2 * gib - gib + gib // 4
    # A parent whose limit leaves less binds: the least along the way up to the root.
    nested = dict(v2, **{"memory.max": f"{4 * gib}\n"})             # 3 of its 4 GiB used
    assert tinyformer.resources.cgroup_memory_left(*cgroup_tree(
        tmp_path / "nested", nested, "0::/box\n")) == gib
    v1 = {"memory/memory.limit_in_bytes": f"{4 * gib}\n", "memory/memory.usage_in_bytes":
          f"{gib}\n", "memory/memory.stat": f"inactive_file 7\ntotal_inactive_file {gib}\n"}
    assert tinyformer.resources.cgroup_memory_left(*cgroup_tree(
        tmp_path / "v1", v1, "5:memory:/\n")) == 4 * gib
    assert tinyformer.resources.cgroup_memory_left(str(tmp_path / "none"), "0::/\n") is None
    # A group briefly over its limit (the kernel reclaiming) has nothing left, not less.
    over = {"cgroup.controllers": "memory\n", "memory.max": f"{gib}\n",
            "memory.current": f"{2 * gib}\n"}
    assert tinyformer.resources.cgroup_memory_left(*cgroup_tree(
        tmp_path / "over", over, "0::/\n")) == 0


@pytest.mark.parametrize("task", [None, "reverse"])
def test_the_memory_estimate_holds_every_parameter_four_times_over(tmp_path, task):
    """Weights, their gradients and AdamW's two moments: at least 16 bytes for each parameter
    of the model the run builds (few tokens, so that the parameters are most of it)."""
    config = tinyformer.train.TrainConfig(n_layer=1, n_head=2, d_model=64, batch_size=1,
                                          **({"task": task} if task else {"context": 8}))
    trainer = tinyformer.train.Trainer.start(config, tmp_path / "run", log=lambda *_: None)
    numbers = sum(p.size for p in trainer.parameters)
    vocab_size = trainer.job.tokenizer.vocab_size
    assert tinyformer.resources.training_memory(config.resolved(), vocab_size) >= 16 * numbers


def test_the_memory_estimate_holds_a_gradient_for_each_micro_batch(tmp_path, monkeypatch):
    """Each micro-batch's gradient is a whole copy of the parameters, held until the parts'
    are added: 32 of them took a step of 3 million parameters from 127 MB to 494 MB, and the
    estimate must grow with them (up to the batch's rows: more parts are refused)."""
    config = tinyformer.train.TrainConfig(n_layer=1, n_head=2, d_model=64, batch_size=6,
                                          context=8)
    trainer = tinyformer.train.Trainer.start(config, tmp_path / "run", log=lambda *_: None)
    numbers = sum(p.size for p in trainer.parameters)
    vocab_size = trainer.job.tokenizer.vocab_size

    def need(micro_batches):
        return tinyformer.resources.training_memory(
            dataclasses.replace(config, micro_batches=micro_batches).resolved(), vocab_size)
    # Five copies more, of 4 bytes a number; the estimate counts the weight matrices and the
    # embeddings (least_parameters), not the biases and norms: most of this small model.
    assert need(6) - need(1) >= 0.9 * 5 * 4 * numbers
    # Refused, the run is told that fewer micro-batches would help; at the default two, the
    # copy they add is not what to change first.
    monkeypatch.setattr(tinyformer.resources, "available_memory", lambda: need(6) - 1)
    with pytest.raises(ValueError, match=r"--n-layer or fewer --micro-batches$"):
        tinyformer.resources.check_memory(
            dataclasses.replace(config, micro_batches=6).resolved(), vocab_size)
    monkeypatch.setattr(tinyformer.resources, "available_memory", lambda: need(2) - 1)
    with pytest.raises(ValueError, match=r"--d-model or --n-layer$"):
        tinyformer.resources.check_memory(config.resolved(), vocab_size)


def test_available_memory_is_at_most_what_the_container_leaves(monkeypatch):
    monkeypatch.setattr(tinyformer.resources, "machine_memory", lambda: 10**10)
    for container, available in [(12345, 12345), (None, 10**10), (10**11, 10**10)]:
        monkeypatch.setattr(tinyformer.resources, "cgroup_memory_left", lambda c=container: c)
        assert tinyformer.resources.available_memory() == available
    monkeypatch.setattr(tinyformer.resources, "machine_memory", lambda: None)
    assert tinyformer.resources.available_memory() == 10**11


CONFIG = dict(vocab_size=10, n_layer=2, n_head=2, d_model=8)


def test_a_beam_search_needs_memory_for_its_live_beams_only():
    need = functools.partial(resources.beam_memory, CONFIG, 16)
    # One step from a prompt writes at most vocab_size different beams: wider ones never live
    assert need(100, start=3, steps=1) == need(10, start=3, steps=1) < need(11, start=3, steps=2)
    assert need(8, start=3, steps=5) == 2 * need(4, start=3, steps=5)
    # each beam's keys and values grow with its tokens, up to the context and no further
    assert need(4, start=3, steps=5) < need(4, start=4, steps=5)
    assert need(4, start=11, steps=5) == need(4, start=12, steps=5) == need(4, start=9, steps=50)


def test_the_machines_memory_is_what_linux_says_is_available_in_bytes(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384 kB\nMemFree:         1024 kB\n"
                       "MemAvailable:    2048 kB\n")
    assert tinyformer.resources.machine_memory(str(meminfo)) == 2048 * 1024
    # Without MemAvailable (a kernel before 3.14): the physical memory.
    meminfo.write_text("MemTotal:       16384 kB\n")
    assert tinyformer.resources.machine_memory(str(meminfo)) == \
        os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_a_run_is_refused_when_it_needs_more_memory_than_is_available(monkeypatch):
    config = tinyformer.train.TrainConfig(n_layer=1, n_head=2, d_model=16,
                                          context=16).resolved()
    need = tinyformer.resources.training_memory(config, 40)
    for have in (need, None):                           # None: the memory cannot be read
        monkeypatch.setattr(tinyformer.resources, "available_memory", lambda h=have: h)
        tinyformer.resources.check_memory(config, 40)
    monkeypatch.setattr(tinyformer.resources, "available_memory", lambda: need - 1)
    with pytest.raises(ValueError, match="training with these sizes needs about"):
        tinyformer.resources.check_memory(config, 40)


def test_the_weights_estimate_counts_heads_wider_than_d_model_over_n_head():
    # --d-head 64 with d_model 16 and 2 heads: each layer's queries, keys, values and output
    # are 16 x 128 where they were 16 x 16, and the estimate must hold them.
    def weights(**sizes):
        config = tinyformer.train.TrainConfig(n_layer=3, n_head=2, d_model=16, context=8,
                                              **sizes).resolved()
        return tinyformer.resources.weights_memory(config, 40), config
    wide, config = weights(d_head=64)
    plain, _ = weights()
    copies = 4 + tinyformer.resources.gradient_copies(config)
    assert wide - plain == tinyformer.resources.FLOAT * copies * 3 * 4 * 16 * (2 * 64 - 16)


def test_the_activations_estimate_counts_heads_wider_than_d_model_over_n_head():
    # The same sizes: each token's queries, keys, values and attention output, kept for the
    # backward, are 128 wide where they were 16.
    def both(**sizes):
        config = tinyformer.train.TrainConfig(n_layer=3, n_head=2, d_model=16, context=8,
                                              batch_size=4, **sizes).resolved()
        return (tinyformer.resources.training_memory(config, 40)
                - tinyformer.resources.weights_memory(config, 40))
    tokens = 4 * 8
    assert both(d_head=64) - both() == tinyformer.resources.FLOAT * tokens * 3 * 4 * (128 - 16)


def test_a_refusal_says_when_the_weights_alone_take_most_of_the_memory(monkeypatch):
    """A model too wide or too deep for the machine: a smaller batch or context, which the
    advice names first, would barely help, and the refusal says where the memory goes."""
    def refusal(**sizes):
        config = tinyformer.train.TrainConfig(n_head=2, **sizes).resolved()
        need = tinyformer.resources.training_memory(config, 40)
        monkeypatch.setattr(tinyformer.resources, "available_memory", lambda: need - 1)
        with pytest.raises(ValueError) as refused:
            tinyformer.resources.check_memory(config, 40)
        return str(refused.value), config
    said, config = refusal(n_layer=8, d_model=512, context=8, batch_size=1)
    weights = tinyformer.resources.weights_memory(config, 40)
    assert f"of memory, {size_said(weights)} of it for the weights, their gradients and " \
           f"AdamW's two moments, and " in said
    said, _ = refusal(n_layer=1, d_model=16, context=256, batch_size=64)   # the activations'
    assert "for the weights" not in said and "needs about" in said


def test_a_step_that_raises_leaves_blas_on_the_chosen_count_and_is_not_timed():
    # A caller of the API may catch a step's exception and go on (a prompt refused, say):
    # what runs next must not stay on the count that was on trial.
    with AdaptiveThreads(candidates=(1, 2), period=1000, trial=1) as threads:
        with threads.step():                        # one thread's trial
            pass
        with pytest.raises(RuntimeError, match="broken"):
            with threads.step() as count:           # two threads' trial, broken
                assert count == 2
                raise RuntimeError("broken")
        assert blas_threads_now() == {threads.chosen} == {1}
        assert list(threads.times) == [1] and threads.count == 1    # not timed, not counted
        with threads.step() as count:               # the broken trial is run again
            assert count == 2


def test_a_text_of_over_80_characters_is_shown_as_its_first_40_and_its_length():
    from tinyformer.files import shown
    # Up to 80 whole: reprlib, counting the quotes, cut a text of 79 or 80 in the middle
    assert shown("x" * 79) == repr("x" * 79) and shown("x" * 80) == repr("x" * 80)
    assert shown("x" * 81) == "'" + "x" * 40 + "...' (81 characters)"


def test_every_size_is_said_with_three_figures_in_the_largest_unit_under_it(tmp_path):
    """As the memory a run needs ("15.4 TB", not "15,400.0 GB") and a corpus's size (not
    "0.0 MB")."""
    from tinyformer.files import size_said
    assert [size_said(n) for n in (1, 960, 999.7e3, 27.94e9, 15.4e12, 1.2345e22)] == [
        "1 byte", "960 bytes", "1 MB", "27.9 GB", "15.4 TB", "12,345 EB"]
    corpus = tmp_path / "text.txt"
    corpus.write_text("the cat sat on the mat.\n" * 40, encoding="utf-8")
    result = CliRunner().invoke(main, ["train", "--corpus", str(corpus), *TINY[:10],
                                       "--iters", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0 and \
        f"tokenising {corpus} (960 bytes) with a char tokenizer..." in result.output, \
        result.output


def many_characters(path, n):
    """A text of `n` distinct characters (CJK ideographs), each many times over: a char
    tokenizer's vocabulary of n + its special tokens."""
    rng = np.random.default_rng(0)
    path.write_text("".join(chr(0x4E00 + int(i)) for i in rng.integers(n, size=40 * n)),
                    encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("sizes", [
    dict(d_model=256, n_head=2, context=32, batch_size=16),      # the blocks' widths
    dict(d_model=32, n_head=4, context=96, batch_size=4),        # the attention's scores
    dict(d_model=16, n_head=2, context=16, batch_size=16, corpus=True),  # 6,000 logits a token
    dict(task="reverse", max_len=20, d_model=64, n_head=2, batch_size=8),
], ids=["wide", "long", "vocabulary", "task"])
def test_the_memory_estimate_is_near_a_steps_measured_peak_and_below_it(tmp_path, sizes):
    """A step's peak (numpy's arrays, as tracemalloc sees them) with the weights and AdamW's
    moments it keeps: the estimate is within 20% below it and 10% above (it was a fifth below
    at a large vocabulary's logits, and a fifth above a task's, whose encoder and decoder were
    counted the whole context each)."""
    import tracemalloc
    if sizes.pop("corpus", False):
        sizes["corpus"] = many_characters(tmp_path / "text.txt", 6000)
    config = tinyformer.train.TrainConfig(n_layer=2, micro_batches=1, **sizes)
    trainer = tinyformer.train.Trainer.start(config, tmp_path / "run", log=lambda *_: None)
    try:
        trainer.train_step()                     # AdamW's moments made: kept from now on
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            trainer.train_step()
            step = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        kept = 3 * 4 * sum(p.size for p in trainer.parameters)
        need = tinyformer.resources.training_memory(trainer.config,
                                                    trainer.job.tokenizer.vocab_size)
    finally:
        trainer.close()
    assert 0.8 * (kept + step) <= need <= 1.1 * (kept + step)


def test_a_run_whose_characters_make_logits_too_large_is_refused_before_it_starts(
        tmp_path, monkeypatch):
    """A char vocabulary is known once the text is read: 6,000 characters make each token's
    logits 6,000 wide where 32 were guessed. The run is refused then, and leaves nothing."""
    config = tinyformer.train.TrainConfig(
        n_layer=1, n_head=2, d_model=32, context=16, batch_size=16, iters=1,
        corpus=many_characters(tmp_path / "text.txt", 6000)).resolved()
    guessed = tinyformer.resources.training_memory(config, 32)
    assert tinyformer.resources.training_memory(config, 6000) > 2 * guessed
    monkeypatch.setattr(tinyformer.resources, "available_memory", lambda: 2 * guessed)
    with pytest.raises(ValueError, match="training with these sizes needs about"):
        tinyformer.train.Trainer.start(config, tmp_path / "run", log=lambda *_: None)
    assert not (tmp_path / "run").exists()


def test_a_refused_bpe_run_is_told_that_a_smaller_vocabulary_would_help(monkeypatch):
    """A token's logits, and their gradient, are a vocabulary wide: with a BPE of 50,000 ids
    they are most of a step's memory, and --vocab-size is what to lower first."""
    config = tinyformer.train.TrainConfig(n_layer=1, n_head=2, d_model=16, context=16,
                                          tokenizer="bpe", vocab_size=50_000).resolved()
    need = tinyformer.resources.training_memory(config, 50_000)
    assert need > 2 * tinyformer.resources.training_memory(config, 512)
    monkeypatch.setattr(tinyformer.resources, "available_memory", lambda: need - 1)
    with pytest.raises(ValueError, match=r"choose a smaller --batch-size, --context, "
                                         r"--vocab-size, --d-model or --n-layer$"):
        tinyformer.resources.check_memory(config, 50_000)
