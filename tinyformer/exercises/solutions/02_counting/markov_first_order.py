"""Reference solution: a first-order model."""

import numpy as np


def transition_counts(sentences, vocab):
    counts = np.zeros((len(vocab), len(vocab)))
    for sentence in sentences:
        words = sentence.split()
        for word, following in zip(words, words[1:]):
            counts[vocab.index(word), vocab.index(following)] += 1
    return counts


def normalise_rows(counts):
    sums = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts, dtype=float), where=sums > 0)


def predict_next(word, probs, vocab):
    row = probs[vocab.index(word)]
    if not row.any():
        return None
    return vocab[int(np.argmax(row))]
