"""The backward of layer normalisation

Layer norm keeps the numbers flowing through a deep network at a steady size. For each
position it takes the C features of the vector x, shifts them to mean 0, scales them to
variance 1, then applies a learned scale gamma and shift beta (both of shape (C,)):

    mean  = (1/C) sum_c x_c                  var = (1/C) sum_c (x_c - mean)^2
    rstd  = 1 / sqrt(var + eps)              x_hat = (x - mean) * rstd
    y     = x_hat * gamma + beta

The backward, with g = dL/dy. beta and gamma are easy, because y is just x_hat * gamma + beta
at every position; they are shared by all B * T positions, so their gradient sums over them:

    dL/dbeta  = sum over every axis but the last of g              (C,)
    dL/dgamma = sum over every axis but the last of g * x_hat      (C,)

x is harder: each x_c moves the mean and the variance, and so every x_hat of its row. Working
it through (or trusting the derivation in tinyautograd/functional.py, class LayerNorm) leaves a
compact formula, with d_xhat = g * gamma and every mean taken along the last axis (keepdims):

    dL/dx = rstd * (d_xhat - mean(d_xhat) - x_hat * mean(d_xhat * x_hat))

The two subtracted terms remove the parts of the gradient that normalisation cancels anyway:
adding a constant to a row of x, or scaling it, leaves x_hat unchanged, so dL/dx has zero mean
along each row and no component along x_hat.

Shapes
    x, y, g: (B, T, C) (or (N, C));  gamma, beta: (C,);  mean, rstd: (B, T, 1)

tinyformer's LayerNorm (tinyautograd.nn.LayerNorm, used by every Transformer block) runs this
formula in one fused kernel.

Your task
    Write `LayerNormFunction.backward`, returning dL/dx, dL/dgamma, dL/dbeta, in that order
    and in the shapes of x, gamma and beta.

Check it with:  tinyformer exercises check layer_norm_backward
"""

import numpy as np

from tinyautograd import Function


class LayerNormFunction(Function):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, over the last axis of x."""

    @staticmethod
    def forward(ctx, x, gamma, beta, eps=1e-5):
        mean = x.mean(axis=-1, keepdims=True)                        # (..., 1)
        rstd = 1 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)   # (..., 1)
        x_hat = (x - mean) * rstd                                    # (..., C)
        ctx.saved = (x_hat, rstd, gamma)            # kept for backward
        return x_hat * gamma + beta

    @staticmethod
    def backward(ctx, grad):
        """dL/dx, dL/dgamma, dL/dbeta from grad = dL/dy."""
        x_hat, rstd, gamma = ctx.saved           # (..., C), (..., 1), (C,)
        # TODO: g = grad, the numpy array dL/dy (..., C).
        # TODO: d_beta: sum g over every axis but the last (g.reshape(-1, g.shape[-1]) puts
        #       them all in axis 0).
        # TODO: d_gamma: the same sum of g * x_hat.
        # TODO: d_x: the compact formula from the docstring, with d_xhat = g * gamma.
        raise NotImplementedError


def layer_norm(x, gamma, beta):
    """Layer norm over the last axis through your LayerNormFunction."""
    return LayerNormFunction.apply(x, gamma, beta)
