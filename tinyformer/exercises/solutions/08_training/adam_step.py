"""Reference solution: one step of AdamW."""

import numpy as np


def adam_step(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.01):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    param = param * (1 - lr * weight_decay)                 # decoupled decay, first
    param = param - lr * m_hat / (np.sqrt(v_hat) + eps)
    return param, m, v
