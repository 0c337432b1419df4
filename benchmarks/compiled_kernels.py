"""What compiled kernels would give: layer norm, GELU, attention's softmax and AdamW's update
written as loops and compiled by numba, for benchmarks/envelope.py to put in our ops' place
through kernel_ops.py's wrappers (`OPS`).

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
import sys

import numpy as np
from numba import njit

from kernel_ops import ops_with

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


@kernel
def exp(x, out):
    """out = e^x, for float32 arrays of one length."""
    _exp(x, out, np.empty(x.shape[0], np.int32))


# --------------------------------------------------------------------------------------------
# layer norm: functional.LayerNorm's formulas, row by row


@kernel
def layer_norm_rows(x, weight, bias, eps, y, x_hat, rstd):
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
def layer_norm_rows_backward(grad, x_hat, rstd, weight, d_x, d_weight, d_bias):
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
def gelu(x, y, slope):
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


# --------------------------------------------------------------------------------------------
# attention: the same products, its softmax and softmax's backward as loops over rows


@kernel
def softmax_rows(scores, blocked):
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
def softmax_rows_backward(d_s, p, row_sums, scale):
    """d_s = (d_s - rowsum(dO * O)) * p * scale, in place, row by row."""
    rows, n = d_s.shape
    for r in range(rows):
        for j in range(n):
            d_s[r, j] = (d_s[r, j] - row_sums[r]) * p[r, j] * scale


# --------------------------------------------------------------------------------------------
# AdamW: optim.Adam.update's formulas, one pass over each parameter


@njit(error_model="numpy", cache=True)       # no fastmath: Adam.update's order of operations
def adam(p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, decay, step_size,
          bias2_sqrt, eps):
    for i in range(p.shape[0]):
        m[i] = m[i] * beta1 + g[i] * one_minus_beta1
        v[i] = v[i] * beta2 + g[i] * one_minus_beta2 * g[i]
        p[i] = p[i] * decay - m[i] / (np.sqrt(v[i]) / bias2_sqrt + eps) * step_size


OPS = ops_with(sys.modules[__name__])
