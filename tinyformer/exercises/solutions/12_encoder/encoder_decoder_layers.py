"""Reference solution: the encoder layer and the decoder layer (post-LN)."""


def encoder_layer(x, w, n_head, mask):
    x = norm(x + multi_head_attention(x, x, w, "self", n_head, mask), w, 1)
    return norm(x + feed_forward(x, w), w, 2)


def decoder_layer(y, memory, w, n_head, self_mask, memory_mask):
    y = norm(y + multi_head_attention(y, y, w, "self", n_head, self_mask), w, 1)
    y = norm(y + multi_head_attention(y, memory, w, "cross", n_head, memory_mask), w, 2)
    return norm(y + feed_forward(y, w), w, 3)
