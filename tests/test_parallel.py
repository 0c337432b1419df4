"""Micro-batches side by side: the batch's gradient is the same however the batch is cut and
however many threads or processes compute it, dropout included; the engine's modes and random
numbers belong to each thread; worker processes stop when they are told or orphaned, and say
what went wrong."""

import contextlib
import gc
import os
import signal
import sys
import threading
import time
import warnings
import weakref

import numpy as np
import pytest

import tinyautograd as ta
from tinyautograd import Tensor
from tinyformer import parallel, resources, stops
from tinyformer.resources import blas_threads
from tinyformer.train import TrainConfig, Trainer, update

TINY = dict(n_layer=1, n_head=2, d_model=16, context=16, batch_size=6, eval_iters=1,
            sample_tokens=4)
JOBS = {
    "gpt": TINY,
    "bert": dict(TINY, model="bert", sample_tokens=None),   # hidden tokens differ by part
    "transformer": dict(n_layer=1, n_head=2, d_model=16, batch_size=6, task="reverse",
                        min_len=2, max_len=7),     # padding differs from part to part
}


def trainer_for(tmp_path, **settings):
    return Trainer.start(TrainConfig(**settings), str(tmp_path / "run"), log=lambda *_: None)


def gradients(trainer, batch, micro_batches, threads):
    """(the loss, every parameter's gradient) of one batch, computed in micro-batches."""
    parts = parallel.split(batch, micro_batches, trainer.job.counted)
    trainer.optimizer.zero_grad()
    loss = parallel.batch_gradients(trainer.part_loss, parts, trainer.parameters, threads)
    return loss, [None if p.grad is None else p.grad.copy() for p in trainer.parameters]


# Worker processes are forked: Linux's (and CI's) way, where the trainer uses them.
needs_fork = pytest.mark.skipif(not parallel.Workers.available(), reason="fork: Linux only")

# The signals that stop a run, each the parent's to handle: Ctrl-C, SIGTERM (`kill`,
# `timeout`, a container's stop) and SIGHUP (a terminal closed).
stopping_signals = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM,
                                                      signal.SIGHUP],
                                           ids=["Ctrl-C", "SIGTERM", "SIGHUP"])


@pytest.mark.parametrize("job", JOBS)
def test_micro_batches_give_the_whole_batchs_loss_and_gradient(tmp_path, job):
    trainer = trainer_for(tmp_path, **JOBS[job])
    batch = trainer.job.train_batch(np.random.default_rng(0))
    loss, whole = gradients(trainer, batch, 1, 1)
    weights = [weight for _, weight in parallel.split(batch, 3, trainer.job.counted)]
    assert sum(weights) == pytest.approx(1)
    if job != "gpt":            # a weight per part's counted targets, not per row
        assert len(set(weights)) > 1
    loss_in_parts, in_parts = gradients(trainer, batch, 3, 2)
    assert loss_in_parts == pytest.approx(loss, rel=1e-5)
    for a, b in zip(whole, in_parts):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_one_thread_or_two_give_the_same_bits_with_dropout(tmp_path):
    trainer = trainer_for(tmp_path, **TINY, dropout=0.3)
    trainer.model.train()
    batch = trainer.job.train_batch(np.random.default_rng(0))
    runs = []
    for threads in (1, 2, 2, 2, 1):
        ta.manual_seed(5)
        loss, grads = gradients(trainer, batch, 2, threads)
        runs.append((loss, grads, ta.random.get_state()))
    for loss, grads, state in runs[1:]:
        assert loss == runs[0][0] and state == runs[0][2]
        for a, b in zip(runs[0][1], grads):
            np.testing.assert_array_equal(a, b)
    # and dropout is really on: another seed, other gradients
    ta.manual_seed(6)
    assert gradients(trainer, batch, 2, 2)[0] != runs[0][0]


def test_a_parameter_that_some_parts_do_not_reach_gets_the_others_gradient():
    """As torch's backward: a parameter that the loss reaches in some parts only gets their
    gradient; one that no part reaches keeps no gradient (None), and neither is an error."""
    import torch
    x = np.array([[1.0], [2.0], [-3.0], [4.0]])
    w, u, unused = (Tensor(np.array([0.5]), requires_grad=True) for _ in range(3))

    def loss_of(part):              # u only where a row is negative: in the second part only
        rows = part[0]
        loss = (Tensor(rows) * w).sum()
        if (rows < 0).any():
            loss = loss + (Tensor(rows[rows < 0]) * u * u).sum()
        return loss * (1 / len(rows))

    parts = parallel.split((x,), 2, lambda part: len(part[0]))
    loss = parallel.batch_gradients(loss_of, parts, [w, u, unused], threads=2)
    tw, tu = (torch.tensor([0.5], dtype=torch.float64, requires_grad=True) for _ in range(2))
    tx = torch.tensor(x)
    expected = ((tx * tw).sum() + (tx[tx < 0] * tu * tu).sum()) / len(x)
    expected.backward()
    assert loss == pytest.approx(expected.item())
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(u.grad, tu.grad.numpy(), rtol=1e-6)
    assert unused.grad is None


def test_a_frozen_parameter_gets_no_gradient_in_micro_batches_as_in_one_batch():
    # A model with its embeddings frozen (requires_grad_(False)), to fine-tune the rest: cut
    # into micro-batches, as the trainer cuts every batch by default, its step failed with
    # "grad: input 0 does not require a gradient".
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    frozen = Tensor(np.array([2.0]))
    w = Tensor(np.array([0.5]), requires_grad=True)

    def loss_of(part):
        return (Tensor(part[0]) * frozen * w).sum() * (1 / len(part[0]))

    for micro_batches in (1, 2):
        parts = parallel.split((x,), micro_batches, lambda part: len(part[0]))
        assert parallel.batch_gradients(loss_of, parts, [frozen, w], threads=2) == 2.5
        np.testing.assert_allclose(w.grad, [2 * x.mean()])
        assert frozen.grad is None


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_batch_gradients_sets_the_gradients_it_does_not_add_to_them(micro_batches):
    # As its docstring says, whatever the .grad held before: a second call, without a
    # zero_grad between, gives the batch's gradient again, not twice it; and a parameter that
    # no part reaches has none, not an earlier batch's.
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    w, unused = (Tensor(np.array([0.5]), requires_grad=True) for _ in range(2))
    unused.grad = np.array([7.0])                   # left over from some earlier loss

    def loss_of(part):
        return (Tensor(part[0]) * w).sum() * (1 / len(part[0]))

    parts = parallel.split((x,), micro_batches, lambda part: len(part[0]))
    for _ in range(2):
        parallel.batch_gradients(loss_of, parts, [w, unused], threads=1)
        np.testing.assert_allclose(w.grad, [x.mean()])
        assert unused.grad is None


