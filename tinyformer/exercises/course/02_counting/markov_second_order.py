"""A second-order model: the next word from the last two words

The first-order model could not tell what follows "ran": "down" and "please" got one half each.
Look one word further back and the doubt is gone: "battery ran" is followed by "down", and
"program ran" by "please". A second-order model counts, for every PAIR of neighbouring words
(a, b), which word c comes next.

Every pair of words is a context, so the table has one row per pair: V * V rows, V columns.
We number the pair (a, b) as row a * V + b (with a and b the words' positions in vocab):

    counts[a * V + b, c] = how many times vocab[c] follows the pair vocab[a], vocab[b]
                                                                        # (V * V, V)
    probs = counts with each row divided by its sum (rows of zeros stay zeros)

So ("battery", "ran") has a row with a single 1.0 under "down", and ("program", "ran") one
with a 1.0 under "please". Some doubt is real and stays: after ("me", "my") the corpus has
"directories", "files" and "photos" once each, and no model could know which one you meant.

The price is the size. With V = 14 words the first-order table had 14 rows; this one has
14 * 14 = 196, of which the corpus uses 12; the rest are zeros. An order-n model needs V ** n
rows, and with a real vocabulary of 50,000 words even order 2 means 2,500,000,000 rows, nearly
all of them never seen. Yet a dependency can reach back far further than two words (the next
exercise has one eight words back). Counting every long context does not scale: a model has
to learn which earlier words matter. That is what attention does (chapters 3 and 6), and why a
GPT's context (tinyformer/gpt.py's `context`) can be hundreds of tokens without a table.

Your task
    Write `pair_counts` and `predict_after_pair` (numpy only). `vocabulary` and
    `normalise_rows` are given (you wrote them in the last exercise).

Check it with:  tinyformer exercises check markov_second_order
"""

import numpy as np

CORPUS = [
    "show me my directories please",
    "show me my files please",
    "show me my photos please",
    "check whether the battery ran down please",
    "check whether the program ran please",
]


def vocabulary(sentences):
    """Every word of the sentences once, in order of first appearance (given)."""
    words = []
    for sentence in sentences:
        for word in sentence.split():
            if word not in words:
                words.append(word)
    return words


def normalise_rows(counts):
    """Each row divided by its sum; a row of zeros stays zeros (given)."""
    sums = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts, dtype=float), where=sums > 0)


def pair_counts(sentences, vocab):
    """(V * V, V) float array: row a * V + b counts the words that follow the pair
    vocab[a], vocab[b]."""
    # TODO: V = len(vocab); start from np.zeros((V * V, V)). For each sentence, for each three
    #       neighbouring words (first, second, next), add 1 at row
    #       vocab.index(first) * V + vocab.index(second), column vocab.index(next).
    raise NotImplementedError


def predict_after_pair(first, second, probs, vocab):
    """The most probable word after the pair (first, second) (the earlier in vocab on a tie),
    or None when the pair was never followed by anything."""
    # TODO: find the row of the pair as in pair_counts; then as predict_next did: None for a
    #       row of zeros, else the word at np.argmax of the row.
    raise NotImplementedError


if __name__ == "__main__":
    vocab = vocabulary(CORPUS)
    counts = pair_counts(CORPUS, vocab)
    probs = normalise_rows(counts)
    print(f"{counts.shape[0]} rows, of which {int((counts.sum(axis=1) > 0).sum())} are used")
    for first, second in [("battery", "ran"), ("program", "ran"), ("me", "my")]:
        print(first, second, "->", predict_after_pair(first, second, probs, vocab))
