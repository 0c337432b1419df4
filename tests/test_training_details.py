"""The details training depends on, each tested so that dropping it fails a test: they change
no shape and raise no error, so nothing else would notice.

- GPT-2's initialisation: the projections that write into the residual stream (attention's
  output, the feed-forward's second layer) start at 0.02 / sqrt(2 n_layer), the other matrices
  at 0.02, biases at 0 and the norms at weight 1, bias 0;
- the trainer clips the gradient norm before the optimizer's step;
- each step starts from zero gradients (backward adds to what is there);
- the optimizer decays the matrices by --weight-decay, and nothing else;
- every residual branch of every layer goes through dropout, and so do the embeddings of every
  model;
- sampling divides the logits by the temperature (a higher temperature flattens).
"""

import math

import numpy as np
import pytest

import tinyautograd as ta
from tinyformer.bert import BERT
from tinyformer.blocks import DecoderLayer, EncoderLayer, residual
from tinyformer.gpt import GPT
from tinyformer.sampling import sample_next
from tinyformer.transformer import Transformer

RESIDUAL_PROJECTIONS = ("attn.out.weight", "ffn.fc2.weight")   # cross_attn.out too


def relative_error(a, b):
    return abs(a - b) / abs(b)


# ------------------------------------------------------------------------------ initialisation


@pytest.mark.parametrize("n_layer", [1, 4])
def test_gpt2_initialisation_scales_the_residual_projections_by_depth(n_layer):
    ta.manual_seed(0)
    model = GPT(vocab_size=50, context=64, n_layer=n_layer, n_head=4, d_model=96)
    residual_std = 0.02 / math.sqrt(2 * n_layer)
    seen = {"residual": 0, "matrix": 0, "norm": 0, "bias": 0}
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            kind, expected = ("norm", 0.0) if "norm" in name else ("bias", 0.0)
            np.testing.assert_array_equal(p.data, expected, err_msg=name)
        elif "norm" in name:
            kind = "norm"
            np.testing.assert_array_equal(p.data, 1.0, err_msg=name)
        else:
            kind = "residual" if name.endswith(RESIDUAL_PROJECTIONS) else "matrix"
            std = residual_std if kind == "residual" else 0.02
            assert relative_error(p.data.std(), std) < 0.05, (name, p.data.std(), std)
            assert abs(p.data.mean()) < 0.1 * std, name
        seen[kind] += 1
    assert seen["residual"] == 2 * n_layer and seen["matrix"] >= 4 * n_layer
    assert seen["norm"] and seen["bias"]


# ------------------------------------------------------------------------------ clipping


def test_the_trainer_clips_the_gradient_norm_before_the_step(tmp_path):
    from tinyformer.train import TrainConfig, Trainer

    def gradient_norm_after_a_step(clip, out):
        config = TrainConfig(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4,
                             iters=1, eval_iters=1, clip=clip, sample_tokens=1).resolved()
        trainer = Trainer.start(config, str(tmp_path / out), log=lambda *a: None)
        trainer.train_step()               # the gradients stay on the parameters after it
        return math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum())
                             for p in trainer.model.parameters()))

    unclipped = gradient_norm_after_a_step(0, "unclipped")
    assert unclipped > 0.01                # so that clipping to 1e-3 changes it
    assert gradient_norm_after_a_step(1e-3, "clipped") == pytest.approx(1e-3, rel=1e-4)


def test_the_update_follows_the_clipped_gradient():
    # Seen with SGD, which moves each weight by lr times its gradient (AdamW hardly notices a
    # gradient's scale): with lr 1 the weights move by the clipped gradient, of norm `clip`.
    from tinyautograd.functional import cross_entropy
    from tinyautograd.optim import SGD
    from tinyformer.train import update

    ta.manual_seed(0)
    model = GPT(vocab_size=7, context=4, n_layer=1, n_head=2, d_model=8)
    parameters = list(model.parameters())
    before = [p.data.astype(np.float64) for p in parameters]
    x, y = np.random.default_rng(0).integers(0, 7, (2, 4, 4))
    _, norm = update(lambda part: cross_entropy(model(part[0]), part[1]), (x, y),
                     lambda part: part[1].size, parameters, SGD(parameters, lr=1.0), clip=1e-3)
    moved = math.sqrt(sum(((p.data - b) ** 2).sum() for p, b in zip(parameters, before)))
    assert norm > 1e-2                     # so that clipping to 1e-3 changes it
    assert moved == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_each_step_starts_from_zero_gradients(micro_batches):
    # With one micro-batch the gradient comes from backward, which adds to .grad: a step that
    # did not zero it first would follow the sum of every batch's gradient so far.
    from tinyautograd.functional import cross_entropy
    from tinyautograd.optim import SGD
    from tinyformer.train import update

    ta.manual_seed(0)
    model = GPT(vocab_size=7, context=4, n_layer=1, n_head=2, d_model=8)
    parameters = list(model.parameters())
    batch = tuple(np.random.default_rng(0).integers(0, 7, (2, 4, 4)))       # x, y (4, 4)
    def step():                              # lr 0: the weights, so the gradient, stay
        update(lambda part: cross_entropy(model(part[0]), part[1]), batch,
               lambda part: part[1].size, parameters, SGD(parameters, lr=0.0), micro_batches,
               clip=0)
        return [p.grad.copy() for p in parameters]
    first, second = step(), step()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_the_trainer_decays_the_matrices_by_weight_decay_and_nothing_else(tmp_path):
    from tinyformer.train import TrainConfig, Trainer
    config = TrainConfig(n_layer=1, n_head=2, d_model=16, context=16, batch_size=4, iters=1,
                         weight_decay=0.05)
    trainer = Trainer.start(config, str(tmp_path), log=lambda *a: None)
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            assert group["weight_decay"] == (0.05 if p.ndim >= 2 else 0.0)
    trainer.close()