def test_split_leaves_out_parts_with_nothing_to_count_and_cuts_no_finer_than_rows():
    x = np.arange(12).reshape(4, 3)
    counted = {0: 0, 1: 2, 2: 3, 3: 0}                   # targets counted in each row
    parts = parallel.split((x,), 4, lambda part: sum(counted[r] for r in part[0][:, 0] // 3))
    assert [(part[0][:, 0].tolist(), weight) for part, weight in parts] == [([3], 0.4),
                                                                              ([6], 0.6)]
    assert len(parallel.split((x,), 10, lambda part: len(part[0]))) == 4
    assert parallel.split((x,), 3, lambda part: 0) == [((x,), 1.0)]


def test_run_in_threads_keeps_the_order_and_really_uses_threads():
    names = parallel.run_in_threads(lambda i: (i, threading.current_thread().name), range(6), 2)
    assert [i for i, _ in names] == list(range(6))
    assert all(name.startswith("micro-batch") for _, name in names)
    alone = parallel.run_in_threads(lambda i: threading.current_thread().name, range(3), 1)
    assert alone == [threading.current_thread().name] * 3


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt()],
                         ids=["sys.exit", "KeyboardInterrupt"])
def test_run_in_threads_raises_what_a_thread_raised_not_only_exceptions(error):
    # A part whose work calls sys.exit, say: raised here as it was, as one thread would.
    def work(i):
        if i == 3:
            raise error
        return i
    with pytest.raises(type(error)) as raised:
        parallel.run_in_threads(work, range(4), 2)
    assert raised.value is error



class PartFailed(Exception):
    """A part's error, which a weak reference can follow."""


