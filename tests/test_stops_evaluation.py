"""A stop asked for during an evaluation says what it waits for: that evaluation (which, with
a large --eval-iters, takes as long as many steps), not a step already done. It waits for it,
so that a run stopped and resumed records the same figures as one never stopped."""

import os
import signal

from tinyformer import rundir
from tinyformer.train import TrainConfig, Trainer

TINY = dict(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, eval_iters=2,
            sample_tokens=10, iters=6, eval_every=2)


def run_stopped(directory, monkeypatch, during_step=None, during_evaluation=None):
    """A run sent a real Ctrl-C (SIGINT) as step `during_step` begins, or as the evaluation
    after step `during_evaluation` begins. Returns what train() returned, the steps whose
    evaluation ran to its end, and what the run said."""
    said = []
    trainer = Trainer.start(TrainConfig(**TINY), str(directory), log=said.append)
    evaluate, step = trainer.job.evaluate, trainer.train_step
    finished = []
    def signal_then_evaluate(model, threads=1):
        if trainer.step == during_evaluation:
            os.kill(os.getpid(), signal.SIGINT)
        figures = evaluate(model, threads)
        finished.append(trainer.step)
        return figures
    def signal_then_step(threads=1, workers=None):
        if trainer.step + 1 == during_step:
            os.kill(os.getpid(), signal.SIGINT)
        return step(threads, workers)
    monkeypatch.setattr(trainer.job, "evaluate", signal_then_evaluate)
    monkeypatch.setattr(trainer, "train_step", signal_then_step)
    return trainer.train(threads=1), finished, "\n".join(said)


def test_a_ctrl_c_during_an_evaluation_says_it_finishes_the_evaluation(tmp_path, monkeypatch):
    outcome, finished, said = run_stopped(tmp_path, monkeypatch, during_evaluation=2)
    assert outcome == "interrupted" and finished == [0, 2]
    assert "Ctrl-C: finishing this evaluation and saving a checkpoint (Ctrl-C again" in said
    assert "finishing this step" not in said         # the step was done already
    assert rundir.read_config(str(tmp_path))["step"] == 2
    assert "val_loss" in rundir.read_metrics(tmp_path / "metrics.jsonl")[-1]


def test_a_ctrl_c_during_a_step_still_says_it_finishes_the_step(tmp_path, monkeypatch):
    # ... and the evaluation after it is not announced as the step: the message is the
    # step's again once an evaluation is over.
    outcome, finished, said = run_stopped(tmp_path, monkeypatch, during_step=3)
    assert outcome == "interrupted" and finished == [0, 2]
    assert "Ctrl-C: finishing this step and saving a checkpoint" in said
    assert "evaluation and saving" not in said
