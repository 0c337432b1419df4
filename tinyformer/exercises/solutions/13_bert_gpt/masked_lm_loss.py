def mask_tokens(ids, hidden, mask_id, ignore_index=-100):
    ids = np.asarray(ids, dtype=np.int64)
    inputs = np.where(hidden, mask_id, ids).astype(np.int64)
    targets = np.where(hidden, ids, ignore_index).astype(np.int64)
    return inputs, targets


def masked_lm_loss(logits, targets, ignore_index=-100):
    log_probs = logits.log_softmax(axis=-1)                 # (B, T, V)
    rows, cols = np.nonzero(targets != ignore_index)        # the hidden positions
    picked = log_probs[rows, cols, targets[rows, cols]]     # (|H|,)
    return -picked.mean()