@contextlib.contextmanager
def reference_counts_only():
    """Inside, only reference counts free objects: one left in a reference cycle stays alive."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("run_in", [parallel.run_in_threads,
                                    pytest.param(parallel.run_in_processes, marks=needs_fork)])
def test_a_failed_parts_error_and_activations_are_freed_as_the_error_is_dropped(run_in):
    # The error, kept in a list the threads' frames hold (and in a variable of the frame that
    # raised it), was in a reference cycle through its own traceback: the failed part's
    # activations, in its frames, stayed alive until the garbage collector next ran. A forked
    # child's error (item 1 goes to the first child), sent back here, is freed as well.
    seen = {}

    def work(i):
        activations = Tensor(np.ones((64, 64))) * 2
        if i == 1:
            seen["activations"] = weakref.ref(activations)
            raise PartFailed(i)
        return i
    with reference_counts_only():
        with pytest.raises(PartFailed) as raised:
            run_in(work, range(4), 2)
        error = weakref.ref(raised.value)
        del raised
        assert error() is None
        if run_in is parallel.run_in_threads:   # a child's activations went with the child
            assert seen["activations"]() is None


@needs_fork
@pytest.mark.parametrize("failing", ["this process", "the worker"])
def test_a_failed_shared_steps_error_and_activations_are_freed_as_it_is_dropped(failing):
    # As for threads: the error was kept in variables of the frames it was raised through (the
    # meeting's and the part's), each a reference cycle holding the part's activations.
    here, seen = os.getpid(), {}
    model = ta.nn.Linear(3, 1)

    def loss_of(batch):
        x, = batch
        out = model(Tensor(x))
        if (os.getpid() == here) == (failing == "this process"):
            seen["activations"] = weakref.ref(out)
            raise PartFailed(failing)
        return (out ** 2).mean()

    optimizer = ta.optim.AdamW(model.parameters(), lr=0.1)
    parts = parallel.split((np.arange(12.0).reshape(4, 3),), 2, lambda part: len(part[0]))
    with parallel.Workers(loss_of, model, model.parameters(), optimizer, 1, parts=2) as workers:
        with reference_counts_only():
            with pytest.raises(PartFailed) as raised:
                workers.update(loss_of, parts, 2, 0)
            error = weakref.ref(raised.value)
            del raised
            assert error() is None
            assert failing == "the worker" or seen["activations"]() is None


def test_grad_mode_belongs_to_each_thread():
    x = ta.Tensor(np.ones(3), requires_grad=True)
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def worker():
        inside.wait()                          # the main thread is under no_grad now
        seen["recorded"] = (x * 2).requires_grad
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    with ta.no_grad():
        inside.set()
        done.wait()
        seen["main"] = (x * 2).requires_grad
    thread.join()
    assert seen == {"recorded": True, "main": False}


def test_seeded_gives_this_thread_its_own_generator_and_leaves_the_shared_one_alone():
    shared = ta.manual_seed(1)
    state = ta.random.get_state()
    other_thread = []
    with ta.random.seeded(7):
        inside = ta.randn(4).data
        thread = threading.Thread(target=lambda: other_thread.append(
            ta.random.default_generator()))
        thread.start()
        thread.join()
    assert ta.random.get_state() == state            # the shared stream did not move
    assert other_thread == [shared]                  # another thread draws from the shared one
    with ta.random.seeded(7):
        np.testing.assert_array_equal(ta.randn(4).data, inside)     # the seed decides
    assert not np.array_equal(ta.randn(4).data, inside)           # after: the shared one


def test_seeded_inside_seeded_gives_back_the_outer_generator():
    state = ta.manual_seed(1).bit_generator.state
    with ta.random.seeded(7):
        first = ta.randn(4).data
        with ta.random.seeded(8):
            inner = ta.randn(4).data
        then = ta.randn(4).data                                     # seed 7's stream goes on
    assert ta.random.get_state() == state
    outer = np.random.default_rng(7)
    np.testing.assert_array_equal(first, outer.standard_normal(4).astype(np.float32))
    np.testing.assert_array_equal(then, outer.standard_normal(4).astype(np.float32))
    np.testing.assert_array_equal(inner, np.random.default_rng(8).standard_normal(4)
                                  .astype(np.float32))


@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("fork", [True, False], ids=["processes", "threads"])
def test_evaluation_side_by_side_gives_the_same_figures_and_records_no_graph(tmp_path, job,
                                                                             fork, monkeypatch):
    # A text's evaluation over 4 batches (a task's is over all its held-out pairs).
    trainer = trainer_for(tmp_path, **dict(JOBS[job], **({} if job == "transformer" else
                                                         dict(eval_iters=4))))
    trainer.model.eval()
    where, loss = [], trainer.job.loss

    def loss_without_a_graph(model, batch):
        # raised in a worker process too, and then here: its other effects stay there
        assert not ta.is_grad_enabled(), "a graph recorded while evaluating"
        where.append((os.getpid(), threading.current_thread().name))
        return loss(model, batch)

    monkeypatch.setattr(trainer.job, "loss", loss_without_a_graph)
    monkeypatch.setattr(parallel.Workers, "available", staticmethod(lambda: fork))
    with ta.no_grad():                              # as Trainer.evaluate calls it
        with blas_threads(1):       # as each side computes: BLAS on two threads rounds apart
            alone = trainer.job.evaluate(trainer.model, 1)
        items, where[:] = len(where), []            # batches, or chunks of pairs
        assert items >= 2
        assert trainer.job.evaluate(trainer.model, 2) == alone
    if fork:                                        # here, only this process's half
        assert where == [(os.getpid(), threading.current_thread().name)] * ((items + 1) // 2)
    else:                                           # all of it, on the pool's threads
        assert len(where) == items and {pid for pid, _ in where} == {os.getpid()}
        assert all(name.startswith("micro-batch") for _, name in where)


def test_run_in_processes_keeps_the_order_and_really_uses_processes():
    here = os.getpid()
    results = parallel.run_in_processes(lambda i: (i, os.getpid()), range(7), 3)
    assert [i for i, _ in results] == list(range(7))
    pids = [pid for _, pid in results]
    assert pids[0] == here and len(set(pids)) == 3
    assert all(pids[i] == pids[i % 3] for i in range(7))       # item i in process i % 3
    assert parallel.run_in_processes(lambda i: os.getpid(), range(3), 1) == [here] * 3
    assert parallel.run_in_processes(lambda i: os.getpid(), [5], 4) == [here]
    assert parallel.run_in_processes(lambda i: i, [], 2) == []


@pytest.fixture
def forked(monkeypatch):
    """The pids of the processes forked meanwhile."""
    pids, fork = [], os.fork

    def fork_and_note():
        pid = fork()
        if pid:
            pids.append(pid)
        return pid
    monkeypatch.setattr(os, "fork", fork_and_note)
    return pids


def _all_waited_for(pids):
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return bool(pids)


@needs_fork
def test_run_in_processes_raises_a_childs_error_here_and_waits_for_every_child(forked):
    def work(i):
        if i == 4:
            raise FloatingPointError("item 4 became nan")
        if i == 5:
            raise Unpicklable()
        return i

    with pytest.raises(FloatingPointError, match=r"^item 4 became nan$") as raised:
        parallel.run_in_processes(work, range(5), 3)        # item 4: the first child's
    # where it happened, for a bug's report: the child's traceback, as the error's cause
    assert 'raise FloatingPointError("item 4 became nan")' in str(raised.value.__cause__)
    with pytest.raises(RuntimeError, match=r"^a worker process failed: Unpicklable: it stays "
                                           r"where it was raised$") as raised:
        parallel.run_in_processes(work, [0, 5], 2)          # item 5: the child's
    assert "raise Unpicklable()" in str(raised.value.__cause__)     # in words, and where
    with pytest.raises(RuntimeError, match=r"^a worker process failed: .*(pickle|local)"):
        parallel.run_in_processes(lambda i: lambda: i, range(2), 2)   # a result that cannot
    assert _all_waited_for(forked)


@needs_fork
def test_run_in_processes_says_when_a_child_is_killed(forked):
    here = os.getpid()

    def work(i):
        if os.getpid() != here:
            os.kill(os.getpid(), signal.SIGKILL)          # the out-of-memory killer, say
        return i

    with pytest.raises(parallel.WorkerLost, match=r"^a worker process ended without an "
                                                 r"answer \(out of memory\?\); train "
                                                 r"with --threads 1"):
        parallel.run_in_processes(work, range(4), 2)
    assert _all_waited_for(forked)


@needs_fork
def test_an_error_here_stops_the_children_at_once(forked):
    def work(i):
        if i == 0:
            raise KeyboardInterrupt                       # Ctrl-C in this process
        time.sleep(60)                                    # the children: still at work
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        parallel.run_in_processes(work, range(3), 3)
    assert time.monotonic() - start < 30
    assert _all_waited_for(forked) and len(forked) == 2


@needs_fork
@stopping_signals
def test_ctrl_c_while_the_children_work_is_this_processs_to_handle(tmp_path, signum):
    heard, here = tmp_path / "heard", os.getpid()

    def handler(signum, frame):                 # as the trainer's: say so, stop later
        with open(heard, "a") as f:
            f.write(f"{os.getpid()}\n")

    def work(i):
        if os.getpid() != here:                 # the terminal signals every process
            os.kill(os.getpid(), signum)
            time.sleep(0.1)                     # time for a handler to run
        return i
    previous = signal.signal(signum, handler)
    try:
        assert parallel.run_in_processes(work, range(4), 2) == [0, 1, 2, 3]
    finally:
        signal.signal(signum, previous)
    assert not heard.exists()


@needs_fork
@pytest.mark.parametrize("fork", [True, False], ids=["processes", "threads"])
def test_side_by_side_gives_the_same_results_with_more_threads_than_items(fork, monkeypatch):
    # The threads beyond the items went to BLAS, which split each product among them, and its
    # last bits with it: a task's evaluation of one chunk of pairs gave another val_loss on
    # two cores than on one (and, with the count chosen by timing, by the machine's load).
    monkeypatch.setattr(parallel.Workers, "available", staticmethod(lambda: fork))
    a, b = np.random.default_rng(0).standard_normal((2, 300, 1000), dtype=np.float32)
    def product(i):                       # a long sum (1000 terms), which BLAS splits
        return (a + i) @ b.T
    with blas_threads(1):
        alone = [product(i) for i in range(2)]
    for items, threads in ((1, 2), (2, 4)):
        for result, expected in zip(parallel.side_by_side(product, range(items), threads), alone):
            np.testing.assert_array_equal(result, expected)


def test_side_by_side_uses_threads_where_fork_is_refused(monkeypatch):
    def refused():
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", refused)
    names = parallel.side_by_side(lambda i: (i, threading.current_thread().name), range(4), 2)
    assert [i for i, _ in names] == list(range(4))
    assert all(name.startswith("micro-batch") for _, name in names)


def test_the_workers_keep_the_callers_numpy_error_settings():
    def overflow(_):
        return np.float32(3e38) * np.float32(10)          # inf, and numpy's overflow warning

    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # a warning anywhere fails the test
        with np.errstate(over="ignore"):                   # as Trainer.train runs its steps
            assert parallel.run_in_threads(overflow, range(4), 2) == [np.inf] * 4
        with pytest.raises(RuntimeWarning):                # outside it, numpy warns again
            parallel.run_in_threads(overflow, range(4), 2)


def ignoring(pid, signums, seconds=5):
    """Wait until process `pid` ignores each of `signums` (as a worker does once it waits for
    its first step), as /proc/PID/status says; fail the test if it does not within `seconds`
    (its signals, blocked as well, would not show that it left one unignored). Where there is
    no /proc (macOS), wait 0.2 s."""
    if not os.path.exists(f"/proc/{pid}/status"):
        time.sleep(0.2)
        return
    wanted = sum(1 << (signum - 1) for signum in signums)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            masks = dict(line.split(":\t", 1) for line in f if line.startswith("Sig"))
        if int(masks["SigIgn"], 16) & wanted == wanted:
            return
        time.sleep(0.01)
    pytest.fail(f"process {pid} did not ignore signals {sorted(signums)} within {seconds} s: "
                f"SigIgn {masks['SigIgn'].strip()}")


@needs_fork
@pytest.mark.parametrize("job", JOBS)
def test_worker_processes_share_out_the_step_and_give_one_processs_bits(tmp_path, job):
    """The parts, the sums, the clipping and the update shared out over two processes leave
    the model, its gradients and the optimizer's state as one process alone leaves them."""
    alone, shared = (trainer_for(tmp_path / name, **JOBS[job], dropout=0.3) for name in "ab")
    # Python's own Ctrl-C (KeyboardInterrupt) here, whatever this test process inherited, so
    # that a worker that kept it would die of the SIGINT below.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        workers = parallel.Workers(shared.part_loss, shared.model, shared.parameters,
                                   shared.optimizer, 1, parts=3)
    finally:
        signal.signal(signal.SIGINT, previous)
    with workers:
        # The worker waits for its first step. (A signal it did not ignore would end it, or
        # raise there, before it could read that step: no wait after them is needed.)
        ignoring(workers.pids[0], parallel.STOPPING)
        os.kill(workers.pids[0], signal.SIGINT)        # Ctrl-C is the parent's to handle
        os.kill(workers.pids[0], signal.SIGTERM)       # and so is SIGTERM, sent to the group
        os.kill(workers.pids[0], signal.SIGHUP)        # and SIGHUP, a closed terminal's
        clipped = []
        for step, (micro_batches, mode, clip, threads) in enumerate(
                [(2, "train", 0.05, 2), (2, "train", 0.05, 1),      # one thread: this process
                 (2, "train", 0.05, 2), (3, "train", 1.0, 2), (2, "eval", 0, 2)]):
            batch = alone.job.train_batch(np.random.default_rng(step))
            results = []
            for trainer, its_workers in ((alone, None), (shared, workers)):
                getattr(trainer.model, mode)()         # the worker follows this process's mode
                for group in trainer.optimizer.param_groups:        # and its lr, and
                    group["lr"] = 0.01 * (step + 1)     # any other option, a list too
                    group["betas"] = [0.9, 0.999 - 0.1 * step]
                ta.manual_seed(5)
                results.append(update(trainer.part_loss, batch, trainer.job.counted,
                                      trainer.parameters, trainer.optimizer, micro_batches,
                                      threads, clip, its_workers))
            assert results[0] == results[1]            # the loss and the norm before clipping
            clipped.append(bool(clip) and results[0][1] > clip)
            for p, q in zip(alone.parameters, shared.parameters):
                assert (p.grad is None) == (q.grad is None)
                if p.grad is not None:
                    np.testing.assert_array_equal(p.grad, q.grad)     # clipped alike
                np.testing.assert_array_equal(p.data, q.data)         # updated alike
            _assert_same_state(alone.optimizer.state_dict(), shared.optimizer.state_dict())
        assert clipped[0] and clipped[2]               # the norm was really shared out
        pids = workers.pids
    for pid in pids:                                   # stopped and waited for
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@needs_fork
def test_an_optimizer_that_makes_its_state_at_the_first_update_steps_as_on_one_thread(tmp_path):
    # SGD with dampening makes its momentum buffer at a parameter's first update: made in the
    # worker that updated it, it stayed there, missing from this process's state (and so from
    # a checkpoint), and a step on one thread started the buffer again.
    alone, shared = (trainer_for(tmp_path / name, **TINY) for name in "ab")
    losses, counts = {}, {alone: [1, 1], shared: [2, 1]}     # as AdaptiveThreads tries counts
    for trainer in (alone, shared):
        trainer.optimizer = ta.optim.SGD(trainer.parameters, lr=0.1, momentum=0.9,
                                         dampening=0.5)
        with parallel.workers_for(trainer.part_loss, trainer.model, trainer.parameters,
                                  trainer.optimizer, processes=2, micro_batches=2) as workers:
            losses[trainer] = [update(trainer.part_loss, alone.job.train_batch(
                np.random.default_rng(step)), trainer.job.counted, trainer.parameters,
                trainer.optimizer, 2, threads, 1.0, workers)
                for step, threads in enumerate(counts[trainer])]
    assert losses[alone] == losses[shared]
    for p, q in zip(alone.parameters, shared.parameters):
        np.testing.assert_array_equal(p.data, q.data)
    _assert_same_state(alone.optimizer.state_dict(), shared.optimizer.state_dict())
    with pytest.raises(ValueError, match=r"^Workers: SGD makes state arrays at a parameter's "
                                         r"first update \(SGD does with dampening\), which "
                                         r"worker processes cannot share; run the"):
        parallel.Workers(shared.part_loss, shared.model, shared.parameters, shared.optimizer, 1)


