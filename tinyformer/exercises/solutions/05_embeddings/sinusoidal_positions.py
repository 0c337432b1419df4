"""Reference solution: sinusoidal positions."""

import numpy as np


def sinusoidal_positions(context, d_model):
    pos = np.arange(context)[:, None]                       # (context, 1)
    two_i = np.arange(0, d_model, 2)                        # (d_model/2,)
    angle = pos / 10000 ** (two_i / d_model)                # (context, d_model/2)
    table = np.zeros((context, d_model))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle)
    return table
