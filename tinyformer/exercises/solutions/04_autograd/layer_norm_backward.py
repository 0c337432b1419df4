"""Reference solution: the backward of layer normalisation."""

import numpy as np

from tinyautograd import Function


class LayerNormFunction(Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, eps=1e-5):
        mean = x.mean(axis=-1, keepdims=True)
        rstd = 1 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)
        x_hat = (x - mean) * rstd
        ctx.saved = (x_hat, rstd, gamma)
        return x_hat * gamma + beta

    @staticmethod
    def backward(ctx, grad):
        g = grad
        x_hat, rstd, gamma = ctx.saved
        rows = g.reshape(-1, g.shape[-1])                            # (N, C)
        d_beta = rows.sum(axis=0)
        d_gamma = (rows * x_hat.reshape(rows.shape)).sum(axis=0)
        d_xhat = g * gamma
        d_x = rstd * (d_xhat - d_xhat.mean(axis=-1, keepdims=True)
                      - x_hat * (d_xhat * x_hat).mean(axis=-1, keepdims=True))
        return d_x, d_gamma, d_beta
