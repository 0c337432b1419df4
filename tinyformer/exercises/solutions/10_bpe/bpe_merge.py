"""Reference solution: byte-pair merges."""

from collections import Counter


def count_pairs(ids):
    return dict(Counter(zip(ids, ids[1:])))


def merge(ids, pair, new_id):
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
