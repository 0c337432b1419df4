"""Second order with skips: every earlier word votes

Here the word that decides comes long before the end:

    check the program log and find out whether it ran please
    check the server  log and find out whether it ran please
    check the battery log and find out whether it ran down please

After "ran", only the third word tells "down" from "please". A second-order model sees
("it", "ran") and must guess; an order-8 model (from "battery" to "ran") would need 14 ** 8
rows. Instead, pair the current word x with each word w that appeared SOMEWHERE earlier,
however far back. Each pair (w, x) is a feature, and each feature has a vote for the next word:

    weights[w, x, c] = of the times x was the current word with w somewhere before it, the
                       share in which vocab[c] came next            # (V, V, V), sums to 1
                                                                    # over c where seen
    vote(context)    = sum of weights[w, x, :] over the distinct words w before x
                                                                    # (V,): x = context[-1]

and the prediction is the word with the most votes. Count each distinct earlier word once per
position. At "ran" in the battery sentence nine distinct words came before it:

    feature (battery, ran): down 1     please 0     (informative: seen once, always "down")
    feature (check, ran):   down 1/3   please 2/3   (and the same for the, log, and, find,
                                                     out, whether, it: eight features)
    vote:                   down 1 + 8/3 = 3.67    please 8 * 2/3 = 5.33   ->  "please"

Wrong, on a sentence the model was trained on. The one feature that knows the answer gets one
vote; the eight that know nothing get eight, and since the corpus says "please" after "ran"
more often, they all lean to "please" and drown it. (With one "ran please" sentence fewer the
right word would win, 5 to 4: a margin of one vote out of nine, as fragile as that sounds.)
The cure is to listen only to the features that matter: a mask, chapter 3's subject.

`mistakes` makes this concrete: it predicts every word of the corpus from the words before it
and lists where the model is wrong. Two of its three entries are honest guesses ("check the"
can go on three ways, and no model could know which); the third is the real failure above.

Your task
    Write `skip_weights`, `vote`, `predict_next` and `mistakes` (numpy only).

Check it with:  tinyformer exercises check second_order_skips
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


def normalise_rows(counts):
    """Divide by the sum over the last axis; where that sum is zero, leave zeros (given)."""
    sums = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts, dtype=float), where=sums > 0)


def skip_weights(sentences, vocab):
    """(V, V, V) float array: [w, x, c] is the share of the times vocab[x] was the current word
    with vocab[w] somewhere before it in which vocab[c] came next."""
    # TODO: counts = np.zeros((V, V, V)). For each sentence, for each position t that has a
    #       next word: x = words[t], c = words[t + 1], and for each w in set(words[:t]) add 1
    #       at [w, x, c] (as indices into vocab). Then return normalise_rows(counts).
    raise NotImplementedError


def vote(context, weights, vocab):
    """(V,) votes for the word after `context` (a list of words): the sum of weights[w, x]
    over the distinct words w before the last word x."""
    # TODO: x = the last word of the context; add up weights[w, x, :] for each w in
    #       set(context[:-1]) (as indices into vocab).
    raise NotImplementedError


def predict_next(context, weights, vocab):
    """The word with the most votes (the earlier in vocab on a tie), or None when every vote
    is zero."""
    # TODO: like predict_next in the first-order exercise, on vote(context, weights, vocab).
    raise NotImplementedError


def mistakes(sentences, weights, vocab):
    """Every place the model is wrong: a list of (context, expected, predicted), in corpus
    order, where context is the words before the expected one joined by spaces."""
    # TODO: for each sentence and each t from 2 to len(words) - 1 (contexts of at least two
    #       words, so that there is an earlier word to vote): predict from words[:t]; where it
    #       differs from words[t], append (" ".join(words[:t]), words[t], prediction).
    raise NotImplementedError


if __name__ == "__main__":
    vocab = vocabulary(CORPUS)
    weights = skip_weights(CORPUS, vocab)
    for sentence in CORPUS:
        context = sentence.split()[:-2] if "down" in sentence else sentence.split()[:-1]
        votes = vote(context, weights, vocab)
        print(" ".join(context), {w: round(float(v), 2) for w, v in zip(vocab, votes) if v})
    for mistake in mistakes(CORPUS, weights, vocab):
        print("wrong:", mistake)
