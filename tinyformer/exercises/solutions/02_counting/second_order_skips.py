"""Reference solution: second order with skips."""

import numpy as np


def skip_weights(sentences, vocab):
    V = len(vocab)
    counts = np.zeros((V, V, V))
    for sentence in sentences:
        words = sentence.split()
        for t in range(len(words) - 1):
            x, c = vocab.index(words[t]), vocab.index(words[t + 1])
            for w in set(words[:t]):
                counts[vocab.index(w), x, c] += 1
    return normalise_rows(counts)


def vote(context, weights, vocab):
    x = vocab.index(context[-1])
    votes = np.zeros(len(vocab))
    for w in set(context[:-1]):
        votes += weights[vocab.index(w), x]
    return votes


def predict_next(context, weights, vocab):
    votes = vote(context, weights, vocab)
    if not votes.any():
        return None
    return vocab[int(np.argmax(votes))]


def mistakes(sentences, weights, vocab):
    wrong = []
    for sentence in sentences:
        words = sentence.split()
        for t in range(2, len(words)):
            predicted = predict_next(words[:t], weights, vocab)
            if predicted != words[t]:
                wrong.append((" ".join(words[:t]), words[t], predicted))
    return wrong
