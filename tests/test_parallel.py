"""Micro-batches side by side: the batch's gradient is the same however the batch is cut and
however many threads compute it, dropout included; and the engine's modes and random numbers
belong to each thread."""

import threading
import warnings

import numpy as np
import pytest

import tinyautograd as ta
from tinyformer import parallel
from tinyformer.train import TrainConfig, Trainer

TINY = dict(n_layer=1, n_head=2, d_model=16, context=16, batch_size=6, eval_iters=1,
            sample_tokens=4)
JOBS = {
    "gpt": TINY,
    "bert": dict(TINY, model="bert"),              # the hidden tokens differ from part to part
    "transformer": dict(n_layer=1, n_head=2, d_model=16, batch_size=6, task="reverse",
                        min_len=2, max_len=7),     # padding differs from part to part
}


def trainer_for(tmp_path, **settings):
    return Trainer.start(TrainConfig(**settings), str(tmp_path / "run"), log=lambda *_: None)


def gradients(trainer, batch, micro_batches, threads):
    """(the loss, every parameter's gradient) of one batch, computed in micro-batches."""
    parts = parallel.split(batch, micro_batches, trainer.job.counted)
    trainer.optimizer.zero_grad()
    loss = parallel.batch_gradients(lambda part: trainer.job.loss(trainer.model, part), parts,
                                    trainer.parameters, threads)
    return loss, [None if p.grad is None else p.grad.copy() for p in trainer.parameters]


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


@pytest.mark.parametrize("job", JOBS)
def test_evaluation_on_two_threads_gives_the_same_figures_and_records_no_graph(tmp_path, job,
                                                                              monkeypatch):
    trainer = trainer_for(tmp_path, **dict(JOBS[job], eval_iters=4))
    trainer.model.eval()
    alone = trainer.job.evaluate(trainer.model, 1)
    recording = []
    loss = trainer.job.loss

    def loss_and_mode(model, batch):
        recording.append(ta.is_grad_enabled())
        return loss(model, batch)

    monkeypatch.setattr(trainer.job, "loss", loss_and_mode)
    with ta.no_grad():                              # as Trainer.evaluate calls it
        assert trainer.job.evaluate(trainer.model, 2) == alone
    assert recording and not any(recording)         # the workers too ran without a graph


def test_the_workers_keep_the_callers_numpy_error_settings():
    def overflow(_):
        return np.float32(3e38) * np.float32(10)          # inf, and numpy's overflow warning

    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # a warning anywhere fails the test
        with np.errstate(over="ignore"):                   # as Trainer.train runs its steps
            assert parallel.run_in_threads(overflow, range(4), 2) == [np.inf] * 4
        with pytest.raises(RuntimeWarning):                # outside it, numpy warns again
            parallel.run_in_threads(overflow, range(4), 2)
