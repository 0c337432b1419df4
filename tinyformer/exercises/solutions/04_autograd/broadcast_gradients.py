"""Reference solution: gradients through broadcasting."""

import numpy as np


def unbroadcast(grad, shape):
    grad = np.asarray(grad)
    added = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(added)))          # the leading axes broadcasting added
    stretched = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True)     # size-1 axes stay, with size 1


def mul_backward(grad, a, b):
    return unbroadcast(grad * b, np.shape(a)), unbroadcast(grad * a, np.shape(b))
