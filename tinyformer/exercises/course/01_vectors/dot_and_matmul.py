"""Dot products and matrix multiplication

The dot product of two vectors of the same length multiplies them element by element and adds
up the products. It is one number:

    dot(a, b) = a[0]*b[0] + a[1]*b[1] + ... + a[n-1]*b[n-1]

    dot([1, 2, 3], [4, 5, 6]) = 1*4 + 2*5 + 3*6 = 32

With one-hot vectors it says whether two symbols are the same (1) or not (0). With other
vectors it says how much they point the same way, and that is what attention uses to decide
which words a word should look at (chapter 6).

Matrix multiplication is nothing more than many dot products. For A of shape (N, K) and B of
shape (K, M), element [i, j] of C = A @ B is the dot product of row i of A with column j of B:

    C[i, j] = dot(A[i, :], B[:, j])          # C has shape (N, M)

    [[1, 2],    @  [[5, 6],     =  [[1*5 + 2*7, 1*6 + 2*8],    =  [[19, 22],
     [3, 4]]        [7, 8]]         [3*5 + 4*7, 3*6 + 4*8]]        [43, 50]]

The inner sizes must agree (K on both sides); they disappear in the sum.

Why write it by hand when numpy has `@`? Because every layer of a Transformer is a matrix
multiplication (tinyautograd/nn.py's Linear computes x @ weight), and "row i of the output is
row i of the input dotted with every column of the weight" is the one picture you will need
again and again. Build it once from loops, then use `@` for ever after. The checker compares
your answer with numpy's `@`, and refuses an answer that calls numpy's own product (`@`,
np.dot, np.matmul, np.einsum) to get it.

Shapes
    dot:     a (n,), b (n,)            -> a float
    matmul:  A (N, K), B (K, M)        -> (N, M) float array

Your task
    Write `dot` with a loop over the elements (no np.dot, no @), then `matmul` with two loops
    over the output's rows and columns, calling your `dot` for each element.

Check it with:  tinyformer exercises check dot_and_matmul
"""

import numpy as np


def dot(a, b):
    """The sum of a[k] * b[k] over k: one number."""
    # TODO: start a total at 0.0 and add a[k] * b[k] for every k; return the total.
    raise NotImplementedError


def matmul(A, B):
    """A @ B for 2-D arrays, each element the dot product of a row of A and a column of B."""
    # TODO: make C = np.zeros((number of rows of A, number of columns of B)); for every i and j
    #       set C[i, j] to dot(row i of A, column j of B); return C.
    raise NotImplementedError
