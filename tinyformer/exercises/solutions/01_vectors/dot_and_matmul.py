"""Reference solution: dot products and matrix multiplication."""

import numpy as np


def dot(a, b):
    total = 0.0
    for x, y in zip(a, b):
        total += x * y
    return total


def matmul(A, B):
    C = np.zeros((A.shape[0], B.shape[1]))
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            C[i, j] = dot(A[i, :], B[:, j])
    return C
