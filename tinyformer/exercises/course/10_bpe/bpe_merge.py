"""Byte-pair merges

A character-level model spends one position on every letter; a word-level model cannot spell
a word it never saw. Byte-pair encoding (BPE) sits between: it starts from the bytes of the
text (ids 0-255, so any text at all can be written) and learns new tokens by gluing together
pairs of tokens that occur next to each other often. This exercise writes its two moves.

Counting pairs. Every two neighbouring ids form a pair. In [97, 97, 97, 98] ("aaab") the pairs
are (97, 97), (97, 97), (97, 98): pairs may overlap, so "aaa" holds (a, a) twice.

    count_pairs([97, 97, 97, 98]) == {(97, 97): 2, (97, 98): 1}

Merging. Replace every occurrence of one pair by a new id, reading left to right; once two ids
are merged they are used up, so occurrences do not overlap:

    merge([97, 97, 97, 98], (97, 97), 256) == [256, 97, 98]        "aaa" -> [aa, a]
    merge([97, 97, 97, 97], (97, 97), 256) == [256, 256]
    merge([1, 2, 1, 2, 1], (2, 1), 300)    == [1, 300, 300]

So count_pairs may count a pair more often than merge then replaces it: that is fine, the
count only chooses which pair to merge (next exercise). tinyformer/tokenizers.py has both:
`merge` is a module function there, and `BPETokenizer.train` counts and merges pairs by
exactly these conventions.

Shapes
    ids:      list of ints
    returns:  count_pairs: dict {(int, int): int};  merge: a new list of ints

Your task
    Write `count_pairs` and `merge`. Do not change the list you are given.

Check it with:  tinyformer exercises check bpe_merge
"""


def count_pairs(ids):
    """How often each pair of neighbouring ids occurs: {(a, b): count}, overlaps counted."""
    # TODO: walk over the neighbours (zip(ids, ids[1:]) gives them) and count each pair
    #       in a dict (or a collections.Counter).
    raise NotImplementedError


def merge(ids, pair, new_id):
    """ids with every occurrence of `pair`, read left to right, replaced by new_id."""
    # TODO: i = 0; while i < len(ids): if ids[i], ids[i + 1] is the pair (mind the end of
    #       the list), append new_id and jump 2; otherwise append ids[i] and step 1.
    raise NotImplementedError
