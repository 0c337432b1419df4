"""Micro-batches side by side: one batch's gradient computed in parts, on several cores.

A batch's loss is a mean over its targets, so its gradient is a weighted sum of the gradients
of its parts:

    L = sum_i w_i L_i,   dL/dθ = sum_i w_i dL_i/dθ,   w_i = n_i / n

where part i holds n_i of the batch's n counted targets (all of them for a GPT; the hidden
tokens for BERT; the target tokens other than padding for the encoder-decoder). Each part's
forward and backward need nothing from the others, so they can run at the same time: data
parallelism, as training on many GPUs does it, here on the cores of one machine.

Why whole micro-batches? Each worker does a whole micro-batch, forward and backward, and they
meet once per step. BLAS's own threads instead split every matrix product and meet at its end,
hundreds of times a step: on the small products of a small model much of that is waiting, and
beside a busy neighbour every product waits for the thread that landed on the busy core. The
elementwise work (softmax, layer norm, GELU, AdamW's inputs) is split too, which BLAS's threads
never touch.

Threads or processes? numpy lets go of Python's global lock inside its loops and matrix
products, so two threads do compute on two cores, but every numpy call takes the lock back, and
the threads touch the same Python objects: a micro-batch of the Shakespeare recipe takes 27.5
ms on each of two threads where it takes 20.7 ms alone. So where fork is safe (Linux), the
trainer forks worker processes (`Workers`), which share the parameters' memory and nothing
else, and compute at one-thread speed; elsewhere the parts run on threads (`run_in_threads`).
Both give the same numbers.

The parts are the same whatever the count, and their gradients are added in the same order, so
one thread or two, or two processes, give the same losses to the bit. Dropout draws from a
generator of each part's own (`tinyautograd.random.seeded`), seeded in order before the parts
start.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import mmap
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, ContextManager, Sequence, TypeVar

import numpy as np

import tinyautograd as ta
from tinyautograd import Tensor, nn

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
                    parameters: Sequence[Tensor], threads: int = 1,
                    workers: Workers | None = None) -> float:
    """Set each parameter's `.grad` to the gradient of the whole batch's loss, the parts (from
    `split`) computed side by side on up to `threads` threads, or, given `workers`, in up to
    `threads` processes (this one and its workers); returns that loss."""
    if len(parts) == 1:                 # nothing to share out: the plain step
        (batch, _), = parts
        loss = loss_of(batch)
        loss.backward()
        return loss.item()
    seeds = ta.random.default_generator().integers(2**63, size=len(parts))
    if workers is not None:
        if workers.loss_of != loss_of:
            raise ValueError("batch_gradients: the workers compute another loss than loss_of")
        results = workers.part_gradients(parts, seeds, threads)
    else:
        results = run_in_threads(lambda i: part_gradient(loss_of, parameters, *parts[i],
                                                         seeds[i]),
                                 range(len(parts)), threads)
    for k, p in enumerate(parameters):
        of_p = [grads[k] for _, grads in results if grads[k] is not None]          # dL_i/dp
        if of_p:
            p.grad = functools.reduce(np.add, of_p)       # in the parts' order, every time
    return sum(loss for loss, _ in results)


def part_gradient(loss_of: Callable[[Batch], Tensor], parameters: Sequence[Tensor],
                  batch: Batch, weight: float, seed: int) -> tuple[float, list]:
    """One part's weighted loss w_i L_i and its gradient w_i dL_i/dθ (an array per parameter,
    None where the loss does not reach it), its dropout drawn from a generator seeded `seed`."""
    with ta.random.seeded(int(seed)):
        loss = loss_of(batch) * weight
    return loss.item(), [None if g is None else g.data for g in ta.grad(loss, parameters)]


class Workers:
    """Processes, forked from this one, that compute micro-batches beside it.

    Threads share Python's lock, and the reference counts of every object they both touch: two
    micro-batches of the Shakespeare recipe on two threads take 27.5 ms each, where one alone
    takes 20.7 ms. Forked processes share neither, and each computes its part at one-thread
    speed. What they do share is memory: the parameters are moved into a shared mapping (the
    optimizer updates them in place, so every process computes with the new values), and each
    worker writes its part's gradient into a shared buffer of its own, which this process
    reads. A worker serves parts until it is closed, or until this process is gone.

        with Workers(loss_of, model, parameters, n=1) as workers:
            ... batch_gradients(loss_of, parts, parameters, threads=2, workers=workers)

    Linux only (`available()`): elsewhere fork is missing (Windows) or unsafe (macOS's
    system libraries), and the micro-batches run on threads instead.
    """

    def __init__(self, loss_of: Callable[[Batch], Tensor], model: nn.Module,
                 parameters: Sequence[Tensor], n: int) -> None:
        self.loss_of, self.model, self.parameters = loss_of, model, list(parameters)
        _into_shared_memory(self.parameters)
        self.buffers = [_shared_like(self.parameters) for _ in range(n)]
        self.connections, self.pids = [], []
        for buffer in self.buffers:
            ours, theirs = multiprocessing.Pipe()
            try:
                pid = os.fork()
            except OSError:                     # no more processes allowed, say
                ours.close()
                theirs.close()
                self.close()
                raise
            if pid == 0:                                        # the worker: never returns
                for parents_end in [ours, *self.connections]:  # so that each sees the end
                    parents_end.close()
                _serve(theirs, loss_of, model, self.parameters, buffer)
            theirs.close()
            self.connections.append(ours)
            self.pids.append(pid)

    @staticmethod
    def available() -> bool:
        return sys.platform.startswith("linux") and hasattr(os, "fork")

    def part_gradients(self, parts: Sequence[tuple[Batch, float]], seeds: Sequence[int],
                       threads: int) -> list[tuple[float, list]]:
        """part_gradient of every part, in order: part i in process i % n, n = `threads`
        processes (this one first), a round at a time."""
        n = min(threads, len(parts), 1 + len(self.connections))
        blas = threads // n                # the threads left over, for each process's BLAS
        results = [None] * len(parts)
        for first in range(0, len(parts), n):
            sent = list(range(first + 1, min(first + n, len(parts))))
            with _worker_lost():
                for i, connection in zip(sent, self.connections):
                    connection.send((parts[i], seeds[i], self.model.training, blas))
            with blas_threads(blas):
                results[first] = part_gradient(self.loss_of, self.parameters, *parts[first],
                                               seeds[first])
            for i, connection, buffer in zip(sent, self.connections, self.buffers):
                results[i] = self._received(connection, buffer)
        return results

    def _received(self, connection, buffer):
        with _worker_lost():
            reply = connection.recv()
        if isinstance(reply, BaseException):       # raised here, as a thread's would be
            raise reply
        if isinstance(reply, str):                 # one that could not travel: its words
            raise RuntimeError(f"a micro-batch worker failed: {reply}")
        loss, reached = reply
        return loss, [array.copy() if got else None for array, got in zip(buffer, reached)]

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers and wait for them."""
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.send(None)
            connection.close()
        for pid in self.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.connections, self.pids = [], []


