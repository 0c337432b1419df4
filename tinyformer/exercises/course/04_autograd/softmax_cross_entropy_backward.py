"""The backward of softmax and cross-entropy

A language model ends in logits z (N, V): one score per vocabulary entry for each of N
positions. Softmax turns a row into probabilities, and cross-entropy is the mean of
-log(probability of the right token):

    p[n, c] = exp(z[n, c]) / sum_c' exp(z[n, c'])               softmax along the last axis
    loss    = -(1/N) sum_n log p[n, t[n]]                       t: (N,) integer targets

Softmax alone. Each output depends on every input of its row: dp_c/dz_j = p_c (delta_cj - p_j).
Multiplying by the incoming gradient g = dL/dp and summing over c gives a compact rule:

    dL/dz = p * (g - sum_c(g * p))           the sum along the last axis, kept as (N, 1)

Softmax followed by cross-entropy. Here most of the algebra cancels and leaves a famous result:

    dloss/dz[n, c] = (p[n, c] - onehot(t)[n, c]) / N

"the predicted probabilities minus the truth": each wrong token's score is pushed down by
its probability, the right one pushed up by 1 - p. Example with N = 1, p = [0.7, 0.2, 0.1] and
t = [0]: the gradient is [-0.3, 0.2, 0.1]. The loss is the last step of the computation, but
the gradient arriving at it (`grad`, a single number, usually 1.0) must still multiply the
result: (2 * loss).backward() doubles every gradient.

This is why tinyautograd fuses them into one Function, `CrossEntropy` in
tinyautograd/functional.py: one subtraction instead of backpropagating through exp, sum, log
and an index. In `forward` the probabilities are stored on ctx for the backward.

Shapes
    z, p, grad of Softmax: (N, V) or (B, T, V), softmax along the last axis
    logits: (N, V);  targets: (N,) integers;  loss: () a single number

Your task
    Write `Softmax.backward`, then `SoftmaxCrossEntropy.backward`. `grad` is a numpy array
    here: return arrays.

Check it with:  tinyformer exercises check softmax_cross_entropy_backward
"""

import numpy as np

from tinyautograd import Function


def _softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)             # the same result, no overflow
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


class Softmax(Function):
    """p = softmax(z) along the last axis."""

    @staticmethod
    def forward(ctx, z):
        ctx.p = _softmax(z)                                  # (..., V), kept for backward
        return ctx.p

    @staticmethod
    def backward(ctx, grad):
        """dL/dz from grad = dL/dp."""
        # TODO: with g = grad (..., V) and p = ctx.p (..., V), return
        #       p * (g - the sum of g * p along the last axis, keepdims=True).
        raise NotImplementedError


class SoftmaxCrossEntropy(Function):
    """The mean cross-entropy of logits (N, V) against integer targets (N,)."""

    @staticmethod
    def forward(ctx, logits, targets):
        ctx.p = _softmax(logits)                             # (N, V)
        ctx.targets = targets                                # (N,)
        n = len(targets)
        return np.asarray(-np.log(ctx.p[np.arange(n), targets]).mean())

    @staticmethod
    def backward(ctx, grad):
        """dloss/dlogits from grad = d(final result)/dloss, a single number. Return just that
        array: `targets` reach forward as a setting (a keyword of apply), not as an input, so
        logits is the only input and gets the only gradient."""
        # TODO: start from a copy of ctx.p, subtract 1 at [row n, column targets[n]] for every
        #       row, divide by N, and multiply by grad.
        raise NotImplementedError


def softmax(z):
    """softmax(z) along the last axis through your Softmax."""
    return Softmax.apply(z)


def softmax_cross_entropy(logits, targets):
    """Mean cross-entropy through your SoftmaxCrossEntropy (targets are not differentiated)."""
    return SoftmaxCrossEntropy.apply(logits, targets=targets)
