"""Micro-batches side by side: one batch's gradient computed in parts, on several threads.

A batch's loss is a mean over its targets, so its gradient is a weighted sum of the gradients
of its parts:

    L = sum_i w_i L_i,   dL/dθ = sum_i w_i dL_i/dθ,   w_i = n_i / n

where part i holds n_i of the batch's n counted targets (all of them for a GPT; the hidden
tokens for BERT; the target tokens other than padding for the encoder-decoder). Each part's
forward and backward need nothing from the others, so they can run at the same time: data
parallelism, as training on many GPUs does it, here on the cores of one machine.

Why threads, and why whole micro-batches? numpy lets go of Python's global lock inside its
loops and matrix products, so two threads compute on two cores. Each thread does a whole
micro-batch, forward and backward, and the threads meet once per step. BLAS's own threads
instead split every matrix product and meet at its end, hundreds of times a step: on the small
products of a small model much of that is waiting, and beside a busy neighbour every product
waits for the thread that landed on the busy core. The elementwise work (softmax, layer norm,
GELU, AdamW's inputs) is split too, which BLAS's threads never touch.

The parts are the same whatever the thread count, and their gradients are added in the same
order, so one thread or two give the same losses to the bit. Dropout draws from a generator of
each part's own (`tinyautograd.random.seeded`), seeded in order before the threads start.
"""

from __future__ import annotations

import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import numpy as np

import tinyautograd as ta
from tinyautograd import Tensor

from .resources import blas_threads, usable_cores

Batch = tuple[np.ndarray, ...]          # arrays whose first axis is the batch's rows
Item, Result = TypeVar("Item"), TypeVar("Result")


def split(batch: Batch, n: int, counted: Callable[[Batch], int]) -> list[tuple[Batch, float]]:
    """The batch cut into `n` micro-batches of consecutive rows, each with its weight: its
    share of the targets the loss averages over (`counted(part)`). A part with no counted
    targets (no token hidden in its rows, say, or no rows at all when the batch has fewer
    than `n`) adds nothing to the gradient and is left out."""
    if n <= 1:
        return [(batch, 1.0)]
    parts = list(zip(*(np.array_split(array, n) for array in batch)))
    counts = [counted(part) for part in parts]
    total = sum(counts)
    if total == 0:                         # nothing to learn from: the loss decides what then
        return [(batch, 1.0)]
    return [(part, count / total) for part, count in zip(parts, counts) if count > 0]


def batch_gradients(loss_of: Callable[[Batch], Tensor], parts: Sequence[tuple[Batch, float]],
                    parameters: Sequence[Tensor], threads: int = 1) -> float:
    """Set each parameter's `.grad` to the gradient of the whole batch's loss, the parts (from
    `split`) computed side by side on up to `threads` threads; returns that loss."""
    if len(parts) == 1:                 # nothing to share out: the plain step
        (batch, _), = parts
        loss = loss_of(batch)
        loss.backward()
        return loss.item()
    seeds = ta.random.default_generator().integers(2**63, size=len(parts))

    def part_gradient(i: int) -> tuple[float, list[Tensor | None]]:
        batch, weight = parts[i]
        with ta.random.seeded(int(seeds[i])):
            loss = loss_of(batch) * weight                          # w_i L_i
        return loss.item(), ta.grad(loss, parameters)               # w_i dL_i/dθ

    results = run_in_threads(part_gradient, range(len(parts)), threads)
    for k, p in enumerate(parameters):
        of_p = [grads[k].data for _, grads in results if grads[k] is not None]     # dL_i/dp
        if of_p:
            p.grad = functools.reduce(np.add, of_p)       # in the parts' order, every time
    return sum(loss for loss, _ in results)


def run_in_threads(work: Callable[[Item], Result], items: Sequence[Item],
                   threads: int) -> list[Result]:
    """[work(item) for item in items], on up to `threads` threads at once. BLAS gets the
    threads left over meanwhile (threads // workers each: one apiece on two cores)."""
    workers = min(threads, len(items))
    if workers <= 1:
        return [work(item) for item in items]
    # A new thread starts from an empty context: numpy's error settings (np.errstate) would
    # be the defaults there. Each item runs in a copy of the caller's instead.
    caller = contextvars.copy_context()

    def in_callers_context(item: Item) -> Result:
        return caller.copy().run(work, item)

    with blas_threads(threads // workers):
        return list(_pool().map(in_callers_context, items))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """One pool for the process, made on first use: threads cost little while they wait."""
    return ThreadPoolExecutor(max_workers=usable_cores(), thread_name_prefix="micro-batch")


def without_graph(work: Callable[[Item], Result]) -> Callable[[Item], Result]:
    """`work` under no_grad in whichever thread runs it: the engine's modes are each thread's
    own, so a caller's no_grad does not reach a worker."""
    @functools.wraps(work)
    def run(item: Item) -> Result:
        with ta.no_grad():
            return work(item)
    return run
