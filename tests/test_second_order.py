"""Gradients of gradients through whole models: a Hessian-vector product of the training loss of
GPT, BERT and the encoder-decoder Transformer, with their real layers (the Attention op, layer
norm, GELU, cross-entropy with ignore_index and label smoothing) and with the modern block's
(RMS norm, SwiGLU, squared ReLU, grouped-query attention, QK-norm, soft-capped logits, no
biases), equals finite differences of the gradient (float64).

    H v = d/dθ (dL/dθ . v)                       grad(create_graph=True), then grad again
        ~ (dL/dθ(θ + eps v) - dL/dθ(θ - eps v)) / 2 eps      two ordinary backward passes

A backward formula that leaves the graph (a kept array where the recomputed Tensor belongs, a
constant where a Tensor belongs) changes H v, and the comparison fails.

Also: with dropout (the same masks at every evaluation, by the seed); against PyTorch (H v and
the gradient of the gradient's squared norm, a gradient penalty's double backward, through the
torch twins of GPT and BERT); and a third derivative, d/dθ (H v . w), against finite
differences of H v (not against torch, whose layer_norm has a wrong third derivative).
"""

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from test_bert import torch_bert
from test_gpt import torch_gpt
from torch.nn.attention import SDPBackend, sdpa_kernel

import tinyautograd as ta
from tinyautograd import functional as F
from tinyautograd import nn
from tinyformer.bert import BERT
from tinyformer.gpt import GPT
from tinyformer.transformer import Transformer

EPS = 1e-5


def to_float64(model):
    """float64, and weights drawn afresh at a larger scale than initialisation's, so that every
    nonlinearity is far from linear and each layer's share of H v is large."""
    rng = np.random.default_rng(11)
    for name, p in model.named_parameters():
        centre = 1.0 if "norm" in name and name.endswith("weight") else 0.0   # norms' scales
        p.data = centre + 0.5 * rng.standard_normal(p.shape)
    return model


def tokens(shape, vocab, seed):
    return np.random.default_rng(seed).integers(1, vocab, shape)


def seeded(loss_fn):
    """`loss_fn` run after seeding: dropout draws the same masks at every evaluation, so that
    the loss is one function of the weights, which finite differences can differentiate."""
    def run():
        ta.manual_seed(5)
        return loss_fn()
    return run


def gpt_batch():
    idx = tokens((2, 6), 7, seed=1)
    return idx[:, :-1], idx[:, 1:]                         # (inputs, targets)


def gpt_loss(options):
    ta.manual_seed(0)
    model = to_float64(GPT(vocab_size=7, context=6, n_layer=2, n_head=2, d_model=8, **options))
    idx, targets = gpt_batch()
    return model, seeded(lambda: F.cross_entropy(model(idx), targets))


def bert_batch(pad_id):
    idx = tokens((2, 6), 7, seed=2)
    idx[1, 4:] = pad_id                                    # padding: a masked key
    targets = np.where(np.random.default_rng(3).random(idx.shape) < 0.5, idx, -1)
    targets[0, 0] = idx[0, 0]                              # at least one target counts
    return idx, targets                                    # -1: a target to ignore


def bert_loss(options):
    ta.manual_seed(0)
    model = to_float64(BERT(vocab_size=7, context=6, n_layer=2, n_head=2, d_model=8,
                            pad_id=0, **options))
    idx, targets = bert_batch(model.pad_id)
    return model, seeded(lambda: F.cross_entropy(model(idx), targets, ignore_index=-1))


def transformer_loss(options):
    ta.manual_seed(0)
    model = to_float64(Transformer(src_vocab_size=7, tgt_vocab_size=6, context=6, n_layer=1,
                                   n_head=2, d_model=8, pad_id=0, **options))
    src, tgt = tokens((2, 5), 7, seed=4), tokens((2, 5), 6, seed=5)
    src[1, 3:] = model.pad_id                              # padded source: cross-attention mask
    tgt[0, 4] = model.pad_id                               # an ignored target
    return model, seeded(lambda: F.cross_entropy(model(src, tgt[:, :-1]), tgt[:, 1:],
                                                 ignore_index=model.pad_id, label_smoothing=0.1))


def gradients(params, loss_fn):
    return [g.data.copy() for g in ta.grad(loss_fn(), params)]


