"""The training loop

Everything so far computes things. Training is the loop that changes the weights so that
the computed loss goes down. Each step has five parts, always in this order:

    logits = model(inputs)                        # 1. forward: predictions
    loss = cross_entropy(logits, targets)         # 2. one number: how wrong they are
    optimizer.zero_grad()                         # 3. clear the old gradients
    loss.backward()                               # 4. d loss / d every parameter, into .grad
    optimizer.step()                              # 5. move every parameter against its .grad

Why zero_grad? backward ADDS into .grad (a weight used twice gets both contributions), so
without clearing, each step's gradient would be piled on top of all earlier ones. It must
come before backward (or at the end of the previous step), never between backward and step:
step would then find no gradients and do nothing.

The model here is a bigram model: it sees one character and predicts the next, through an
embedding, GELU and a linear layer. The data is a short text; inputs[i] is character i and
targets[i] is character i + 1. With no context beyond one character it cannot be perfect
(after "t", "h" and " " both come), but it can learn a lot: the loss starts near
log(vocab_size) (a uniform guess) and should fall below 1.

    inputs, targets: (N,) integer ids          logits: (N, vocab_size)

Record `loss.item()` (a Python float) at every step, before the update, and return the list.
The checker runs your loop on a freshly seeded model beside tinyformer's reference loop
(the same five lines), compares the losses step by step, and checks that the parameters
moved and the final loss is low. Run this file (python training_loop.py) to watch it learn.
tinyformer/train.py's loop is this one with batches, gradient clipping, a learning-rate
schedule, evaluation and checkpoints around it.

Your task
    Write the loop in `train`. The optimizer is made for you.

Check it with:  tinyformer exercises check training_loop
"""

import numpy as np

import tinyautograd
from tinyautograd import functional, nn, optim

TEXT = "the cat sat on the mat. the rat ate the hat. "


def make_data(text=TEXT):
    """The vocabulary (sorted characters) and the (inputs, targets) id arrays."""
    vocab = sorted(set(text))
    ids = np.array([vocab.index(ch) for ch in text])
    return vocab, ids[:-1], ids[1:]              # predict character i + 1 from character i


class Bigram(nn.Module):
    """A character's embedding, GELU, then logits over the next character."""

    def __init__(self, vocab_size, d_model=16):
        self.embed = nn.Embedding(vocab_size, d_model)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, ids):
        return self.out(self.embed(ids).gelu())  # (N,) -> (N, d_model) -> (N, vocab_size)


def train(model, inputs, targets, steps=60, lr=0.05):
    """Train `model` for `steps` AdamW updates; return the loss before each update."""
    optimizer = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    # TODO: repeat `steps` times: forward, loss (functional.cross_entropy(logits, targets)),
    #       zero_grad, backward, step. Append loss.item() to `losses` each time.
    raise NotImplementedError


if __name__ == "__main__":
    vocab, inputs, targets = make_data()
    tinyautograd.manual_seed(0)
    losses = train(Bigram(len(vocab)), inputs, targets)
    for step in range(0, len(losses), 10):
        print(f"step {step:3d}  loss {losses[step]:.3f}")
    print(f"final loss {losses[-1]:.3f}")