def _assert_same_state(a, b):
    assert a["param_groups"] == b["param_groups"]
    for mine, theirs in zip(a["state"], b["state"], strict=True):
        assert mine.keys() == theirs.keys() and mine.get("step") == theirs.get("step")
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])


@needs_fork
def test_each_part_of_a_shared_step_is_computed_once_in_one_process(tmp_path):
    # Part i is process i % n's: with two parts and two processes, each computes one part
    # (a process computing the others' parts too gives the same numbers, n times the work).
    ta.manual_seed(0)
    model = ta.nn.Linear(3, 1)
    computed = tmp_path / "computed"

    def loss_of(batch):
        x, = batch
        with open(computed, "a") as log:        # the worker's lines too: a file they share
            log.write(f"{os.getpid()} {x[0, 0]:g}\n")
        return (model(Tensor(x)) ** 2).mean()

    optimizer = ta.optim.SGD(model.parameters(), lr=0.1)
    with parallel.Workers(loss_of, model, model.parameters(), optimizer, 1, parts=2) as workers:
        parts = parallel.split((np.arange(12.0).reshape(4, 3),), 2, lambda part: len(part[0]))
        workers.update(loss_of, parts, 2, 0)
    lines = [line.split() for line in computed.read_text().splitlines()]
    assert sorted(part for _, part in lines) == ["0", "6"]       # rows 0-1 and rows 2-3
    assert len({pid for pid, _ in lines}) == 2


def test_shares_cut_the_parameters_into_runs_of_about_equal_size():
    sizes = [Tensor(np.zeros(n)) for n in (10, 1, 1, 30, 8, 40, 10)]
    assert parallel._shares(sizes, 1) == [range(0, 7)]
    assert parallel._shares(sizes, 2) == [range(0, 5), range(5, 7)]     # 50 and 50
    assert parallel._shares(sizes, 3) == [range(0, 4), range(4, 6), range(6, 7)]
    assert parallel._shares(sizes[:1], 2) == [range(0, 1), range(1, 1)]  # nothing to share


@needs_fork
def test_workers_for_forks_the_processes_beside_this_one_that_the_steps_can_use(tmp_path):
    trainer = trainer_for(tmp_path, **TINY)
    model = (trainer.part_loss, trainer.model, trainer.parameters, trainer.optimizer)
    with parallel.workers_for(*model, processes=1, micro_batches=4) as none:
        assert none is None                            # this process alone: no fork
    for processes, micro_batches, forked in [(2, 2, 1), (4, 2, 1), (3, 4, 2)]:
        with parallel.workers_for(*model, processes, micro_batches) as workers:
            assert len(workers.pids) == forked



@needs_fork
def test_a_step_on_more_threads_than_the_workers_runs_on_the_processes_there_are(tmp_path):
    # From Python, a step may ask for more threads than the Workers were made with: it runs
    # on this process and its one worker, and gives the batch's loss all the same.
    trainer = trainer_for(tmp_path, **TINY)
    batch = trainer.job.train_batch(np.random.default_rng(0))
    parts = parallel.split(batch, 3, trainer.job.counted)
    ta.manual_seed(2)
    expected = parallel.batch_gradients(trainer.part_loss, parts, trainer.parameters, 1)
    with parallel.Workers(trainer.part_loss, trainer.model, trainer.parameters,
                          trainer.optimizer, 1, parts=3) as workers:
        assert workers.processes(threads=4, parts=3) == 2
        ta.manual_seed(2)
        assert workers.update(trainer.part_loss, parts, 4, 0) == (expected, None)

