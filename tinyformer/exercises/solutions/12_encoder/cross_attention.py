"""Reference solution: cross-attention."""


def cross_attention(x, memory, w_q, w_k, w_v, w_o, n_head, mask=None):
    q = split_heads(x @ w_q, n_head)            # (B, n_head, T_q, d_head): from the decoder
    k = split_heads(memory @ w_k, n_head)       # (B, n_head, T_k, d_head): from the encoder
    v = split_heads(memory @ w_v, n_head)
    return merge_heads(attention(q, k, v, mask)) @ w_o          # (B, T_q, C)
