"""A selective mask: let only the informative features vote

In the last chapter every earlier word voted for the next word, and at "ran" in

    check the battery log and find out whether it ran down please

the eight words that say nothing about "down" or "please" outvoted the one that does
("battery"): "please" 5.33, "down" 3.67. The fix is to silence them. For each current word x
keep a mask, a vector of V zeros and ones over the earlier words: 1 for a word worth hearing
when x is the current word, 0 for the rest. Multiply the votes by it before adding them up.

Which features are worth hearing? Here we read it off the counts: feature (w, x) is
informative when, every time it was seen, the same word came next, i.e. its row of weights
has a 1.0 in it. (battery, ran) always led to "down", so it is kept; (check, ran) led to
"please" twice and "down" once, so it is masked out. A Transformer learns its masks instead
(chapter 6), but the effect is the same.

    mask_table[x, w] = 1.0 if weights[w, x, :].max() == 1.0 else 0.0      # (V, V)
                       (row x is the mask used when x is the current word)

For a context ending in x, with `earlier` the (V,) vector that has a 1 for each distinct word
before x, the masked vote is a sum of rows of the (V, V) matrix weights[:, x, :], keeping only
the rows of words that are both present and informative:

    masked_vote = (earlier * mask_table[x]) @ weights[:, x, :]          # (V,) @ (V, V) -> (V,)

At "ran" in the battery sentence only (battery, ran) gets through: "down" 1, "please" 0, a
clear win where the unmasked vote was wrong. Where no feature is informative (after "check
the" nothing in the corpus decides between program, server and battery) every masked vote is
0 and `predict_next` gives None: no evidence, no guess.

Note the index order: the table is indexed [current word, earlier word], the transpose of the
first two axes of `weights`, because a mask is chosen by the current word. The next exercise
picks those rows with a matrix multiplication, and that is attention.

Your task
    Write `informative_mask`, `masked_vote` and `predict_next` (numpy only). `skip_weights`
    and the unmasked `vote` are given, for comparison.

Check it with:  tinyformer exercises check selective_mask
"""

import numpy as np

CORPUS = [
    "check the program log and find out whether it ran please",
    "check the server log and find out whether it ran please",
    "check the battery log and find out whether it ran down please",
]


def vocabulary(sentences):
    """Every word of the sentences once, in order of first appearance (given)."""
    words = []
    for sentence in sentences:
        for word in sentence.split():
            if word not in words:
                words.append(word)
    return words


def skip_weights(sentences, vocab):
    """(V, V, V): [w, x, c] is the share of the times vocab[x] was the current word with
    vocab[w] somewhere before it in which vocab[c] came next (given: chapter 2)."""
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
    """(V,) unmasked votes: every distinct earlier word votes (given: chapter 2)."""
    x = vocab.index(context[-1])
    votes = np.zeros(len(vocab))
    for w in set(context[:-1]):
        votes += weights[vocab.index(w), x]
    return votes


def informative_mask(weights):
    """(V, V) float array of 0.0 and 1.0: [x, w] is 1.0 when the feature (w, x) always led to
    the same next word, i.e. weights[w, x].max() == 1.0."""
    # TODO: weights.max(axis=-1) is (V, V) indexed [w, x]; compare it with 1.0 (a share of n
    #       out of n is exactly 1.0), turn the booleans into floats, and transpose to [x, w].
    raise NotImplementedError


def masked_vote(context, weights, mask_table, vocab):
    """(V,) votes for the next word from only the informative features of `context`."""
    # TODO: x = index of the last word. earlier = np.zeros(V) with 1.0 at the index of each
    #       word in context[:-1]. Return (earlier * mask_table[x]) @ weights[:, x, :].
    raise NotImplementedError


def predict_next(context, weights, mask_table, vocab):
    """The word with the most masked votes (the earlier in vocab on a tie), or None when every
    masked vote is zero."""
    # TODO: as in chapter 2, on masked_vote(...) instead of vote(...).
    raise NotImplementedError


if __name__ == "__main__":
    vocab = vocabulary(CORPUS)
    weights = skip_weights(CORPUS, vocab)
    mask_table = informative_mask(weights)
    print("mask for 'ran':", [w for w, m in zip(vocab, mask_table[vocab.index("ran")]) if m])
    context = CORPUS[2].split()[:10]                     # ... whether it ran
    for name, votes in [("unmasked", vote(context, weights, vocab)),
                        ("masked", masked_vote(context, weights, mask_table, vocab))]:
        print(name, {w: round(float(v), 2) for w, v in zip(vocab, votes) if v})
