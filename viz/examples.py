"""Small computations worth drawing, for `tinyformer graph --example NAME`.

Each example builds its own tiny, seeded model and input and returns what draw_graph needs:
the loss (a scalar Tensor whose graph is drawn), the module whose parameters name the leaves,
and the named inputs. They are small on purpose: a picture is for reading.
"""

import numpy as np

import tinyautograd as ta
from tinyautograd import functional as F
from tinyautograd import nn


class Example:
    def __init__(self, loss, params, inputs):
        self.loss, self.params, self.inputs = loss, params, inputs


def mlp():
    """A two-layer perceptron and its cross-entropy on a batch of 4, written as
    -mean(log_softmax(logits)[i, label_i]) rather than the fused kernel, so that its backward
    graph can be drawn too (a fused kernel's backward is one numpy step, not a graph)."""
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    x = ta.Tensor(np.random.default_rng(0).standard_normal((4, 3)))
    labels = np.array([0, 1, 1, 0])
    log_probs = model(x).log_softmax(axis=-1)                      # (4, 2)
    return Example(-log_probs[np.arange(4), labels].mean(), model, {"x": x})


class _LayerNorm(nn.Module):
    """Layer norm written out op by op, as the fused kernel computes it in one node:
    y = (x - mean) / sqrt(var + eps) * weight + bias."""

    def __init__(self, dim, eps=1e-5):
        self.eps = eps
        self.weight = nn.Parameter(np.ones(dim))
        self.bias = nn.Parameter(np.zeros(dim))

    def forward(self, x):
        centred = x - x.mean(axis=-1, keepdims=True)               # (B, C)
        var = (centred ** 2).mean(axis=-1, keepdims=True)          # (B, 1), ddof=0
        return centred / (var + self.eps).sqrt() * self.weight + self.bias


def layernorm():
    """Layer norm, written out op by op, then a sum."""
    norm = _LayerNorm(4)
    x = ta.Tensor(np.random.default_rng(0).standard_normal((2, 4)), requires_grad=True)
    return Example(norm(x).sum(), norm, {"x": x})


def attention():
    """Multi-head self-attention (2 heads) over 4 positions with the causal mask."""
    from tinyformer.attention import MultiHeadAttention, causal_mask
    attn = MultiHeadAttention(d_model=8, n_head=2)
    x = ta.Tensor(np.random.default_rng(0).standard_normal((1, 4, 8)), requires_grad=True)
    return Example(attn(x, mask=causal_mask(4)).sum(), attn, {"x": x})


def gpt():
    """A one-layer GPT and its next-token loss on a batch of 2 sequences of 8 tokens. It uses
    the fused kernels (attention, layer norm, cross-entropy), so only its forward graph draws."""
    from tinyformer.gpt import GPT
    model = GPT(vocab_size=10, context=8, n_layer=1, n_head=2, d_model=8)
    idx = np.random.default_rng(0).integers(0, 10, (2, 9))
    return Example(F.cross_entropy(model(idx[:, :-1]), idx[:, 1:]), model, {})


EXAMPLES = {"mlp": mlp, "attention": attention, "layernorm": layernorm, "gpt": gpt}


def example(name, seed=0):
    """The example called `name`, built from a seeded engine (the same picture every time)."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")
    ta.manual_seed(seed)
    return EXAMPLES[name]()
