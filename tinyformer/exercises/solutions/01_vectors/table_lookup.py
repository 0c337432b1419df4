"""Reference solution: matrix multiplication as table lookup."""

import numpy as np


def lookup_by_matmul(ids, table):
    return one_hot(ids, table.shape[0]) @ table


def lookup_by_index(ids, table):
    return table[np.asarray(ids)]
