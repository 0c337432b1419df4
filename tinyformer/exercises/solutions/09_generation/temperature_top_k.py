"""Reference solution: temperature and top-k."""

import numpy as np


def next_token_probs(logits, temperature=1.0, top_k=None):
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        probs = np.zeros_like(logits)
        probs[np.argmax(logits)] = 1.0
        return probs
    logits = logits / temperature
    if top_k is not None and top_k < len(logits):
        kth_largest = np.sort(logits)[-top_k]
        logits = np.where(logits < kth_largest, -np.inf, logits)
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()
