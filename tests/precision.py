"""Tests that compare two ways of computing the same numbers run in float64, where rounding
(which in float32 differs with the product's shape and the machine's BLAS, at about 1e-5) does
not hide a wrong formula."""

import numpy as np


def to_float64(module):
    """`module` with float64 parameters, so that it computes in float64; returned."""
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module