# ------------------------------------------------------------------------------ dropout


def test_residual_drops_the_sublayer_output_only():
    x = ta.Tensor(np.full((2, 50, 8), 3.0))
    ta.manual_seed(0)
    dropout = ta.nn.Dropout(0.5)
    for placement in ("pre", "post"):
        out = residual(x, lambda h: ta.ones(h.shape), norm=lambda h: h, dropout=dropout,
                       placement=placement)
        branch = out.data - x.data                 # the sub-layer's ones, dropped or doubled
        assert set(np.unique(branch)) == {0.0, 2.0}


@pytest.mark.parametrize("layer, n_sublayers", [
    (lambda: EncoderLayer(8, 2, 16, dropout=0.3), 2),
    (lambda: DecoderLayer(8, 2, 16, dropout=0.3, cross_attention=True), 3),
    (lambda: DecoderLayer(8, 2, 16, dropout=0.3, cross_attention=False), 2),
])
def test_every_residual_branch_of_a_layer_goes_through_its_dropout(monkeypatch, layer,
                                                                    n_sublayers):
    import tinyformer.blocks as blocks
    calls = []

    def recording(x, sublayer, norm, dropout, placement):
        calls.append(dropout.p)
        return residual(x, sublayer, norm, dropout, placement)

    monkeypatch.setattr(blocks, "residual", recording)
    x = ta.Tensor(np.random.default_rng(0).standard_normal((1, 3, 8)))
    built = layer()
    if isinstance(built, DecoderLayer) and n_sublayers == 3:
        built(x, memory=x)
    else:
        built(x)
    assert calls == [0.3] * n_sublayers


def silence_the_residual_branches(model):
    """Zero the projections that write into the residual stream: every layer then adds 0, and
    the model's output depends on its embeddings alone (through the norms and the head)."""
    for name, p in model.named_parameters():
        if name.endswith(RESIDUAL_PROJECTIONS) or name.endswith(("attn.out.bias", "ffn.fc2.bias")):
            p.data = np.zeros_like(p.data)
    return model


@pytest.mark.parametrize("build, run", [
    (lambda: GPT(vocab_size=11, context=8, n_layer=2, n_head=2, d_model=16, dropout=0.5),
     lambda model, idx: model(idx)),
    (lambda: BERT(vocab_size=11, context=8, n_layer=2, n_head=2, d_model=16, dropout=0.5),
     lambda model, idx: model(idx)),
    (lambda: Transformer(11, 11, context=8, n_layer=1, n_head=2, d_model=16, dropout=0.5),
     lambda model, idx: model(idx, idx)),
], ids=["gpt", "bert", "transformer"])
def test_the_embeddings_go_through_dropout_in_training(build, run):
    ta.manual_seed(0)
    model = silence_the_residual_branches(build())
    idx = np.random.default_rng(1).integers(1, 11, (2, 8))
    model.eval()
    evaluated = run(model, idx).data
    np.testing.assert_array_equal(run(model, idx).data, evaluated)   # eval: nothing random
    model.train()
    # The layers add nothing, so only a dropout on the embeddings can make training differ.
    assert not np.allclose(run(model, idx).data, evaluated)


# ------------------------------------------------------------------------------ temperature


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sampling_divides_the_logits_by_the_temperature(temperature):
    logits = np.array([[0.0, 1.0]] * 20_000)
    picked = sample_next(logits, temperature=temperature, rng=np.random.default_rng(0))
    expected = 1 / (1 + math.exp(-1.0 / temperature))    # softmax([0, 1] / T)[1]
    assert abs(picked.mean() - expected) < 0.01, (picked.mean(), expected)
