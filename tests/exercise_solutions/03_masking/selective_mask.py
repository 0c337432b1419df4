"""Reference solution: a selective mask."""

import numpy as np

CORPUS = [
    "check the program log and find out whether it ran please",
    "check the server log and find out whether it ran please",
    "check the battery log and find out whether it ran down please",
]


def vocabulary(sentences):
    words = []
    for sentence in sentences:
        for word in sentence.split():
            if word not in words:
                words.append(word)
    return words


def skip_weights(sentences, vocab):
    V = len(vocab)
    counts = np.zeros((V, V, V))
    for sentence in sentences:
        words = sentence.split()
        for t in range(len(words) - 1):
            x, c = vocab.index(words[t]), vocab.index(words[t + 1])
            for w in set(words[:t]):
                counts[vocab.index(w), x, c] += 1
    sums = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)


def vote(context, weights, vocab):
    x = vocab.index(context[-1])
    votes = np.zeros(len(vocab))
    for w in set(context[:-1]):
        votes += weights[vocab.index(w), x]
    return votes


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
