"""Reference solution: multi-head attention."""


def split_heads(x, n_head):
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).swapaxes(1, 2)   # (B, n_head, T, d_head)


def merge_heads(x):
    B, n_head, T, d_head = x.shape
    return x.swapaxes(1, 2).reshape(B, T, n_head * d_head)        # (B, T, C)


def multi_head_attention(x, w_q, w_k, w_v, w_o, n_head, mask=None):
    q = split_heads(x @ w_q, n_head)
    k = split_heads(x @ w_k, n_head)
    v = split_heads(x @ w_v, n_head)
    return merge_heads(attention(q, k, v, mask)) @ w_o
