"""Reference solution: encoding and decoding with learned merges."""


def bpe_encode(text, merges):
    ids = list(text.encode("utf-8"))
    rank = {tuple(pair): 256 + k for k, pair in enumerate(merges)}
    while True:
        present = [rank[pair] for pair in zip(ids, ids[1:]) if pair in rank]
        if not present:
            return ids
        new_id = min(present)
        ids = merge(ids, merges[new_id - 256], new_id)


def bpe_decode(ids, merges):
    vocab = [bytes([b]) for b in range(256)]
    for a, b in merges:
        vocab.append(vocab[a] + vocab[b])
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
