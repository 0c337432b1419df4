"""Greedy decoding

A language model does not write text; it scores what could come next. Given the ids so far it
returns one logit per vocabulary entry, (V,), and the larger a token's logit, the likelier the
model thinks it is. Generation is a loop around that one call:

    ids = prompt
    repeat max_new_tokens times:
        logits = next_logits(ids)          # (V,) scores for the token after ids
        token  = the id with the largest logit
        ids    = ids + [token]
        stop early if token == end_id      # the model said "the text ends here"

Choosing the single likeliest token every time is greedy decoding. It is deterministic (the
same prompt always gives the same text), which makes it the easiest decoder to test, and it is
what `tinyformer` does with temperature 0: `GPT.generate` asks the model for logits,
tinyformer/sampling.py's `sample_next` returns `logits.argmax(axis=-1)`, and the loop appends it.

Conventions (the checker holds you to them)
    - next_logits is called with the WHOLE sequence so far (prompt plus the tokens chosen so
      far), as a list of ints; it returns a (V,) array of floats.
    - Ties go to the lowest id, as np.argmax does.
    - The result is the prompt followed by the new tokens, as a list of ints. When the chosen
      token is end_id it is appended and the loop stops; end_id=None means never stop early.
    - Never more than max_new_tokens new tokens; max_new_tokens=0 returns the prompt.

Worked example, with the tiny model `bigram_logits` below (V = 4, end_id = 3), which looks only
at the last token:
    prompt [0]:  row 0 is largest at 1 -> [0, 1];  row 1 -> 2;  row 2 -> 3 (the end)
    greedy(bigram_logits, [0], max_new_tokens=10, end_id=3) == [0, 1, 2, 3]
    greedy(bigram_logits, [0], max_new_tokens=2,  end_id=3) == [0, 1, 2]

Shapes
    prompt:  list of ints, length T0 >= 1
    returns: list of ints, length T0 .. T0 + max_new_tokens

Your task
    Write `greedy`. numpy is imported for you.

Check it with:  tinyformer exercises check greedy
"""

import numpy as np

# A tiny given model to try your code on: logits for the next token depend on the last one only.
BIGRAM_TABLE = np.array([
    [0.0, 2.0, 1.0, -1.0],     # after 0, token 1 is likeliest
    [0.5, 0.0, 3.0, 0.0],      # after 1, token 2
    [1.0, 0.0, 0.0, 2.5],      # after 2, token 3 (the end)
    [1.0, 1.0, 1.0, 1.0],      # after 3 (never asked, since generation stops at the end)
])


def bigram_logits(ids):
    """Logits (V,) for the token after `ids`: the table row of the last token."""
    return BIGRAM_TABLE[ids[-1]]


def greedy(next_logits, prompt, max_new_tokens, end_id=None):
    """The prompt continued greedily: a list of ints, the prompt then up to max_new_tokens ids."""
    # TODO: copy the prompt into a new list (do not change the caller's list).
    # TODO: loop at most max_new_tokens times: call next_logits on the whole list, append the
    #       argmax as a plain int, and stop after appending end_id.
    raise NotImplementedError