@contextlib.contextmanager
def _worker_lost():
    """A worker that is gone (killed: out of memory, say) as one line."""
    try:
        yield
    except (EOFError, OSError):
        raise RuntimeError("a micro-batch worker process ended without an answer (out of "
                           "memory?); train with --threads 1 to compute in one process"
                           ) from None


def workers_for(loss_of: Callable[[Batch], Tensor], model: nn.Module,
                parameters: Sequence[Tensor], processes: int,
                micro_batches: int) -> ContextManager[Workers | None]:
    """Workers for up to `processes` processes (this one included) sharing `micro_batches`
    parts, where there is more than one process's work and fork is safe; else None (the
    parts then run on threads)."""
    n = min(processes, micro_batches) - 1
    if n < 1 or not Workers.available():
        return contextlib.nullcontext()
    try:
        return Workers(loss_of, model, parameters, n)
    except OSError:                 # no fork or shared memory here after all: threads, then
        return contextlib.nullcontext()


def _serve(connection, loss_of, model, parameters, buffer):
    """A worker's life: a part in, its loss and gradient out, until told to stop or orphaned.
    Ctrl-C is the parent's to handle (it stops at the end of a step)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    status = 0
    try:
        while True:
            try:
                message = connection.recv()
            except EOFError:                      # the parent is gone
                break
            if message is None:
                break
            (batch, weight), seed, training, blas = message
            try:
                model.train(training)
                with blas_threads(blas):
                    loss, grads = part_gradient(loss_of, parameters, batch, weight, seed)
                for array, g in zip(buffer, grads):
                    if g is not None:
                        array[...] = g
                connection.send((loss, [g is not None for g in grads]))
            except Exception as error:            # told to the parent, which raises it
                try:
                    connection.send(error)
                except Exception:                 # an exception that does not pickle
                    connection.send(f"{type(error).__name__}: {error}")
    except BaseException:
        status = 1
    finally:
        os._exit(status)                          # not the parent's exit handlers


def _into_shared_memory(parameters):
    """Move each parameter's array into one mapping shared with processes forked later."""
    for p, shared in zip(parameters, _shared_like(parameters)):
        shared[...] = p.data
        p.data = shared


def _shared_like(parameters):
    """Zeroed arrays shaped as the parameters, in one anonymous mapping that forked processes
    share (each array starts on a 64-byte boundary, as numpy's own do)."""
    sizes = [-(-p.data.nbytes // 64) * 64 for p in parameters]
    memory = mmap.mmap(-1, max(sum(sizes), 1))
    arrays, offset = [], 0
    for p, size in zip(parameters, sizes):
        arrays.append(np.frombuffer(memory, dtype=p.dtype, count=p.size,
                                    offset=offset).reshape(p.shape))
        offset += size
    return arrays


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