def check_hessian_vector_product(model, loss_fn):
    params = list(model.parameters())
    rng = np.random.default_rng(7)
    v = [rng.standard_normal(p.shape) for p in params]
    grads = ta.grad(loss_fn(), params, create_graph=True)
    assert all(g.requires_grad for g in grads), "a gradient has no graph of its own"
    along_v = sum((g * vi).sum() for g, vi in zip(grads, v))
    hvp = [h.data for h in ta.grad(along_v, params)]

    saved = [p.data.copy() for p in params]
    for p, s, vi in zip(params, saved, v):
        p.data = s + EPS * vi
    up = gradients(params, loss_fn)
    for p, s, vi in zip(params, saved, v):
        p.data = s - EPS * vi
    down = gradients(params, loss_fn)
    for p, s in zip(params, saved):
        p.data = s
    numeric = [(u - d) / (2 * EPS) for u, d in zip(up, down)]

    largest = max(np.abs(n).max() for n in numeric)
    assert largest > 1e-3, "H v is about 0: the comparison would prove nothing"
    for (name, _), h, n in zip(model.named_parameters(), hvp, numeric):
        np.testing.assert_allclose(h, n, rtol=1e-4, atol=1e-6 * largest, err_msg=f"H v for {name}")


@pytest.mark.parametrize("options", [
    {},                                                          # learned positions, pre-norm
    {"positions": "rope", "norm": "post", "activation": "relu", "tie_weights": False},
    {"positions": "sinusoidal"},
    {"dropout": 0.3, "positions": "rope", "norm": "post"},      # dropout: masks fixed by the seed
    # Llama's block, with QK-norm and soft-capping; nanochat's (no norm weights, relu^2, MQA)
    {"positions": "rope", "rope_theta": 100.0, "normalization": "rmsnorm",
     "activation": "swiglu", "n_kv_head": 1, "qk_norm": True, "logit_softcap": 3.0,
     "bias": False},
    {"positions": "rope", "normalization": "rmsnorm", "rmsnorm_affine": False,
     "activation": "relu2", "qk_norm": True, "logit_softcap": 2.0, "tie_weights": False},
])
def test_gpt_hessian_vector_product(options):
    check_hessian_vector_product(*gpt_loss(options))


@pytest.mark.parametrize("options", [
    {}, {"norm": "pre", "positions": "rope"},
    {"normalization": "rmsnorm", "activation": "swiglu", "n_kv_head": 1, "qk_norm": True,
     "bias": False, "logit_softcap": 3.0},
    {"dropout": 0.3}])
def test_bert_hessian_vector_product(options):
    check_hessian_vector_product(*bert_loss(options))


@pytest.mark.parametrize("options", [
    {}, {"norm": "pre", "activation": "gelu"},
    {"norm": "pre", "normalization": "rmsnorm", "activation": "relu2", "n_kv_head": 1,
     "qk_norm": True, "bias": False, "tie_weights": False},
    {"dropout": 0.3}])
def test_transformer_hessian_vector_product(options):
    check_hessian_vector_product(*transformer_loss(options))


def hessian_vector_product(params, loss_fn, v, create_graph=False):
    grads = ta.grad(loss_fn(), params, create_graph=True)
    return ta.grad(sum((g * vi).sum() for g, vi in zip(grads, v)), params,
                   create_graph=create_graph)


@pytest.mark.parametrize("maker, options", [
    (gpt_loss, {}),
    (gpt_loss, {"positions": "rope", "normalization": "rmsnorm", "activation": "swiglu",
                "n_kv_head": 1, "qk_norm": True, "logit_softcap": 3.0, "bias": False}),
    (gpt_loss, {"positions": "sinusoidal", "norm": "post", "activation": "relu2",
                "normalization": "rmsnorm", "rmsnorm_affine": False, "dropout": 0.3}),
    (bert_loss, {}),
    (transformer_loss, {}),
], ids=["gpt", "gpt modern", "gpt relu2 post-norm dropout", "bert", "transformer"])
def test_a_third_derivative_equals_finite_differences_of_h_v(maker, options):
    # Every backward is written with Tensors, so the backward of a backward is recorded too:
    # d/dθ (H v . w), the third derivative along v and w, equals (H v(θ + eps w) -
    # H v(θ - eps w)) / 2 eps.
    model, loss_fn = maker(options)
    params = list(model.parameters())
    rng = np.random.default_rng(3)
    v, w = ([rng.standard_normal(p.shape) for p in params] for _ in range(2))
    hv = hessian_vector_product(params, loss_fn, v, create_graph=True)
    assert all(h.requires_grad for h in hv), "H v has no graph of its own"
    third = [t.data for t in ta.grad(sum((h * wi).sum() for h, wi in zip(hv, w)), params)]

    saved = [p.data.copy() for p in params]
    moved = []
    for sign in (1, -1):
        for p, s, wi in zip(params, saved, w):
            p.data = s + sign * EPS * wi
        moved.append([h.data for h in hessian_vector_product(params, loss_fn, v)])
    for p, s in zip(params, saved):
        p.data = s
    numeric = [(u - d) / (2 * EPS) for u, d in zip(*moved)]

    largest = max(np.abs(n).max() for n in numeric)
    assert largest > 1e-2, "the third derivative is about 0: the comparison would prove nothing"
    for (name, _), t, n in zip(model.named_parameters(), third, numeric):
        np.testing.assert_allclose(t, n, rtol=1e-4, atol=1e-6 * largest,
                                   err_msg=f"third derivative for {name}")


