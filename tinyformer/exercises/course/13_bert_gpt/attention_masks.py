"""GPT, BERT and the encoder-decoder: what each mask allows

The three families are the same blocks with different masks. A mask says, for every query q
and key k of a sequence b, whether q may read k; it must broadcast against the scores
(B, n_head, T_q, T_k), with True = may attend (as in chapters 6 and 12).

    GPT            self-attention, causal: q sees k <= q. It predicts the next token, so
                   it must not read it. Its training windows are cut from one long text and
                   are never padded, so causal is all.
    BERT           self-attention over the whole sentence, both sides; only the padding
                   keys are hidden. Nothing to predict from the future: the graded tokens are
                   hidden in the input itself ([MASK], the last exercise).
    decoder self   causal AND padding: the decoder writes the target one token at a time,
                   and a batch of targets is padded.
    cross          the decoder's queries over the SOURCE's keys (T_q = target length,
                   T_k = source length): only the source's padding is hidden; nothing causal,
                   the whole source is known before the decoder starts.

Combining two masks is `&`: a key is allowed when both allow it, and broadcasting lines up
(1, 1, T, T) and (B, 1, 1, T) into (B, 1, T, T).

Worked example, pad_id = 0, one sequence ids = [[5, 6, 0]] (rows = queries, columns = keys):

    causal      padding     causal & padding
    1 0 0       1 1 0       1 0 0
    1 1 0       1 1 0       1 1 0
    1 1 1       1 1 0       1 1 0

GPT's mask is the first, BERT's the second, the decoder's self-attention mask the third. The
padding query in the last row still attends to the real tokens: its output is computed and
never used (its target is ignored in the loss). With a source src = [[7, 0]] and this target,
the cross-attention mask is (1, 1, 1, 2): [1 0] for every one of the 3 target positions.

tinyformer/attention.py has `causal_mask` and `padding_mask`; tinyformer/gpt.py, bert.py and
transformer.py each build their model's masks from them.

Shapes (any shape that broadcasts to the scores is right; these are the natural ones)
    gpt_mask(ids)                             -> (1, 1, T, T) bool
    bert_mask(ids, pad_id)                    -> (B, 1, 1, T) bool
    decoder_self_mask(tgt_ids, pad_id)        -> (B, 1, T_tgt, T_tgt) bool
    cross_mask(src_ids, tgt_ids, pad_id)      -> (B, 1, 1, T_src) bool
    ids: (B, T) int arrays

Your task
    Write the four masks (numpy only).

Check it with:  tinyformer exercises check attention_masks
"""

import numpy as np


def gpt_mask(ids):
    """GPT's self-attention mask for a batch of windows ids (B, T)."""
    # TODO: the lower triangle of a (T, T) array of booleans, with the diagonal (a token reads
    #       itself), given two leading axes of size 1.
    raise NotImplementedError


def bert_mask(ids, pad_id):
    """BERT's self-attention mask: every real token, on both sides."""
    # TODO: one boolean per key, True for a real token, on the key axis of (B, 1, 1, T).
    raise NotImplementedError


def decoder_self_mask(tgt_ids, pad_id):
    """The decoder's self-attention mask over its own target tokens."""
    # TODO: what both of the masks above allow.
    raise NotImplementedError


def cross_mask(src_ids, tgt_ids, pad_id):
    """The decoder's cross-attention mask: target queries over source keys."""
    # TODO: which of the two sequences gives the keys, and what must they hide?
    raise NotImplementedError


if __name__ == "__main__":
    ids = np.array([[5, 6, 0]])
    for mask in (gpt_mask(ids), bert_mask(ids, 0), decoder_self_mask(ids, 0)):
        print(np.broadcast_to(mask, (1, 1, 3, 3))[0, 0].astype(int), "\n")
    print(cross_mask(np.array([[7, 0]]), ids, 0).astype(int))
