"""Reference solution: matrix multiplication as table lookup."""

import numpy as np


def one_hot(ids, vocab_size):
    out = np.zeros((len(ids), vocab_size))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def lookup_by_matmul(ids, table):
    return one_hot(ids, table.shape[0]) @ table


def lookup_by_index(ids, table):
    return table[np.asarray(ids)]
