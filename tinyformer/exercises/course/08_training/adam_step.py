"""One step of AdamW

Plain gradient descent moves every weight by lr * gradient. That is a poor fit for a network
whose gradients differ in size by orders of magnitude from one weight to the next: one lr is
too big for some and too small for others. Adam keeps two running averages per weight,

    m = beta1 * m + (1 - beta1) * g          the mean gradient (momentum)
    v = beta2 * v + (1 - beta2) * g * g      the mean squared gradient

and moves each weight by about lr * m / sqrt(v): the gradient's direction, divided by its own
typical size. Every weight then steps by roughly lr, whatever the scale of its gradient.

Bias correction. m and v start at 0, so after a few steps they are too small (after step 1,
m = 0.1 g instead of g). Dividing by 1 - beta^t, where t = 1, 2, 3, ... counts the steps, undoes
that exactly for a constant gradient:

    m_hat = m / (1 - beta1^t)        v_hat = v / (1 - beta2^t)

Weight decay, decoupled (the W in AdamW, Loshchilov & Hutter 2019). Before the Adam step, shrink
the weights by a fixed fraction, outside the gradient:

    param = param * (1 - lr * weight_decay)
    param = param - lr * m_hat / (sqrt(v_hat) + eps)

(Plain Adam would add weight_decay * param to g instead; Adam's division by sqrt(v) then
weakens the decay wherever gradients are large, which is what AdamW fixes.)

Worked example: param = [1, -2], g = [0.5, 0.5], m = v = 0, t = 1, lr = 0.1, no decay:
    m = [0.05, 0.05], v = [0.00025, 0.00025], m_hat = [0.5, 0.5], v_hat = [0.25, 0.25]
    param = [1, -2] - 0.1 * 0.5 / (0.5 + 1e-8) = [0.9, -2.1]

Shapes: param, grad, m, v are numpy arrays of one shape; step is an int (1 for the first
update). Return new arrays (new_param, new_m, new_v) and leave the ones you were given
as they were; this is numpy only, no Tensors.
tinyautograd/optim.py's `AdamW` (`Adam.update`) does exactly this in place on each parameter,
as torch.optim.AdamW does; the checker runs it beside your function for several steps.

Your task
    Write `adam_step`.

Check it with:  tinyformer exercises check adam_step
"""

import numpy as np  # np.sqrt


def adam_step(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.01):
    """One AdamW update; returns (new_param, new_m, new_v). `step` is 1 for the first update."""
    # TODO: update m and v from grad.
    # TODO: bias-correct them with 1 - beta1**step and 1 - beta2**step.
    # TODO: decay the parameter (decoupled), then take the Adam step. Return all three arrays.
    raise NotImplementedError