def ours_second_order(model, loss_fn, v):
    """H v and the gradient of |dL/dθ|^2 (a gradient penalty's double backward), as arrays."""
    params = list(model.parameters())
    grads = ta.grad(loss_fn(), params, create_graph=True)
    hv = ta.grad(sum((g * vi).sum() for g, vi in zip(grads, v)), params, retain_graph=True)
    penalty = ta.grad(sum((g * g).sum() for g in grads), params)
    return [[t.data for t in ts] for ts in (hv, penalty)]


def torch_second_order(loss, params, v):
    """The same two, by torch.autograd. (Not the third derivative: torch's own layer_norm
    gets its third derivative wrong, while its second is right.)"""
    grads = torch.autograd.grad(loss, params, create_graph=True)
    hv = torch.autograd.grad(sum((g * torch.as_tensor(vi)).sum() for g, vi in zip(grads, v)),
                             params, retain_graph=True)
    penalty = torch.autograd.grad(sum((g * g).sum() for g in grads), params)
    return [[t.numpy() for t in ts] for ts in (hv, penalty)]


@pytest.mark.parametrize("maker, batch, torch_model", [
    (gpt_loss, gpt_batch, torch_gpt), (bert_loss, lambda: bert_batch(0), torch_bert)],
    ids=["gpt", "bert"])
def test_h_v_and_a_gradient_penaltys_gradient_equal_torchs(maker, batch, torch_model):
    # The models written directly in torch (tests/test_gpt.py, tests/test_bert.py) read our
    # float64 weights; torch's fused attention has no double backward, its math one has.
    model, loss_fn = maker({})
    rng = np.random.default_rng(7)
    v = [rng.standard_normal(p.shape) for p in model.parameters()]
    ours = ours_second_order(model, loss_fn, v)
    idx, targets = batch()
    with sdpa_kernel(SDPBackend.MATH):
        logits, params = torch_model(model, idx)
        loss = TF.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                torch.as_tensor(targets).reshape(-1), ignore_index=-1)
        theirs = torch_second_order(loss, [params[name] for name, _ in model.named_parameters()],
                                    v)
    for what, a, b in zip(("H v", "gradient penalty's gradient"), ours, theirs):
        largest = max(np.abs(t).max() for t in b)
        for (name, _), x, y in zip(model.named_parameters(), a, b):
            np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-12 * largest,
                                       err_msg=f"{what} for {name}")


def test_a_gradient_penalty_trains_through_the_whole_model():
    # The README's promise, on a GPT: the squared norm of the gradient is itself a loss whose
    # gradient exists for every parameter and lowers it.
    model, loss_fn = gpt_loss({})
    params = list(model.parameters())

    def penalty():
        return sum((g * g).sum() for g in ta.grad(loss_fn(), params, create_graph=True))

    before = penalty()
    steps = ta.grad(before, params)
    assert all(s is not None for s in steps)
    for p, s in zip(params, steps):
        p.data = p.data - 1e-3 * s.data
    assert penalty().item() < before.item()



@pytest.mark.parametrize("gradient", [
    lambda x: ta.grad((x * x).sum(), x)[0],                          # create_graph forgotten
    lambda x: ta.grad((3 * x).sum(), x, create_graph=True)[0],       # linear: a constant
], ids=["create_graph forgotten", "a constant gradient"])
def test_a_gradient_without_a_graph_says_how_to_get_one(gradient):
    # Differentiating a gradient that has no graph is refused, as torch refuses it; the message
    # names the usual cause (create_graph forgotten) and the other (the derivative is zero).
    x = ta.Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    g = gradient(x)
    for differentiate in (lambda: ta.grad(g.sum(), x), lambda: g.sum().backward()):
        with pytest.raises(RuntimeError, match=r"does not require a gradient: .*"
                                               r"create_graph=True.*its own gradient is zero"):
            differentiate()


