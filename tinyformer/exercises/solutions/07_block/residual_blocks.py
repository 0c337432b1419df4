"""Reference solution: pre-LN and post-LN blocks."""


def pre_ln_block(x, attn, ffn, ln1, ln2):
    x = x + attn(ln1(x))           # the residual stream: x itself is never normalised
    return x + ffn(ln2(x))


def post_ln_block(x, attn, ffn, ln1, ln2):
    x = ln1(x + attn(x))           # normalise after adding
    return ln2(x + ffn(x))
