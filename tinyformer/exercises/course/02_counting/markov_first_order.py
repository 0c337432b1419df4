"""A first-order model: the next word from the current word

The simplest way to predict the next word is to count. Read a corpus, and every time word a is
followed by word b, add 1 to a table at [a, b]. Then divide each row by its sum: row a becomes
the probabilities of each word coming after a. This is a first-order Markov model: it looks
at the current word only, and it is the oldest language model there is.

Our corpus is a handful of commands (below, in CORPUS). With the vocabulary in order of first
appearance, V = 14 words, the table has V rows and V columns:

    counts[a, b] = how many times word b directly follows word a       # (V, V)
    probs[a, b]  = counts[a, b] / sum over c of counts[a, c]            # each used row sums to 1

For example "show" is followed by "me" three times and by nothing else, so the row of "show" is
all zeros except a 1.0 under "me". "my" is followed by "directories", "files" and "photos",
once each: its row has 1/3 under each of them. That is the limit of a first-order model: from
"my" alone nothing can tell which one comes next, and "ran" is as bad: "down" or "please", one
half each, although the sentences themselves leave no doubt (the battery ran down, the
program ran, please). The next exercise looks further back.

Sentences are counted one at a time: the last word of one sentence is not followed by the first
word of the next. So "please" is never followed by anything, and its row stays all zeros (do
not divide by zero: a row with no counts stays zero).

The tokenizers in tinyformer/tokenizers.py turn text into ids; a trained GPT's last layer
outputs, for every position, what this table holds in a row: a probability for every next
token. The GPT just computes the row from far more than the current word.

Your task
    Write `transition_counts`, `normalise_rows` and `predict_next` (numpy only). `vocabulary`
    is given.

Check it with:  tinyformer exercises check markov_first_order
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


def transition_counts(sentences, vocab):
    """(V, V) float array: [a, b] counts how often vocab[b] directly follows vocab[a]."""
    # TODO: start from np.zeros((len(vocab), len(vocab))). For each sentence, split it into
    #       words; for each pair of neighbours (word, next word) add 1 at
    #       [vocab.index(word), vocab.index(next word)].
    raise NotImplementedError


def normalise_rows(counts):
    """Each row divided by its sum, so it sums to 1; a row of zeros stays zeros."""
    # TODO: row sums with keepdims=True (shape (V, 1)); divide where the sum is not zero.
    raise NotImplementedError


def predict_next(word, probs, vocab):
    """The most probable word after `word` (the earlier in vocab on a tie), or None when
    `word` was never followed by anything."""
    # TODO: take the row of `word`. If it is all zeros return None; otherwise return the word
    #       at the position of its largest value (np.argmax picks the first on a tie).
    raise NotImplementedError


if __name__ == "__main__":
    vocab = vocabulary(CORPUS)
    probs = normalise_rows(transition_counts(CORPUS, vocab))
    for word in ["show", "my", "ran", "please"]:
        row = {vocab[j]: round(float(p), 3) for j, p in enumerate(probs[vocab.index(word)]) if p}
        print(f"after {word!r}: {row}  -> predicts {predict_next(word, probs, vocab)!r}")
