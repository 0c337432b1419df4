"""Padding and the padding mask

Sentences have different lengths, but a batch is one rectangular array. So shorter sequences
are filled up at the end with a padding id that means "nothing here":

    sequences = [[5, 6, 7], [8, 9]]   pad_id = 0   ->   ids = [[5, 6, 7],
                                                           [8, 9, 0]]          # (B, T)

Padding must not change what the real tokens compute. In attention that means: no query may
attend to a padding KEY. A padding mask says, for every key, whether it is a real token, and
it has the shape (B, 1, 1, T_k) so that it broadcasts over the heads and the queries of the
scores (B, n_head, T_q, T_k):

    mask[b, 0, 0, s] = ids[b, s] != pad_id         # True = may attend, as in chapter 6

For the example: mask[1, 0, 0] = [True, True, False]: every query of sequence 1, in every
head, may look at keys 0 and 1 and never at key 2.

Two shapes look right and are not. (B, 1, T, 1) puts the tokens on the QUERY axis: it masks
the padding's own row of scores but lets every real token attend to the padding. (B, T) lines
up wrongly against (B, n_head, T_q, T_k): numpy matches shapes from the right, so it reads T
as the key axis but B as the query axis. Mostly that fails to broadcast; when B happens to
equal T_q it broadcasts without a word, and query b of every sequence gets sequence b's
padding. The padding position's own query still attends to the real tokens: its output is
computed and then ignored (the loss skips it, chapter 13).

tinyformer/attention.py's `padding_mask` builds this mask, and `Transformer.encode` in
tinyformer/transformer.py builds it from the source ids (`src != pad_id`) for the encoder and
for the decoder's cross-attention.

Shapes
    pad_batch(sequences, pad_id) -> (B, T) int64 array, T = the longest sequence's length
    padding_mask(ids, pad_id) -> (B, 1, 1, T) bool array

Your task
    Write `pad_batch` and `padding_mask` (numpy only).

Check it with:  tinyformer exercises check padding_mask
"""

import numpy as np


def pad_batch(sequences, pad_id):
    """The lists of ids as one (B, T) int64 array, each row filled up with pad_id at the end."""
    # TODO: T is the length of the longest sequence. Start from an array of pad_id of shape
    #       (B, T), then copy each sequence into the beginning of its row.
    raise NotImplementedError


def padding_mask(ids, pad_id):
    """(B, 1, 1, T) booleans: True where ids holds a real token (a key that may be attended)."""
    # TODO: compare with pad_id (True for real tokens), then give the result the two axes of
    #       size 1, for the heads and the queries, in the right places.
    raise NotImplementedError


if __name__ == "__main__":
    ids = pad_batch([[5, 6, 7], [8, 9]], pad_id=0)
    print(ids)
    print(padding_mask(ids, pad_id=0).astype(int))
