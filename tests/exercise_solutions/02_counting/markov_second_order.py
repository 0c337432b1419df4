"""Reference solution: a second-order model."""

import numpy as np

CORPUS = [
    "show me my directories please",
    "show me my files please",
    "show me my photos please",
    "check whether the battery ran down please",
    "check whether the program ran please",
]


def vocabulary(sentences):
    words = []
    for sentence in sentences:
        for word in sentence.split():
            if word not in words:
                words.append(word)
    return words


def normalise_rows(counts):
    sums = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts, dtype=float), where=sums > 0)


def pair_counts(sentences, vocab):
    V = len(vocab)
    counts = np.zeros((V * V, V))
    for sentence in sentences:
        words = sentence.split()
        for first, second, following in zip(words, words[1:], words[2:]):
            counts[vocab.index(first) * V + vocab.index(second), vocab.index(following)] += 1
    return counts


def predict_after_pair(first, second, probs, vocab):
    row = probs[vocab.index(first) * len(vocab) + vocab.index(second)]
    if not row.any():
        return None
    return vocab[int(np.argmax(row))]
