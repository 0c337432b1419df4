"""Reference solution: a selective mask."""

import numpy as np


def informative_mask(weights):
    return (weights.max(axis=-1) == 1.0).astype(float).T


def masked_vote(context, weights, mask_table, vocab):
    x = vocab.index(context[-1])
    earlier = np.zeros(len(vocab))
    for w in context[:-1]:
        earlier[vocab.index(w)] = 1.0
    return (earlier * mask_table[x]) @ weights[:, x, :]


def predict_next(context, weights, mask_table, vocab):
    votes = masked_vote(context, weights, mask_table, vocab)
    if not votes.any():
        return None
    return vocab[int(np.argmax(votes))]
