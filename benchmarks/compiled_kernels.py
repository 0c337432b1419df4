"""What compiled kernels would give: layer norm, GELU, attention's softmax and AdamW's update
written as loops and compiled by numba, for benchmarks/envelope.py to put in our ops' place.

This is a measurement, not part of the engine: the package never imports it, and the ops it
stands in for (tinyautograd/functional.py's LayerNorm, tinyautograd/ops.py's Gelu,
tinyformer/attention.py's Attention, tinyautograd/optim.py's Adam.update) are what they were.
Each kernel computes the same formula as the op it replaces, in float32, in one or two passes
over its arrays where numpy's version makes one pass per operation.

numpy's float32 exp is vectorised; numba's is a call to the C library per number (no SVML in
numba's pip wheels), slower than numpy's. So the exponentials here are computed as Cephes'
expf does: e^x = 2^k e^r with k = round(x / ln 2) and |r| <= ln 2 / 2, e^r by a polynomial of
degree 7, and 2^k built from its exponent bits. Relative error below 3e-7 for x in [-87, 88].

    pip install numba
    python benchmarks/envelope.py            # its compiled-kernels variants use this module
"""

import math

import numpy as np
from numba import njit

# fastmath lets the loops' sums be vectorised; error_model="numpy" drops Python's check for a
# division by zero in every division, which would keep a loop from being vectorised.
kernel = njit(fastmath=True, error_model="numpy", cache=True)

BLOCK = 4096                # numbers of GELU's blocks: three float32 arrays of it stay in L2


# --------------------------------------------------------------------------------------------
# exp


@kernel
def _exp(x, out, bits):
    """out = e^x, for float32 arrays x, out and an int32 scratch `bits`, all of one length."""
    for i in range(x.shape[0]):
        v = min(max(x[i], np.float32(-87.0)), np.float32(88.0))
        k = np.floor(v * np.float32(1.4426950408889634) + np.float32(0.5))    # round(v / ln 2)
        r = v - k * np.float32(0.693359375) - k * np.float32(-2.12194440e-4)  # v - k ln 2
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        out[i] = p * r * r + r + np.float32(1.0)                             # e^r
        bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)              # 2^k's bits
    two_to_k = bits.view(np.float32)
    for i in range(x.shape[0]):
        out[i] *= two_to_k[i]


# --------------------------------------------------------------------------------------------
# layer norm: functional.LayerNorm's formulas, row by row


@kernel
def _layer_norm_forward(x, weight, bias, eps, y, x_hat, rstd):
    rows, n = x.shape
    inv_n = np.float32(1) / np.float32(n)
    for r in range(rows):
        mean = np.float32(0)
        for j in range(n):
            mean += x[r, j]
        mean *= inv_n
        var = np.float32(0)
        for j in range(n):
            c = x[r, j] - mean
            x_hat[r, j] = c
            var += c * c
        s = np.float32(1) / np.sqrt(var * inv_n + eps)
        rstd[r] = s
        for j in range(n):
            h = x_hat[r, j] * s
            x_hat[r, j] = h
            y[r, j] = h * weight[j] + bias[j]


@kernel
def _layer_norm_backward(grad, x_hat, rstd, weight, d_x, d_weight, d_bias):
    rows, n = grad.shape
    inv_n = np.float32(1) / np.float32(n)
    d_weight[:] = 0
    d_bias[:] = 0
    for r in range(rows):
        mean_d = np.float32(0)               # mean(dx_hat)
        mean_dh = np.float32(0)              # mean(dx_hat * x_hat)
        for j in range(n):
            g, h = grad[r, j], x_hat[r, j]
            d_weight[j] += g * h
            d_bias[j] += g
            d = g * weight[j]
            mean_d += d
            mean_dh += d * h
        mean_d *= inv_n
        mean_dh *= inv_n
        for j in range(n):
            d_x[r, j] = (grad[r, j] * weight[j] - mean_d - x_hat[r, j] * mean_dh) * rstd[r]


def layer_norm_forward(ctx, x, weight, bias, eps=1e-5):
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    y, x_hat = np.empty_like(rows), np.empty_like(rows)
    rstd = np.empty(len(rows), x.dtype)
    _layer_norm_forward(rows, weight, bias, np.float32(eps), y, x_hat, rstd)
    ctx.x_hat, ctx.rstd = x_hat, rstd
    return y.reshape(x.shape)


def layer_norm_backward(ctx, grad):
    x, weight, _ = ctx.operands
    rows = np.ascontiguousarray(grad).reshape(ctx.x_hat.shape)
    d_x, d_weight, d_bias = np.empty_like(rows), np.empty_like(weight), np.empty_like(weight)
    _layer_norm_backward(rows, ctx.x_hat, ctx.rstd, weight, d_x, d_weight, d_bias)
    return d_x.reshape(x.shape), d_weight, d_bias


# --------------------------------------------------------------------------------------------
# GELU: ops.Gelu's factored form, value and derivative in one sweep of blocks


C = np.float32(math.sqrt(2 / math.pi))
A = np.float32(0.044715)


@kernel
def _minus_2u(x, out):                                         # -2u, capped at 80 as ops.Gelu
    for i in range(x.shape[0]):
        v = x[i]
        out[i] = min(v * (np.float32(-2) * C - np.float32(2) * A * C * v * v), np.float32(80))


