"""Reference solution: the training loop."""

from tinyautograd import functional, optim


def train(model, inputs, targets, steps=60, lr=0.05):
    optimizer = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        logits = model(inputs)                                  # (N, vocab_size)
        loss = functional.cross_entropy(logits, targets)
        optimizer.zero_grad()                                   # backward adds: clear first
        loss.backward()
        optimizer.step()
        losses.append(loss.item())                              # the loss before this update
    return losses
