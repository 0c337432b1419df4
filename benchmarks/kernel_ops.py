"""Our ops' forward and backward functions around compiled_kernels.py's numba loops, for
benchmarks/envelope.py to put in the ops' place.

Each wrapper takes what the op's own function takes (tinyautograd/functional.py's LayerNorm,
tinyautograd/ops.py's Gelu, tinyformer/attention.py's Attention, tinyautograd/optim.py's
Adam.update), makes the arrays, and hands them to the loops, which write into them. A module of
loops gives, for C-contiguous float32 arrays:

    layer_norm_rows(x, weight, bias, eps, y, x_hat, rstd)         x, y, x_hat: (rows, n)
    layer_norm_rows_backward(grad, x_hat, rstd, weight, d_x, d_weight, d_bias)
    gelu(x, y, slope)                                             flat; slope = dy/dx
    softmax_rows(scores, blocked)          in place: softmax(scores + blocked[row % len])
    softmax_rows_backward(d_s, p, row_sums, scale)   in place: (d_s - row_sums) * p * scale
    adam(p, g, m, v, beta1, 1 - beta1, beta2, 1 - beta2, decay, step_size, bias2_sqrt, eps)
"""

import math
import types

import numpy as np


def ops_with(loops):
    """The ops' functions on `loops` (a module of the loops above), by the ops' names:
    layer_norm_forward, layer_norm_backward, gelu_forward, gelu_backward, attention_forward,
    attention_backward and adam_update."""

    def layer_norm_forward(ctx, x, weight, bias, eps=1e-5):
        rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        y, x_hat = np.empty_like(rows), np.empty_like(rows)
        rstd = np.empty(len(rows), x.dtype)
        loops.layer_norm_rows(rows, weight, bias, np.float32(eps), y, x_hat, rstd)
        ctx.x_hat, ctx.rstd = x_hat, rstd
        return y.reshape(x.shape)

    def layer_norm_backward(ctx, grad):
        x, weight, _ = ctx.operands
        rows = np.ascontiguousarray(grad).reshape(ctx.x_hat.shape)
        d_x, d_weight, d_bias = np.empty_like(rows), np.empty_like(weight), np.empty_like(weight)
        loops.layer_norm_rows_backward(rows, ctx.x_hat, ctx.rstd, weight, d_x, d_weight, d_bias)
        return d_x.reshape(x.shape), d_weight, d_bias

    def gelu_forward(ctx, x):
        flat = np.ascontiguousarray(x).reshape(-1)
        y, slope = np.empty_like(flat), np.empty_like(flat)
        loops.gelu(flat, y, slope)
        ctx.derivative = slope.reshape(x.shape)
        return y.reshape(x.shape)

    def gelu_backward(ctx, grad):
        slope, ctx.derivative = ctx.derivative, None
        slope *= grad
        return slope

    def attention_forward(ctx, q, k, v, keep=None, drop=None):
        if drop is not None or (keep is not None and
                                keep.size != keep.shape[-2] * keep.shape[-1]):
            raise NotImplementedError("the compiled softmax takes one (T_q, T_k) mask, "
                                      "no dropout")
        scale = 1 / math.sqrt(q.shape[-1])
        scores = q @ np.swapaxes(k, -2, -1)                           # (..., T_q, T_k)
        scores *= scale
        n = scores.shape[-1]
        blocked = (np.zeros((1, n), np.float32) if keep is None else
                   np.where(keep.reshape(keep.shape[-2:]), 0, -1e9).astype(np.float32))
        loops.softmax_rows(scores.reshape(-1, n), blocked)
        ctx.p, ctx.scale = scores, scale
        return scores @ v

    def attention_backward(ctx, grad):
        q, k, v = ctx.operands
        p = ctx.p
        d_v = np.swapaxes(p, -2, -1) @ grad
        d_s = grad @ np.swapaxes(v, -2, -1)
        row_sums = (grad * ctx.result).sum(axis=-1)                   # rowsum(dO * O)
        n = p.shape[-1]
        loops.softmax_rows_backward(d_s.reshape(-1, n), p.reshape(-1, n), row_sums.reshape(-1),
                                    np.float32(ctx.scale))
        return d_s @ k, np.swapaxes(d_s, -2, -1) @ q, d_v

    def adam_update(optimizer, param, grad, state, group):
        lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        if weight_decay and not optimizer.decoupled_weight_decay:
            raise NotImplementedError("the compiled update is AdamW's (decoupled weight decay)")
        state["step"] += 1
        t = state["step"]
        f32 = np.float32
        loops.adam(param.data.reshape(-1), np.ascontiguousarray(grad).reshape(-1),
                   state["exp_avg"].reshape(-1), state["exp_avg_sq"].reshape(-1), f32(beta1),
                   f32(1 - beta1), f32(beta2), f32(1 - beta2), f32(1 - lr * weight_decay),
                   f32(lr / (1 - beta1 ** t)), f32(math.sqrt(1 - beta2 ** t)), f32(eps))

    functions = dict(layer_norm_forward=layer_norm_forward,
                     layer_norm_backward=layer_norm_backward, gelu_forward=gelu_forward,
                     gelu_backward=gelu_backward, attention_forward=attention_forward,
                     attention_backward=attention_backward, adam_update=adam_update)
    for function in functions.values():
        function.__module__ = loops.__name__     # what a record of "which code computed" names
    return types.SimpleNamespace(**functions)
