"""Reference solution: top-p (nucleus) filtering."""

import numpy as np


def top_p_filter(probs, top_p):
    probs = np.asarray(probs, dtype=np.float64)
    if top_p >= 1:
        return probs
    order = np.argsort(-probs, kind="stable")             # likeliest first, ties: lower id
    sorted_probs = probs[order]
    before = np.cumsum(sorted_probs) - sorted_probs        # mass of the tokens ahead of each
    keep = np.zeros(len(probs), dtype=bool)
    keep[order] = before < top_p
    filtered = np.where(keep, probs, 0.0)
    return filtered / filtered.sum()
