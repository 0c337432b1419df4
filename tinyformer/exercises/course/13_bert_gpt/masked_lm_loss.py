"""BERT's objective: the masked-language-model loss

GPT learns by predicting every next token. BERT reads the whole sentence at once, both sides of
every position, so "predict the next token" would be copying. Instead some tokens are hidden
(replaced by a [MASK] id) and the model must say what they were:

    ids     [the, cat, sat, on, the, mat]
    hidden  [ . ,  x ,  . , .,   . ,  x ]
    inputs  [the, [M], sat, on, the, [M]]       what the model reads
    targets [ - , cat,  - , - ,  - , mat]       what it is graded on; "-" = ignore_index

Only the hidden positions count. Every other position is marked with `ignore_index` (-100 by
default, a value no token id has) and left out of the loss, which is the mean over the hidden
positions H only:

    loss = (1 / |H|) * sum over (b, t) in H of  -log softmax(logits[b, t])[targets[b, t]]

Dividing by |H|, not by B * T, matters: with 15% of tokens hidden, dividing by every position
shrinks the loss (and the gradient, so the learning rate) by a factor of about 7, and by a
different factor in every batch.

Worked example (B = 1, T = 4, V = 2, hidden positions 1 and 3):

    ids = [[1, 0, 0, 1]]        targets = [[-100, 0, -100, 1]]
    logits = [[[0, 0], [ln 3, 0], [0, 0], [0, ln 7]]]

Position 1 gives its target 0 the probability 3 / (3 + 1) = 0.75, position 3 its target 1 the
probability 7 / (1 + 7) = 0.875: loss = (-ln 0.75 - ln 0.875) / 2 = (0.2877 + 0.1335) / 2 =
0.2106. Dividing by all 4 positions would give 0.1053; counting positions 0 and 2 as well (each
-ln 0.5 = 0.6931) would give 0.4519.

Real BERT hides 15% of the tokens at random, and of those replaces 80% by [MASK], 10% by a
random token and leaves 10% alone (so that the model cannot tell which visible tokens are
graded); tinyformer/bert.py does all that. Here `hidden` is given, so that the check is exact.

Shapes
    mask_tokens(ids (B, T) int, hidden (B, T) bool, mask_id, ignore_index) -> (inputs, targets),
        two (B, T) int64 arrays
    masked_lm_loss(logits (B, T, V) Tensor, targets (B, T) int, ignore_index) -> scalar Tensor

Your task
    Write `mask_tokens` (numpy) and `masked_lm_loss` (Tensor operations, so that gradients
    flow back to the logits).

Check it with:  tinyformer exercises check masked_lm_loss
"""

import numpy as np

from tinyautograd import Tensor


def mask_tokens(ids, hidden, mask_id, ignore_index=-100):
    """(inputs, targets): inputs are the ids with every hidden position replaced by mask_id;
    targets hold the original id where hidden and ignore_index everywhere else."""
    # TODO: both are (B, T) int64 arrays built from copies of ids; np.where(condition, a, b)
    #       picks from a where the condition holds and from b elsewhere.
    raise NotImplementedError


def masked_lm_loss(logits, targets, ignore_index=-100):
    """The mean over the positions whose target is not ignore_index of
    -log softmax(logits[b, t])[targets[b, t]]: a scalar Tensor."""
    # TODO: log-probabilities over the last axis (B, T, V); find the counted positions (b, t)
    #       from the targets; pick, at each of them, the log-probability of its target (one
    #       number per counted position); the loss is minus their mean.
    raise NotImplementedError


if __name__ == "__main__":
    ids = np.array([[1, 0, 0, 1]])
    inputs, targets = mask_tokens(ids, np.array([[False, True, False, True]]), mask_id=2)
    print(inputs, targets)
    logits = Tensor(np.array([[[0, 0], [np.log(3), 0], [0, 0], [0, np.log(7)]]]))
    print(masked_lm_loss(logits, targets).item(), "(should be 0.2106)")