@kernel
def _value_and_slope(x, e, y, slope):                          # e = e^(-2u), h = 1 / (1 + e)
    for i in range(x.shape[0]):
        v, ei = x[i], e[i]
        h = np.float32(1) / (np.float32(1) + ei)
        y[i] = v * h
        slope[i] = h * (np.float32(1) + v * (np.float32(2) * C + np.float32(6) * A * C * v * v)
                        * h * ei)


@kernel
def _gelu(x, y, slope):
    # Three loops a block, each writing an array of its own: so numba vectorises every one. The
    # exp written in place into -2u's array took 482 us on 196,608 floats, this way 143.
    minus_2u, e = np.empty(BLOCK, np.float32), np.empty(BLOCK, np.float32)
    bits = np.empty(BLOCK, np.int32)
    for start in range(0, x.shape[0], BLOCK):
        end = min(start + BLOCK, x.shape[0])
        m = end - start
        _minus_2u(x[start:end], minus_2u[:m])
        _exp(minus_2u[:m], e[:m], bits[:m])
        _value_and_slope(x[start:end], e[:m], y[start:end], slope[start:end])


def gelu_forward(ctx, x):
    flat = np.ascontiguousarray(x).reshape(-1)
    y, slope = np.empty_like(flat), np.empty_like(flat)
    _gelu(flat, y, slope)
    ctx.derivative = slope.reshape(x.shape)
    return y.reshape(x.shape)


def gelu_backward(ctx, grad):
    slope, ctx.derivative = ctx.derivative, None
    slope *= grad
    return slope


# --------------------------------------------------------------------------------------------
# attention: the same products, its softmax and softmax's backward as loops over rows


@kernel
def _softmax_rows(scores, blocked):
    """scores (rows, T_k) in place: softmax(scores + blocked[row % T_q]) along each row."""
    rows, n = scores.shape
    e, bits = np.empty(n, np.float32), np.empty(n, np.int32)
    for r in range(rows):
        add = blocked[r % blocked.shape[0]]
        top = np.float32(-3.4e38)
        for j in range(n):
            v = scores[r, j] + add[j]
            scores[r, j] = v
            top = max(top, v)
        for j in range(n):
            scores[r, j] -= top
        _exp(scores[r], e, bits)
        total = np.float32(0)
        for j in range(n):
            total += e[j]
        inverse = np.float32(1) / total
        for j in range(n):
            scores[r, j] = e[j] * inverse


@kernel
def _softmax_backward_rows(d_s, p, row_sums, scale):
    """d_s = (d_s - rowsum(dO * O)) * p * scale, in place, row by row."""
    rows, n = d_s.shape
    for r in range(rows):
        for j in range(n):
            d_s[r, j] = (d_s[r, j] - row_sums[r]) * p[r, j] * scale


def attention_forward(ctx, q, k, v, keep=None, drop=None):
    if drop is not None or (keep is not None and keep.size != keep.shape[-2] * keep.shape[-1]):
        raise NotImplementedError("the compiled softmax takes one (T_q, T_k) mask, no dropout")
    scale = 1 / math.sqrt(q.shape[-1])
    scores = q @ np.swapaxes(k, -2, -1)                               # (..., T_q, T_k)
    scores *= scale
    n = scores.shape[-1]
    blocked = (np.zeros((1, n), np.float32) if keep is None else
               np.where(keep.reshape(keep.shape[-2:]), 0, -1e9).astype(np.float32))
    _softmax_rows(scores.reshape(-1, n), blocked)
    ctx.p, ctx.scale = scores, scale
    return scores @ v


def attention_backward(ctx, grad):
    q, k, v = ctx.operands
    p = ctx.p
    d_v = np.swapaxes(p, -2, -1) @ grad
    d_s = grad @ np.swapaxes(v, -2, -1)
    row_sums = (grad * ctx.result).sum(axis=-1)                       # rowsum(dO * O)
    n = p.shape[-1]
    _softmax_backward_rows(d_s.reshape(-1, n), p.reshape(-1, n), row_sums.reshape(-1),
                           np.float32(ctx.scale))
    return d_s @ k, np.swapaxes(d_s, -2, -1) @ q, d_v


# --------------------------------------------------------------------------------------------
# AdamW: optim.Adam.update's formulas, one pass over each parameter


@njit(error_model="numpy", cache=True)       # no fastmath: Adam.update's order of operations
def _adam(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, decay, step_size,
          bias2_sqrt, eps):
    for i in range(p.shape[0]):
        m[i] = m[i] * beta1 + g[i] * one_minus_beta1
        v[i] = v[i] * beta2 + g[i] * one_minus_beta2 * g[i]
        p[i] = p[i] * decay - m[i] / (np.sqrt(v[i]) / bias2_sqrt + eps) * step_size


def adam_update(self, param, grad, state, group):
    lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
    beta1, beta2 = group["betas"]
    if weight_decay and not self.decoupled_weight_decay:
        raise NotImplementedError("the compiled update is AdamW's (decoupled weight decay)")
    state["step"] += 1
    t = state["step"]
    f32 = np.float32
    _adam(param.data.reshape(-1), np.ascontiguousarray(grad).reshape(-1),
          state["exp_avg"].reshape(-1), state["exp_avg_sq"].reshape(-1), f32(beta1),
          f32(1 - beta1), f32(beta2), f32(1 - beta2), f32(1 - lr * weight_decay),
          f32(lr / (1 - beta1 ** t)), f32(math.sqrt(1 - beta2 ** t)), f32(eps))

