"""Reference solution: greedy decoding."""

import numpy as np


def greedy(next_logits, prompt, max_new_tokens, end_id=None):
    ids = [int(i) for i in prompt]
    for _ in range(max_new_tokens):
        token = int(np.argmax(next_logits(list(ids))))
        ids.append(token)
        if token == end_id:
            break
    return ids
