"""Reference solution: training byte-pair encoding."""

from collections import Counter


def count_pairs(ids):
    return dict(Counter(zip(ids, ids[1:])))


def merge(ids, pair, new_id):
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
    ids = list(text.encode("utf-8"))
    merges = []
    for new_id in range(256, 256 + n_merges):
        counts = count_pairs(ids)
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        ids = merge(ids, best, new_id)
        merges.append(best)
    return merges