def test_a_meta_learning_step_reaches_the_original_weights_the_way_the_error_says():
    # MAML's inner step: the module runs on weights minus a step (a Tensor with a graph), and
    # the outer loss is differentiated back to the original weights. Assigning the Tensor is
    # refused; nn.Parameter(value) would cut the graph, so the error says the way that keeps it.
    rng = np.random.default_rng(0)
    x, y, x2, y2 = (rng.standard_normal(shape) for shape in [(4, 3), (4, 2), (5, 3), (5, 2)])
    layer = nn.Linear(3, 2)
    weight = layer.weight
    weight.data = rng.standard_normal((3, 2))
    layer.bias.data = rng.standard_normal(2)
    (step,) = ta.grad(((layer(ta.Tensor(x, dtype=np.float64)) - y) ** 2).sum(), weight,
                      create_graph=True)
    with pytest.raises(TypeError, match=r"nn.Parameter\(value\) would cut from its graph, "
                                        r"delete the parameter first, del module.weight, then"):
        layer.weight = weight - 0.1 * step
    del layer.weight
    layer.weight = weight - 0.1 * step
    (outer,) = ta.grad(((layer(ta.Tensor(x2, dtype=np.float64)) - y2) ** 2).sum(), weight)

    def outer_loss(w):                                   # the same, in numpy
        w = w - 0.1 * 2 * x.T @ (x @ w + layer.bias.data - y)
        return ((x2 @ w + layer.bias.data - y2) ** 2).sum()

    numeric = np.zeros((3, 2))
    for i in np.ndindex(numeric.shape):
        e = np.zeros((3, 2))
        e[i] = EPS
        numeric[i] = (outer_loss(weight.data + e) - outer_loss(weight.data - e)) / (2 * EPS)
    np.testing.assert_allclose(outer.data, numeric, rtol=1e-6)


# One switch at a time, each of its values, in each model: the contract's "every model can be
# differentiated twice" holds for every block the switches build, not only for the mixes above.
SWITCHES = [*({"positions": kind} for kind in ("learned", "sinusoidal", "rope", "none")),
            {"norm": "pre"}, {"norm": "post"},
            {"normalization": "rmsnorm"}, {"normalization": "rmsnorm", "rmsnorm_affine": False},
            *({"activation": kind} for kind in ("gelu", "relu", "swiglu", "relu2")),
            {"n_kv_head": 1}, {"qk_norm": True}, {"logit_softcap": 2.0}, {"bias": False},
            {"dropout": 0.3}, {"tie_weights": False}]
MAKERS = {"gpt": (gpt_loss, GPT), "bert": (bert_loss, BERT),
          "transformer": (transformer_loss, Transformer)}


def switched(name, switch):
    """The switch, unless it is the model's own default (that case is {} above)."""
    defaults = inspect.signature(MAKERS[name][1]).parameters
    return any(defaults[key].default != value for key, value in switch.items())


@pytest.mark.parametrize("name, switch", [
    (name, switch) for name in MAKERS for switch in SWITCHES if switched(name, switch)],
    ids=lambda x: x if isinstance(x, str) else ",".join(f"{k}={v}" for k, v in x.items()))
def test_a_gradient_penaltys_gradient_equals_finite_differences_for_every_switch(name, switch):
    # The gradient of |dL/dθ|^2 (a gradient penalty's double backward) along a random
    # direction u, against finite differences of |dL/dθ|^2 itself: (-f(2h) + 8 f(h) - 8 f(-h)
    # + f(-2h)) / 12 h, whose error falls as h^4, so that one number, all of the parameters'
    # second derivatives summed along u, is held to 1e-6. A backward that leaves the graph
    # under create_graph (a kept array where a recomputed Tensor belongs) misses a term.
    model, loss_fn = MAKERS[name][0](switch)
    params = list(model.parameters())
    rng = np.random.default_rng(1)
    u = [rng.standard_normal(p.shape) for p in params]
    grads = ta.grad(loss_fn(), params, create_graph=True)
    penalty_grads = ta.grad(sum((g * g).sum() for g in grads), params)
    along_u = sum((g.data * ui).sum() for g, ui in zip(penalty_grads, u))

    saved = [p.data.copy() for p in params]

    def penalty_at(t):                                      # |dL/dθ|^2 at θ + t u
        for p, s, ui in zip(params, saved, u):
            p.data = s + t * ui
        return sum((g.data ** 2).sum() for g in ta.grad(loss_fn(), params))

    h = 1e-6           # small: a ReLU whose input crosses 0 within 2h would break the formula
    numeric = (-penalty_at(2 * h) + 8 * penalty_at(h) - 8 * penalty_at(-h)
               + penalty_at(-2 * h)) / (12 * h)
    for p, s in zip(params, saved):
        p.data = s
    assert abs(numeric) > 1e-2, "the derivative is about 0: the comparison would prove nothing"
    assert along_u == pytest.approx(numeric, rel=1e-6)
