"""Reference solution: training byte-pair encoding."""


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
