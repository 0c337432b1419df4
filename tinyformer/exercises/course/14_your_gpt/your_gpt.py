"""Your GPT

Everything is in place: you wrote embeddings and positions (chapter 5), attention and the mask
(chapter 6), the block (chapter 7) and the training loop (chapter 8). Now assemble them into a
GPT and train it. For token ids (B, T):

    x = E[ids] + P[:T]                 # (B, T, C)  token embedding + learned position
    x = block_1(x) ... block_N(x)      # (B, T, C)  pre-LN blocks, each adding to the stream
    x = norm(x)                        # (B, T, C)  the final layer norm
    logits = x @ E^T                   # (B, T, V)  the tied unembedding

E is the token table (V, C), P the position table (context, C). The unembedding reuses E: the
score of token v at a position is the dot product of the stream with v's own embedding, so a
token that the model "means" scores highest. One matrix, V * C fewer parameters, and every
row of E learns from every prediction, not only from the inputs it appears in. The final norm
is there because pre-LN blocks never normalise the stream itself (chapter 7): without it the
size of x, and so of the logits, grows with depth and training.

Start both tables small, N(0, 0.02^2): the logits are dot products with rows of E, and rows
of size N(0, 1) would give logits spread over +-sqrt(C), a first loss far above the ln V of a
uniform guess. `nn.init.normal_(nn.Parameter(np.zeros(shape)), std=0.02)` draws them from
tinyautograd's generator, which `tinyautograd.manual_seed` seeds: the check then runs the
same way every time.

Teacher forcing: the model reads a window of the text and is graded, at every position, on
the token that really comes next, whatever it would have predicted itself:

    text ids  [7, 3, 5, 2, 9, ...]      start s = 0, context T = 4
    x = ids[s : s + T]         = [7, 3, 5, 2]
    y = ids[s + 1 : s + T + 1] = [3, 5, 2, 9]       y[t] is the token after x[t]

One forward pass trains all T predictions at once; the causal mask is what keeps position t
from reading y[t], which sits at x[t + 1].

The checker first tests the model's behaviour (a later token never changes earlier logits;
positions matter; one matrix embeds and unembeds; the final norm is there; every block is
used; the logits are the equations' above, with each block applied once, in turn), then
trains it on the built-in stories ("eve has a green kite. it rained. the kite of
eve is green."), with windows that start at a story's start, and measures how often it
recalls the colour from the first sentence. The counting model of chapter 2 sees only the
last two words ("eve is") and so guesses among six colours; your GPT must clearly beat it. A
few hundred steps, well under a minute.

tinyformer/gpt.py is a complete GPT (with dropout, other position schemes and GPT-2's
initialisation), and tinyformer/data.py's lm_batch cuts teacher-forcing windows at random.

Shapes
    teacher_forcing_batch(ids (N,) int, starts (B,) int, context) -> x, y: (B, context) int64
    GPT(vocab_size, context, d_model, n_layer, n_head);  GPT(...)(ids (B, T)) -> (B, T, V)

Your task
    Write `teacher_forcing_batch`, and `GPT.__init__` and `GPT.forward` from tinyautograd and
    the given `Block`. Then `python your_gpt.py` trains it and shows what it recalls.

Check it with:  tinyformer exercises check your_gpt
"""

import math

import numpy as np

from tinyautograd import nn


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (B, T, C) -> (B, T, C). Given: chapter 6."""

    def __init__(self, d_model, n_head):
        self.n_head = n_head
        self.q, self.k, self.v, self.out = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x):
        B, T, C = x.shape

        def split(t):                                   # (B, T, C) -> (B, n_head, T, d_head)
            return t.reshape(B, T, self.n_head, C // self.n_head).swapaxes(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.swapaxes(-2, -1) / math.sqrt(C // self.n_head)     # (B, n_head, T, T)
        later = np.triu(np.ones((T, T), dtype=bool), k=1)
        heads = scores.masked_fill(later, -1e9).softmax(axis=-1) @ v
        return self.out(heads.swapaxes(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """A pre-LN block: x + attention(ln1(x)), then + feed_forward(ln2(x)). Given: chapter 7.
    Its weights start at N(0, 0.02^2) and its biases at 0, as GPT-2's do."""

    def __init__(self, d_model, n_head):
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.up, self.down = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)
        for layer in (self.attn.q, self.attn.k, self.attn.v, self.attn.out, self.up, self.down):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.down(self.up(self.ln2(x)).relu())


# ---- Your part ----

def teacher_forcing_batch(ids, starts, context):
    """Inputs x and targets y (B, context): for each start s, x = ids[s : s + context] and y
    the same window one token later."""
    # TODO: one row of x and one of y per start, stacked into two (B, context) int64 arrays.
    raise NotImplementedError


class GPT(nn.Module):
    """Token embedding, learned positions, n_layer Blocks, a final norm, tied unembedding."""

    def __init__(self, vocab_size, context, d_model=32, n_layer=2, n_head=2):
        # TODO: the token table E (vocab_size, d_model) and the position table P
        #       (context, d_model), both nn.Parameter, started at N(0, 0.02^2); n_layer Blocks
        #       in an nn.ModuleList; the final nn.LayerNorm(d_model). All stored on self, where
        #       model.parameters() finds them. No separate unembedding: it is E.
        raise NotImplementedError

    def forward(self, ids):
        """Logits (B, T, vocab_size) for integer ids (B, T), T <= context."""
        # TODO: the four lines of the equations above. Indexing a Parameter with an integer
        #       array picks rows (and gradients flow back into them); .T transposes.
        raise NotImplementedError


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    from tinyautograd import functional, manual_seed, no_grad, optim
    from tinyformer.data import builtin_corpus

    manual_seed(0)
    threadpool_limits(1)            # matrices this small multiply fastest on one thread
    text = builtin_corpus(n_chars=20_000, seed=0)
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text])
    starts = np.array([0] + [i + 1 for i, c in enumerate(text) if c == "\n"])
    starts = starts[starts + 81 <= len(ids)]                    # whole windows only
    model = GPT(len(vocab), context=80)
    optimiser = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    rng = np.random.default_rng(0)
    for step in range(400):
        x, y = teacher_forcing_batch(ids, rng.choice(starts, 16), 80)
        loss = functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.3f}")
    prompt = "tom has a blue hat. a dog barked. the hat of tom is "
    with no_grad():
        logits = model(np.array([[vocab.index(c) for c in prompt]])).data[0, -1]
    print(prompt + vocab[int(logits.argmax())] + "...")
