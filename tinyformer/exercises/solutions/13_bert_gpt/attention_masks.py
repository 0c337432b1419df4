def gpt_mask(ids):
    T = ids.shape[1]
    return np.tril(np.ones((T, T), dtype=bool))[None, None]


def bert_mask(ids, pad_id):
    return (ids != pad_id)[:, None, None, :]


def decoder_self_mask(tgt_ids, pad_id):
    return gpt_mask(tgt_ids) & bert_mask(tgt_ids, pad_id)


def cross_mask(src_ids, tgt_ids, pad_id):
    return bert_mask(src_ids, pad_id)