@needs_fork
def test_the_buffers_of_parts_that_no_step_fills_take_no_memory(tmp_path):
    # Each part's buffer was written with zeros as it was made, so that --micro-batches 256
    # on a batch of 4 took the memory of 256 gradients, where 4 parts ever exist.
    trainer = trainer_for(tmp_path, n_layer=2, n_head=2, d_model=128, context=8)
    size = sum(p.data.nbytes for p in trainer.parameters)              # 1.6 MB
    before = _resident()
    with parallel.Workers(trainer.part_loss, trainer.model, trainer.parameters,
                          trainer.optimizer, 1, parts=64):
        grown = _resident() - before
    # the weights and AdamW's two moments, moved into shared memory: 3 sizes, not 67
    assert grown < 16 * size


def _resident():
    """This process's resident memory, in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_shared_copies_hold_the_values_each_on_a_64_byte_boundary():
    arrays = [np.arange(3, dtype=np.int8), np.linspace(0, 1, 5), np.ones((2, 3), np.float32)]
    copies = parallel._shared_copies(arrays)
    for array, copy in zip(arrays, copies):
        np.testing.assert_array_equal(copy, array)
        assert copy.dtype == array.dtype and copy.ctypes.data % 64 == 0
    copies[0][0] = 7                                   # copies, not views
    assert arrays[0][0] == 0


@needs_fork
def test_run_in_processes_shares_out_the_blas_threads():
    """Each process's products get the threads left over (processes // n), the forked ones
    as this one: not as many as the caller had, on every process at once."""
    from threadpoolctl import threadpool_info

    def blas_threads_now(_):
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
    with blas_threads(3):
        assert parallel.run_in_processes(blas_threads_now, range(2), 4) == [{2}, {2}]


@needs_fork
def test_a_workers_error_is_raised_here_as_a_threads_would_be(tmp_path):
    trainer = trainer_for(tmp_path, **TINY)

    def loss_of(part):
        rows, in_worker = part[0].shape[0], os.getpid() != here
        if in_worker and rows == 3:
            raise FloatingPointError("the loss became nan")
        if in_worker and rows == 2:
            raise Unpicklable()                        # what pickle cannot carry back
        if not in_worker and rows == 1:
            raise ZeroDivisionError("this process's own")
        if in_worker and rows == 4:
            sys.exit(3)                                # the user's code ends its process
        return trainer.part_loss(part)
    here = os.getpid()
    batch = trainer.job.train_batch(np.random.default_rng(0))              # 6 rows
    with parallel.Workers(loss_of, trainer.model, trainer.parameters, trainer.optimizer, 1,
                          parts=6) as workers:
        def step(n, rows=batch):
            return workers.update(loss_of, parallel.split(rows, n, trainer.job.counted), 2, 1)
        with pytest.raises(FloatingPointError, match=r"^the loss became nan$") as raised:
            step(2)
        assert "in loss_of" in str(raised.value.__cause__)     # the worker's traceback
        with pytest.raises(RuntimeError, match=r"^a worker process failed: Unpicklable: "
                                               r"it stays where it was raised$"):
            step(3)
        with pytest.raises(ZeroDivisionError, match=r"^this process's own$"):
            step(6)
        # As itself, as a thread's: not a worker lost "(out of memory?)".
        with pytest.raises(SystemExit) as raised:
            step(2, tuple(np.concatenate([array, array[:2]]) for array in batch))  # 8 rows
        assert raised.value.code == 3
        with pytest.raises(ValueError, match="another loss"):
            workers.update(trainer.part_loss, parallel.split(batch, 2, trainer.job.counted),
                           2, 1)
        with pytest.raises(ValueError, match="7 parts, where these workers were made for at "
                                             "most 6"):
            step(7, tuple(np.concatenate([array, array[:1]]) for array in batch))   # 7 rows
        # after each error the worker is ready for the next step: parts of 6 rows are fine
        twice = tuple(np.concatenate([array, array]) for array in batch)
        ta.manual_seed(1)
        expected = parallel.batch_gradients(trainer.part_loss,
                                            parallel.split(twice, 2, trainer.job.counted),
                                            trainer.parameters, 2)
        ta.manual_seed(1)
        assert step(2, twice)[0] == expected
        os.kill(workers.pids[0], signal.SIGKILL)       # the kernel's out-of-memory killer, say
        with pytest.raises(parallel.WorkerLost, match=r"^a worker process ended without "
                                                     r"an answer \(out of memory\?\); "
                                                     r"train with --threads 1"):
            step(2)
        assert workers.pids == []                      # the others stopped, all waited for


class ShapeError(Exception):
    """An error whose __init__ takes other arguments than its message: it pickles, and pickle
    fails to make it again (it calls ShapeError(message))."""

    def __init__(self, got, expected):
        super().__init__(f"got {got}, expected {expected}")


@needs_fork
def test_an_error_that_does_not_unpickle_comes_back_in_words_with_its_traceback(tmp_path,
                                                                              forked):
    # It came back as the parent's TypeError ("missing 1 required positional argument"),
    # with neither the worker's error nor where it happened.
    here = os.getpid()

    def work(i):
        if os.getpid() != here:
            raise ShapeError((2, 3), (3, 2))
        return i
    said = r"^a worker process failed: ShapeError: got \(2, 3\), expected \(3, 2\)$"
    with pytest.raises(RuntimeError, match=said) as raised:
        parallel.run_in_processes(work, range(2), 2)
    assert "raise ShapeError((2, 3), (3, 2))" in str(raised.value.__cause__)
    assert _all_waited_for(forked)
    # The same from a worker of the training step's.
    trainer = trainer_for(tmp_path, **TINY)

    def loss_of(part):
        if os.getpid() != here:
            raise ShapeError((2, 3), (3, 2))
        return trainer.part_loss(part)
    batch = trainer.job.train_batch(np.random.default_rng(0))
    with parallel.Workers(loss_of, trainer.model, trainer.parameters, trainer.optimizer,
                          1) as workers:
        with pytest.raises(RuntimeError, match=said) as raised:
            workers.update(loss_of, parallel.split(batch, 2, trainer.job.counted), 2, 1)
        assert "raise ShapeError((2, 3), (3, 2))" in str(raised.value.__cause__)


class Unpicklable(Exception):
    def __init__(self):
        super().__init__("it stays where it was raised")
        self.lock = threading.Lock()          # what pickle cannot take


@needs_fork
def test_a_worker_whose_parent_is_gone_stops(tmp_path):
    # A parent that dies without closing them (killed, say) must not leave workers behind.
    script = f"""
import sys
sys.path.insert(0, {os.getcwd()!r})
from tinyformer import parallel, stops
from tinyformer.train import TrainConfig, Trainer
trainer = Trainer.start(TrainConfig(n_layer=1, n_head=2, d_model=16, context=16),
                        {str(tmp_path / "run")!r}, log=lambda *_: None)
workers = parallel.Workers(trainer.part_loss, trainer.model, trainer.parameters,
                           trainer.optimizer, 1)
