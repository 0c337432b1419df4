"""Training byte-pair encoding

Training BPE is a loop over the two moves of the last exercise. Start from the text's UTF-8
bytes (ids 0-255), then, n_merges times:

    1. count the pairs of neighbouring ids
    2. take the most frequent pair; if several are equally frequent, the SMALLEST pair wins,
       comparing first ids, then second ids (as Python compares tuples: (97, 98) < (98, 97)
       < (256, 97)). That is min(counts, key=lambda pair: (-counts[pair], pair))
    3. merge it everywhere into the next new id: 256 for the first merge, 257, ...
    4. record the pair: merges[k] is the pair that id 256 + k stands for
Stop early if no pair is left (the text has become a single token).

Worked example, "aaabdaaabac" (the example of Wikipedia's article on byte-pair encoding;
a=97, b=98, c=99, d=100):

    a a a b d a a a b a c    (97, 97) occurs 4 times             -> 256 = aa
    256 a b d 256 a b a c    (256, 97) and (97, 98) both 2 times;
                             the smaller, (97, 98), wins          -> 257 = ab
    256 257 d 256 257 a c    (256, 257) twice                     -> 258 = aaab
    258 d 258 a c

    bpe_train("aaabdaaabac", 3) == [(97, 97), (97, 98), (256, 257)]

Each merge shortens the text by as many tokens as the pair occurred (without overlaps), so the
token ids grow in number while the texts written with them get shorter.

tinyformer/tokenizers.py's `BPETokenizer.train` is this loop, with the same tie rule, made
faster (it updates the counts of the pairs beside each place a merge joins instead of
recounting everything) and with one more step: it first cuts the text into words (GPT-2's
`pre_split`) so that no token spans two words. Here there is no cutting: spaces are bytes like
any other.

Your task
    Write `bpe_train`, returning the merges as a list of (int, int) tuples. `count_pairs` and
    `merge` (the last exercise's answers) are given.

Check it with:  tinyformer exercises check bpe_train
"""

from collections import Counter

TEXT = "the cat sat on the mat; the cat ate the rat"      # try: bpe_train(TEXT, 5)


def count_pairs(ids):
    """How often each pair of neighbouring ids occurs: {(a, b): count}, overlaps counted."""
    return dict(Counter(zip(ids, ids[1:])))


def merge(ids, pair, new_id):
    """ids with every occurrence of `pair`, read left to right, replaced by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def bpe_train(text, n_merges):
    """The first n_merges merges BPE learns from `text`: a list of pairs of ids."""
    # TODO: start from ids = list(text.encode("utf-8")), the bytes as ints 0-255.
    # TODO: for k in range(n_merges): count the pairs (stop if there are none), choose the
    #       most frequent (ties: the smallest pair), merge it into 256 + k, record it.
    raise NotImplementedError
