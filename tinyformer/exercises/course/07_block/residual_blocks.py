"""Residual connections and layer norm: pre-LN and post-LN blocks

A Transformer block is two sub-layers, self-attention and then the feed-forward network,
each wrapped in a residual connection ("add the sub-layer's output to its input") and a layer
norm. Where the norm goes is the whole difference between the two designs:

    post-LN ("Attention Is All You Need", 2017):
        x = ln1(x + attn(x))
        x = ln2(x + ffn(x))

    pre-LN (GPT-2 and most models since):
        x = x + attn(ln1(x))
        x = x + ffn(ln2(x))

In pre-LN, x itself is never normalised on its way through: each sub-layer reads a normalised
copy and ADDS its result. Follow x from the input to the output of a stack of N blocks and
you find x_out = x_in + (sum of every sub-layer's contribution). That sum of identities is the
"residual stream". Its gradient has a direct path too: d x_out / d x_in = I + (the sub-layers'
terms), so the loss's gradient reaches the first layer undamped however deep the stack is.

In post-LN, every sub-layer's output goes through a layer norm before the next block sees it,
so the gradient to the early layers passes through 2N layer norms, which rescale it each time.
Deep post-LN stacks train, but need a learning-rate warmup and care; pre-LN ones usually just
train. (Post-LN keeps the size of x in check by construction; pre-LN adds a final layer norm
after the last block, as GPT does, for the same purpose.)

A check you can do in your head: if both sub-layers output zeros, a pre-LN block returns x
unchanged, while a post-LN block returns ln2(ln1(x)). The checker starts with exactly that.

Shapes
    x: (B, T, C) Tensor;  attn, ffn, ln1, ln2: functions (B, T, C) -> (B, T, C)
    returns: (B, T, C) Tensor

The four sub-layers are handed to you as functions, so this exercise is only the wiring. The
checker passes the pieces of tinyformer/blocks.py's `DecoderLayer` (its causal
self-attention, its FeedForward and its two LayerNorms), and compares with the layer's own
forward and gradients. That file writes both orders in one function, `residual`.

Your task
    Write `pre_ln_block` and `post_ln_block`.

Check it with:  tinyformer exercises check residual_blocks
"""


def pre_ln_block(x, attn, ffn, ln1, ln2):
    """Pre-LN: normalise a copy for each sub-layer, add its output to x."""
    # TODO: the attention sub-layer, then the feed-forward one, as in the pre-LN equations
    #       above. Each line adds to x; only the sub-layer's input is normalised.
    raise NotImplementedError


def post_ln_block(x, attn, ffn, ln1, ln2):
    """Post-LN: add each sub-layer's output to x, then normalise the sum."""
    # TODO: the attention sub-layer, then the feed-forward one, as in the post-LN equations
    #       above. Each line normalises the sum of x and the sub-layer's output.
    raise NotImplementedError