print(workers.pids[0], flush=True)
import contextlib
import os
os._exit(0)                                  # no close: the worker is orphaned
"""
    import subprocess
    # Its output into a file, not a pipe: a worker left behind would hold the pipe open, and
    # the test would wait for it forever instead of failing.
    with open(tmp_path / "out", "w+") as out:
        subprocess.run([sys.executable, "-c", script], stdout=out, check=True)
        out.seek(0)
        pid = int(out.read().split()[-1])
    for _ in range(100):                               # up to 5 s to notice and stop
        if not _running(pid):
            break
        time.sleep(0.05)
    left_behind = _running(pid)
    if left_behind:                                    # the test fails; the worker goes
        os.kill(pid, signal.SIGKILL)
    assert not left_behind


def _running(pid):
    return os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid)


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0]


def test_training_computes_its_micro_batches_in_processes_where_fork_is_safe(tmp_path):
    trainer = trainer_for(tmp_path, **TINY, iters=2, eval_every=2)
    seen = []
    step = trainer.train_step
    trainer.train_step = lambda threads, workers: seen.append((threads, workers)) or \
        step(threads, workers)
    trainer.train(threads=2)
    assert [threads for threads, _ in seen] == [2, 2]          # each step on the two given
    if parallel.Workers.available():
        assert all(isinstance(w, parallel.Workers) for _, w in seen) and len(seen) == 2
    else:
        assert [w for _, w in seen] == [None, None]



@needs_fork
def test_training_without_a_count_forks_workers_for_the_most_threads_it_tries(tmp_path,
                                                                             monkeypatch):
    # Its first count is one (until the trials choose), but its trials run on two: the
    # worker is there for them from the start, not only once two are chosen.
    monkeypatch.setattr(resources, "usable_cores", lambda: 2)
    trainer = trainer_for(tmp_path, **TINY, iters=2, eval_every=2)
    seen = []
    step = trainer.train_step
    trainer.train_step = lambda threads, workers: seen.append(
        (threads, isinstance(workers, parallel.Workers) and len(workers.pids))) or \
        step(threads, workers)
    trainer.train()
    assert seen == [(1, 1), (2, 1)]     # the trials' counts, the one worker there for both


def test_evaluation_shares_out_its_batches_on_the_threads_the_steps_run_on(tmp_path):
    trainer = trainer_for(tmp_path, **TINY, iters=2, eval_every=1)
    seen = []
    evaluate = trainer.job.evaluate
    trainer.job.evaluate = lambda model, threads: seen.append(threads) or \
        evaluate(model, threads)
    trainer.train(threads=2)
    assert seen == [2, 2, 2]            # before training, and after each of the two steps

@needs_fork
def test_where_fork_fails_training_goes_on_threads(tmp_path, monkeypatch):
    def refused():
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", refused)
    trainer = trainer_for(tmp_path, **TINY, iters=2, eval_every=2)
    seen = []
    step = trainer.train_step
    trainer.train_step = lambda threads, workers: seen.append(workers) or step(threads, workers)
    assert trainer.train(threads=2) == "done"
    assert seen == [None, None]


@needs_fork
def test_a_worker_killed_while_training_is_the_machines_trouble_exit_2(tmp_path, monkeypatch,
                                                                      forked):
    """The kernel's out-of-memory killer is no bug of ours: one line and exit 2, as for the
    other answers of the operating system, no worker left behind."""
    from click.testing import CliRunner

    import tinyformer_cli as cli
    here, part_loss = os.getpid(), Trainer.part_loss

    def killed_in_a_worker(self, part):
        if os.getpid() != here:
            os.kill(os.getpid(), signal.SIGKILL)
        return part_loss(self, part)
    monkeypatch.setattr(Trainer, "part_loss", killed_in_a_worker)
    monkeypatch.setattr(cli.resources, "usable_cores", lambda: 2)      # two, on any machine
    result = CliRunner().invoke(cli.main, ["train", "--n-layer", "1", "--n-head", "2",
                                           "--d-model", "16", "--context", "16", "--iters", "2",
                                           "--threads", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: a worker process ended without an answer (out of memory?); train with "
        f"--threads 1 to compute in one process: tinyformer train --resume {tmp_path / 'run'} "
        "--threads 1"]
    assert _all_waited_for(forked)


@needs_fork
def test_a_child_that_cannot_write_out_its_traceback_still_sends_its_error(forked,
                                                                             monkeypatch):
    """Where memory ran out, formatting the traceback fails too: the child must still send
    its error and exit, never run on into its parent's code."""
    def out_of_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(parallel.traceback, "format_exception", out_of_memory)
    here = os.getpid()

    def work(i):
        if os.getpid() != here:
            raise FloatingPointError("item 1 became nan")
        return i
    with pytest.raises(FloatingPointError, match=r"^item 1 became nan$"):
        parallel.run_in_processes(work, range(2), 2)
    assert os.getpid() == here and _all_waited_for(forked)


@needs_fork
@stopping_signals
def test_ctrl_c_as_a_child_is_forked_is_not_the_childs(tmp_path, monkeypatch, signum):
    """A Ctrl-C (or SIGTERM) that lands in a child before it could ignore it must not raise
    there: the KeyboardInterrupt would run the parent's code on in the child."""
    here, fork = os.getpid(), os.fork

    def fork_then_ctrl_c():
        pid = fork()
        if pid == 0:
            os.kill(os.getpid(), signum)                # the terminal's, to the whole group
        return pid
    monkeypatch.setattr(os, "fork", fork_then_ctrl_c)
    # Python's own Ctrl-C, or the trainer's second SIGTERM: KeyboardInterrupt.
    previous = signal.signal(signum, signal.default_int_handler)
    try:
        results = parallel.run_in_processes(lambda i: (i, os.getpid() != here), range(4), 2)
        trainer = trainer_for(tmp_path, **TINY)
        with parallel.Workers(trainer.part_loss, trainer.model, trainer.parameters,
                              trainer.optimizer, 1) as workers:
            batch = trainer.job.train_batch(np.random.default_rng(0))
            loss, _ = workers.update(trainer.part_loss,
                                     parallel.split(batch, 2, trainer.job.counted), 2, 1)
    finally:
        if os.getpid() != here:                         # a child that ran on: stop it here
            os._exit(3)
        signal.signal(signum, previous)
    assert results == [(0, False), (1, True), (2, False), (3, True)]
    assert np.isfinite(loss)


