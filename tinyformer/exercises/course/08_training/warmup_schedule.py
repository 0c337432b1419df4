"""Learning-rate warmup and cosine decay

The learning rate does not have to stay fixed. Most Transformers are trained with a schedule
in two phases:

    warmup:  for the first `warmup_steps` updates, grow the lr linearly up to base_lr.
             At the start Adam's moment estimates rest on a handful of gradients and the
             weights are random, so big steps are risky; small ones let things settle.
    decay:   then bring it down along half a cosine, from base_lr to min_lr at
             `total_steps`, and keep it at min_lr after that. Late in training small steps
             refine what the big ones found.

Steps count the updates already taken: step 0 is the lr of the very first update. The exact
formula (tinyautograd's `WarmupCosine`, as nanoGPT writes it):

    step < warmup_steps:           lr = base_lr * (step + 1) / (warmup_steps + 1)
    warmup_steps <= step < total:  progress = (step - warmup_steps) / (total_steps - warmup_steps)
                                   lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * progress)) / 2
    step >= total_steps:           lr = min_lr

Note the "+ 1"s: the first update already gets a small non-zero lr, and the ramp reaches
base_lr exactly at step = warmup_steps, where the cosine starts (progress 0, cos 0 = 1).
With warmup_steps = 0 there is no ramp at all.

Worked example, base_lr = 1.0, min_lr = 0.1, warmup_steps = 3, total_steps = 9:
    step:  0     1     2     3     4       5       6      7       8       9     10
    lr:    0.25  0.5   0.75  1.0   0.9397  0.775   0.55   0.325   0.1603  0.1   0.1

tinyautograd/optim.py's `WarmupCosine` computes this in `lr_at(step)` and writes it into the
optimizer's param groups when it is made and at each `schedule.step()`, which a training loop
calls after `optimizer.step()`; the checker compares with it.

Your task
    Write `warmup_schedule`. It returns a Python float.

Check it with:  tinyformer exercises check warmup_schedule
"""

import math  # math.cos, math.pi


def warmup_schedule(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """The learning rate of update number `step` (0 for the first)."""
    # TODO: three cases, in this order: warmup (step < warmup_steps), after the end
    #       (step >= total_steps), and the cosine in between.
    raise NotImplementedError
