"""Train a small MLP on two interleaved half-moons with tinyautograd, and watch it learn.

    python examples/moons.py

No straight line separates the two moons, so the network has to bend its decision boundary:
two hidden layers with ReLU, cross-entropy, backward, AdamW, and a few hundred steps.
"""

import numpy as np

import tinyautograd as ta
import tinyautograd.functional as F
from tinyautograd import nn, optim


def two_moons(n, noise=0.1, seed=0):
    """n points on two interleaved half circles, labelled 0 and 1."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(label == 0, np.cos(angle), 1 - np.cos(angle))
    y = np.where(label == 0, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x, y], axis=1) + rng.normal(0, noise, (n, 2))
    return points.astype(np.float32), label


def train(steps=300, seed=0, verbose=True):
    """Train for `steps` updates of AdamW; returns the loss and accuracy of the model they
    leave (on the 200 training points)."""
    ta.manual_seed(seed)
    points, labels = two_moons(200, seed=seed)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 2))
    optimizer = optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.0)
    inputs = ta.Tensor(points)
    for step in range(steps):
        logits = model(inputs)                             # (200, 2)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if verbose and step % 50 == 0:                     # before this step's update
            accuracy = (logits.data.argmax(axis=1) == labels).mean()
            print(f"step {step:4d}   loss {loss.item():.4f}   accuracy {accuracy:6.1%}")
    # The numbers of the model as trained: the loop's last loss is from before its update.
    with ta.no_grad():
        logits = model(inputs)
        loss = F.cross_entropy(logits, labels)
    return loss.item(), (logits.data.argmax(axis=1) == labels).mean()


if __name__ == "__main__":
    print(__doc__.splitlines()[0] + "\n")
    loss, accuracy = train()
    print(f"\nfinal: loss {loss:.4f}, accuracy {accuracy:.1%} on 200 points")