@needs_fork
@stopping_signals
@pytest.mark.parametrize("forks", ["run_in_processes", "Workers"])
def test_ctrl_c_as_the_parent_forks_leaves_no_child_behind(tmp_path, monkeypatch, forked,
                                                            forks, signum):
    """A Ctrl-C (or SIGTERM) that came as a child was forked raised KeyboardInterrupt in the
    parent before it had noted the child: run_in_processes never waited for it, and Workers
    left every worker it had made waiting on its pipe for as long as the parent lived. Another
    thread is running, as BLAS's do: the signal goes to it, which blocking it in the forking
    thread does not hold back from Python's handler. Held, it is delivered at the block's
    end."""
    here, fork = os.getpid(), os.fork

    def fork_then_ctrl_c():
        pid = fork()                                    # the fixture's: it notes the pid
        if pid and len(forked) == 2:
            os.kill(here, signum)                       # the terminal's, to the whole group
            time.sleep(0.1)                             # taken by the other thread meanwhile
        return pid
    monkeypatch.setattr(os, "fork", fork_then_ctrl_c)
    # Python's own Ctrl-C, or the trainer's second SIGTERM: KeyboardInterrupt.
    previous = signal.signal(signum, signal.default_int_handler)
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            if forks == "run_in_processes":
                parallel.run_in_processes(lambda i: i, range(3), 3)
            else:
                trainer = trainer_for(tmp_path, **TINY)
                parallel.Workers(trainer.part_loss, trainer.model, trainer.parameters,
                                 trainer.optimizer, 2)
        assert len(forked) == 2 and _all_waited_for(forked)
    finally:
        done.set()
        other.join()
        signal.signal(signum, previous)
        for pid in forked:                              # never leave one behind, even failing
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)


@needs_fork
def test_forking_beside_another_thread_shows_no_warning_of_deadlocks(tmp_path, monkeypatch,
                                                                     forked):
    """From Python 3.12, fork in a process with another thread warns that the child may
    deadlock; ours cannot (the comment at the fork says why), so that warning, and only it, is
    not shown. The fork here also warns as 3.12's does, word for word, so that the test means
    the same on 3.11, whose fork does not."""
    fork = os.fork

    def fork_that_warns():
        warnings.warn(f"This process (pid={os.getpid()}) is multi-threaded, use of fork() may "
                      f"lead to deadlocks in the child.", DeprecationWarning, stacklevel=2)
        warnings.warn("another warning, of the fork's", DeprecationWarning, stacklevel=2)
        return fork()                                   # the fixture's: it notes the pid
    monkeypatch.setattr(os, "fork", fork_that_warns)
    trainer = trainer_for(tmp_path, **TINY)
    done = threading.Event()
    other = threading.Thread(target=done.wait)          # a caller's (a notebook's, say)
    other.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert parallel.run_in_processes(lambda i: i, range(2), 2) == [0, 1]
            parallel.Workers(trainer.part_loss, trainer.model, trainer.parameters,
                             trainer.optimizer, 1).close()
    finally:
        done.set()
        other.join()
    assert [str(w.message) for w in caught] == ["another warning, of the fork's"] * 2
    assert len(forked) == 2 and _all_waited_for(forked)


# This test's own fork, whose child only writes a byte and exits: Python 3.12's warning of a
# fork beside other threads (the test session's) is noise here.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_handling_puts_the_handlers_back_in_this_process_only():
    def mine(signum, frame):
        pass
    before = signal.getsignal(signal.SIGTERM)
    read, write = os.pipe()
    with parallel.handling([signal.SIGTERM], mine):
        assert signal.getsignal(signal.SIGTERM) is mine
        pid = os.fork()
        if pid == 0:                           # a child forked inside keeps what it sets
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if pid == 0:
        os.write(write, b"ignored" if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
                 else b"changed")
        os._exit(0)
    os.close(write)
    assert os.waitpid(pid, 0)[1] == 0 and os.read(read, 16) == b"ignored"
    os.close(read)
    assert signal.getsignal(signal.SIGTERM) is before


def test_handling_leaves_the_signals_this_process_ignores_ignored():
    """A signal this process was started to ignore stays ignored: a run started by a script's
    `&` ignores Ctrl-C, and one started under `nohup` SIGHUP, to outlive its terminal. The
    trainer's handler took them over all the same."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in parallel.STOPPING}
    try:
        with parallel.handling(parallel.STOPPING, lambda signum, frame: None):
            inside = [signal.getsignal(signum) for signum in parallel.STOPPING]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert inside == [signal.SIG_IGN] * len(parallel.STOPPING)


@pytest.mark.parametrize("at_call, sent", [(1, signal.SIGTERM),
                                           (len(parallel.STOPPING) + 1, signal.SIGINT)],
                         ids=["while setting", "while putting back"])
def test_a_signal_that_raises_inside_handling_leaves_every_handler_put_back(monkeypatch,
                                                                            at_call, sent):
    """A signal handled right after one of handling()'s swaps (as one landing in that call
    would be), whose handler raises: every handler is still what it was before."""
    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop
    real = signal.signal
    previous = {s: real(s, stop) for s in parallel.STOPPING}
    calls = []

    def swap_then_signal(signum, handler):
        old = real(signum, handler)
        calls.append(signum)
        if len(calls) == at_call:
            os.kill(os.getpid(), sent)                 # handled at the next bytecode
        return old
    monkeypatch.setattr(parallel.signal, "signal", swap_then_signal)
    try:
        with pytest.raises(Stop):
            with parallel.handling(parallel.STOPPING, lambda signum, frame: None):
                time.sleep(0.01)
            time.sleep(0.01)                           # (a signal sent while putting back)
        monkeypatch.undo()
        assert all(signal.getsignal(s) is stop for s in parallel.STOPPING)
    finally:
        monkeypatch.undo()
        for s, handler in previous.items():
            real(s, handler)


def test_handling_outside_the_main_thread_changes_nothing():
    before = [signal.getsignal(s) for s in parallel.STOPPING]
    errors = []

    def in_a_thread():
        try:
            with parallel.handling(parallel.STOPPING, lambda signum, frame: None):
                pass
        except Exception as error:                     # signal.signal refuses other threads
            errors.append(error)
    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert errors == [] and [signal.getsignal(s) for s in parallel.STOPPING] == before


def test_every_signal_held_during_a_fork_is_raised_even_if_the_first_handler_raises():
    class Stop(Exception):
        pass
    raised = []

    def first(signum, frame):
        raised.append(signum)
        raise Stop

    def second(signum, frame):
        raised.append(signum)
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, first),
                signal.SIGTERM: signal.signal(signal.SIGTERM, second)}
    try:
        with pytest.raises(Stop):
            with parallel.forked() as pid:
                if pid == 0:
                    os._exit(0)
                os.kill(os.getpid(), signal.SIGINT)      # held until the block ends
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.01)
                assert raised == []
                os.waitpid(pid, 0)
        assert raised == [signal.SIGINT, signal.SIGTERM]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)



def test_a_signal_that_came_twice_during_a_fork_is_raised_once():
    """As the kernel holds a blocked signal: once however often it came. Two Ctrl-C as a
    worker is forked are one Ctrl-C to the trainer, not a first and a second (stop at once).
    Another thread takes them meanwhile, as BLAS's do, so that each reaches Python's handler."""
    raised = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: raised.append(signum))
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        with parallel.forked() as pid:
            if pid == 0:
                os._exit(0)
            for _ in range(2):
                signal.pthread_kill(other.ident, signal.SIGINT)
                time.sleep(0.05)                    # taken by the handler that holds it
            assert raised == []
            os.waitpid(pid, 0)
        assert raised == [signal.SIGINT]
    finally:
        done.set()
        other.join()
        signal.signal(signal.SIGINT, previous)

@pytest.mark.parametrize("threads", [1, 2])
def test_each_micro_batch_draws_its_own_dropout(threads):
    """Parts that hold the same rows drop out different elements, as the rows of one batch
    computed whole do: each part's generator has a seed of its own."""
    w = Tensor(np.ones(64), requires_grad=True)
    losses = []

    def loss_of(part):
        loss = (ta.functional.dropout(Tensor(part[0]) * w, 0.5) ** 2).sum() * (1 / 64)
        losses.append(loss.item())
        return loss

    rows = np.ones((2, 64))                               # the same row twice: a part each
    parts = parallel.split((rows,), 2, lambda part: len(part[0]))
    ta.manual_seed(0)
    parallel.batch_gradients(loss_of, parts, [w], threads)
    assert len(losses) == 2 and losses[0] != losses[1]


