"""Reference solution: padding and the padding mask."""

import numpy as np


def pad_batch(sequences, pad_id):
    T = max(len(sequence) for sequence in sequences)
    ids = np.full((len(sequences), T), pad_id, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = sequence
    return ids


def padding_mask(ids, pad_id):
    is_token = ids != pad_id                    # (B, T): True for real tokens
    return is_token[:, None, None, :]           # (B, 1, 1, T): over every head and query
