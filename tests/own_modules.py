"""A module of a user's own, which no model of ours builds, for the tests of what the trainer,
the checkpoints and the exports make of a model that holds one."""

from tinyautograd import nn


class TwoExperts(nn.Module):
    """A feed-forward network of two experts, mixed by a gate: a module GPT never builds."""

    def __init__(self, d):
        self.gate, self.e0, self.e1 = nn.Linear(d, 2), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        g = self.gate(x).softmax(axis=-1)
        return g[..., :1] * self.e0(x) + g[..., 1:] * self.e1(x)
