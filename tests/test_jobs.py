"""What each kind of run learns from: a text's training part for its steps and its held-out
part for evaluations and samples, drawn from the run's own generators."""

from types import SimpleNamespace

import numpy as np
import pytest

import tinyautograd as ta
from tinyautograd import Tensor
from tinyformer.train import TrainConfig, Trainer

TINY = dict(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, eval_iters=3,
            sample_tokens=4)


def job_for(tmp_path, **settings):
    trainer = Trainer.start(TrainConfig(**dict(TINY, **settings)), str(tmp_path / "run"),
                            log=lambda *_: None)
    trainer.close()
    return trainer.job, trainer.model


@pytest.mark.parametrize("model", ["gpt", "bert"])
def test_a_text_job_trains_on_its_first_part_and_evaluates_on_the_rest(tmp_path, model):
    job, _ = job_for(tmp_path, model=model)
    job.recall_prompts = None                       # the recall reads no data: not tested here
    ids = [job.tokenizer.encode(letter)[0] for letter in "abde"]
    rng = np.random.default_rng(0)
    # Letters of the two parts told apart: the training part's a and b, the held-out d and e.
    job.data = SimpleNamespace(train=rng.choice(ids[:2], 400), val=rng.choice(ids[2:], 400))

    def tokens(batch):              # GPT's inputs; the tokens BERT hid (its inputs swap some)
        return batch[0] if model == "gpt" else batch[1][batch[1] >= 0]

    for seed in range(5):
        assert set(tokens(job.train_batch(np.random.default_rng(seed))).ravel()) <= set(ids[:2])
    seen = []

    def loss(model, batch):         # a figure of its own for each batch
        seen.append(tokens(batch))
        return Tensor(np.float32(np.count_nonzero(tokens(batch) == ids[2])))

    job.loss = loss
    figures = job.evaluate(model=None, threads=1)
    assert len(seen) == TINY["eval_iters"]
    assert all(set(batch.ravel()) <= set(ids[2:]) for batch in seen)
    counts = [np.count_nonzero(batch == ids[2]) for batch in seen]
    assert len(set(counts)) > 1                     # else one batch would give the mean too
    assert figures["val_loss"] == pytest.approx(np.mean(counts))


@pytest.mark.parametrize("settings", [{}, dict(model="bert"),
                                      dict(task="reverse", min_len=2, max_len=5, context=None,
                                           eval_iters=None)],
                         ids=["gpt", "bert", "transformer"])
def test_a_sample_is_the_generator_s_it_is_given_and_no_other(tmp_path, settings):
    """The sample printed at an evaluation comes from the generator the trainer hands the job
    (seeded by the run's seed and step): the engine's own, which dropout draws from, does not
    change it, so the same seed prints the same samples."""
    job, model = job_for(tmp_path, **dict(settings, sample_tokens=30))
    samples = []
    for engine_seed, seed in [(1, 3), (2, 3), (1, 4)]:
        ta.manual_seed(engine_seed)
        samples.append(job.sample(model, np.random.default_rng(seed)))
    assert samples[0] == samples[1] != samples[2]


def test_a_tasks_accuracy_is_the_share_of_held_out_pairs_answered_right(tmp_path):
    """Over every held-out pair, in chunks: 500 pairs of lengths 2 to 7, two chunks."""
    job, _ = job_for(tmp_path, task="reverse", min_len=2, max_len=7, context=None,
                     eval_iters=None)
    pairs = job.data.val
    sources = {tuple(row): pair for row, pair in zip(job.data.batch(pairs)[0], pairs)}
    right = {source for source, _ in pairs[::3]}           # a third of them, in each chunk

    def translate(model, src):
        answers = [sources[tuple(row)] for row in src]
        return [target if source in right else None for source, target in answers]

    job.translate = translate
    job.loss = lambda model, batch: Tensor(np.float32(1))
    assert len(pairs) > 250
    assert job.evaluate(model=None)["val_accuracy"] == len(pairs[::3]) / len(pairs)