def test_run_in_threads_shares_out_the_blas_threads():
    """Each thread's products get the threads left over (threads // workers), as processes
    do: not all of them on every thread at once, which oversubscribes the cores."""
    with blas_threads(1):
        assert parallel.run_in_threads(lambda _: blas_threads_now(), range(2), 4) == [{2}, {2}]


@pytest.mark.parametrize("fork", [True, False], ids=["processes", "threads"])
def test_a_step_whose_split_leaves_parts_out_computes_each_on_a_micro_batchs_blas_threads(fork):
    # A BERT micro-batch with nothing hidden, or one with no rows, is left out: the threads it
    # would have had went to BLAS, which split the other parts' products and rounded them
    # apart, so such a step on two threads gave other losses than on one.
    model = ta.nn.Linear(3, 1)
    optimizer = ta.optim.SGD(model.parameters(), lr=0.1)
    def loss_of(part):              # 0, plus the BLAS threads the part was computed on
        return model(Tensor(part[0])).sum() * 0 + float(max(blas_threads_now()))
    def counted(part):              # a row of zeros counts nothing
        return int(np.count_nonzero(part[0].any(axis=1)))
    def blas_of_step(rows, micro_batches, threads, workers=None):
        batch = (np.array([[1.0] * 3 if row else [0.0] * 3 for row in rows]),)
        with blas_threads(threads):               # as the trainer's step on `threads` is
            loss, _ = update(loss_of, batch, counted, list(model.parameters()), optimizer,
                             micro_batches, threads, clip=0, workers=workers)
        return loss                               # the parts' weights add up to one
    with contextlib.ExitStack() as stack:
        workers = stack.enter_context(parallel.Workers(
            loss_of, model, list(model.parameters()), optimizer, 1, parts=4)) if fork else None
        assert blas_of_step([1, 0], 2, 2, workers) == 1           # one part of two left
        assert blas_of_step([1, 1, 0, 0], 4, 4, workers) == 1     # two of four
        assert blas_of_step([1, 0], 1, 2, workers) == 2     # a whole batch: the rest to BLAS


def blas_threads_now():
    from threadpoolctl import threadpool_info
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@needs_fork
def test_the_worker_processes_share_out_the_blas_threads(tmp_path):
    """Each process of a step computes its parts on the threads left over (threads // n): one
    apiece where there is a process a thread, for every one of them."""
    trainer = trainer_for(tmp_path, **TINY)

    def loss_of(part):              # the part's loss, plus the BLAS threads it was computed on
        return trainer.part_loss(part) * 0 + float(max(blas_threads_now()))

    batch = trainer.job.train_batch(np.random.default_rng(0))
    parts = parallel.split(batch, 2, trainer.job.counted)
    with parallel.Workers(loss_of, trainer.model, trainer.parameters, trainer.optimizer, 1,
                          parts=2) as workers:
        for threads, each in [(2, 1), (4, 2)]:          # the weights add up to one
            assert workers.update(loss_of, parts, threads, 0)[0] == pytest.approx(each)


def test_an_evaluation_writes_its_recall_and_sample_on_one_blas_thread(tmp_path, monkeypatch):
    """Whatever the trainer's threads: a second gains nothing a token at a time, is twice as
    slow beside a busy program, and could change the text's last bits."""
    trainer = trainer_for(tmp_path, **TINY)
    seen, generate = [], trainer.model.generate
    monkeypatch.setattr(trainer.model, "generate", lambda *args, **kwargs: seen.append(
        blas_threads_now()) or generate(*args, **kwargs))
    with blas_threads(2):
        trainer.evaluate("now", threads=2)
        assert blas_threads_now() == {2}                  # and back to the trainer's after
    assert len(seen) > 1 and all(each == {1} for each in seen)   # the recall's, the sample's


@needs_fork
def test_ctrl_c_while_waiting_for_a_child_stops_the_children_still_at_work(forked,
                                                                           monkeypatch):
    """Python's own Ctrl-C (KeyboardInterrupt) as this process waits for a child's answer:
    that child, and every one after it, is killed, not waited for until it is done."""
    here, ended, waitpid = os.getpid(), [], os.waitpid
    monkeypatch.setattr(os, "waitpid", lambda pid, options: ended.append(
        waitpid(pid, options)) or ended[-1])

    def work(i):
        if os.getpid() != here:
            time.sleep(60)                                # still at work when Ctrl-C comes
        else:       # every child is forked by now: Ctrl-C comes as this process waits
            signal.setitimer(signal.ITIMER_REAL, 0.2)
        return i

    def ctrl_c(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGALRM, ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            parallel.run_in_processes(work, range(3), 3)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(ended) == 2 == len(forked) and _all_waited_for(forked)
    assert all(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
               for _, status in ended)


def test_the_signals_that_stop_a_run_are_the_ones_its_workers_ignore():
    # Two lists of one set: the trainer's rows (stops.STOPS, what each signal does) and the
    # signals the children ignore (parallel.STOPPING). One left out of either would be a
    # signal that stops the run without a checkpoint, or one a worker acts on by itself.
    assert sorted(stops.STOPS) == sorted(parallel.STOPPING)


def test_an_optimizer_with_an_empty_group_shares_its_state():
    # A model without biases or norm gains leaves AdamW's no-decay group empty: the check of
    # how an optimizer makes its state looked at each group's first parameter, and failed.
    w = ta.Tensor(np.ones((2, 2)), requires_grad=True)
    adamw = ta.optim.AdamW([{"params": [w]}, {"params": [], "weight_decay": 0.0}], lr=0.1)
    sgd = ta.optim.SGD([{"params": []}, {"params": [w]}], lr=0.1, momentum=0.9, dampening=0.5)
    assert parallel.shares_its_state(adamw) and not parallel.shares_its_state(sgd)


@needs_fork
def test_workers_keep_the_optimizer_state_that_a_resumed_run_brings():
    # A resumed run's optimizer holds its state (AdamW's moments and step count) before the
    # workers are made: moved into shared memory, it must keep its values, not start again.
    layer = ta.nn.Linear(2, 2)
    adamw = ta.optim.AdamW(layer.parameters(), lr=0.1)
    for p in layer.parameters():
        p.grad = np.ones_like(p.data)
    adamw.step()
    before = adamw.state_dict()
    with parallel.Workers(lambda batch: None, layer, layer.parameters(), adamw, 1, parts=2):
        _assert_same_state(before, adamw.state_dict())
        assert before["state"][0]["step"] == 1
