"""The feed-forward network and GELU

Attention moves information between positions. The feed-forward network (FFN) is where each
position then computes on what it gathered, on its own: the same small two-layer MLP is
applied to every position independently.

    h   = x @ W1 + b1          # (B, T, C)    -> (B, T, d_ff)   widen, usually d_ff = 4 C
    h   = gelu(h)              # (B, T, d_ff)                   the non-linearity
    out = h @ W2 + b2          # (B, T, d_ff) -> (B, T, C)      back to the residual width

W1 is (C, d_ff) and W2 is (d_ff, C), used as x @ W (tinyautograd.nn.Linear's convention); b1
is (d_ff,) and b2 is (C,), and they broadcast over B and T.

The original Transformer used ReLU, max(x, 0). GPT-2 and BERT use GELU, a smooth version of it:
GELU(x) = x * Phi(x), where Phi is the standard normal CDF. Large positive x pass through
unchanged, large negative x become 0, and near zero it curves instead of kinking. Like
tinyautograd (`Tensor.gelu`, tinyautograd/ops.py) we use the tanh approximation, the one GPT-2
was trained with (PyTorch calls it GELU(approximate='tanh')):

    gelu(x) = 0.5 * x * (1 + tanh( sqrt(2/pi) * (x + 0.044715 * x^3) ))

Worked values:  gelu(-2) = -0.0454,  gelu(-1) = -0.1588,  gelu(0) = 0,  gelu(1) = 0.8412,
gelu(2) = 1.9546. Notice gelu(-1) is slightly negative: unlike ReLU, GELU lets a little
through below zero.

Write `gelu` from Tensor operations (*, +, .tanh(), x * x * x for the cube), so that autograd
differentiates it for you: the checker compares its values and its gradient with
Tensor.gelu. Then `feed_forward` uses it. tinyformer/layers.py's `FeedForward` is this network
with two nn.Linear layers; the checker loads your weights into one and compares.

Your task
    Write `gelu` and `feed_forward`.

Check it with:  tinyformer exercises check feed_forward
"""

import math  # math.sqrt, math.pi


def gelu(x):
    """The tanh approximation of GELU, elementwise, built from Tensor operations."""
    # TODO: inner = sqrt(2/pi) * (x + 0.044715 * x^3); return 0.5 * x * (1 + tanh(inner)).
    #       math.sqrt(2 / math.pi) is a plain number; x.tanh() is a Tensor method.
    raise NotImplementedError


def feed_forward(x, w1, b1, w2, b2):
    """(B, T, C) -> (B, T, C): Linear(C, d_ff), GELU, Linear(d_ff, C), at every position."""
    # TODO: widen with w1 and b1, apply your gelu, project back with w2 and b2.
    raise NotImplementedError
