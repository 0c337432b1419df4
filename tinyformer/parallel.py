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
Both give the same numbers. The processes share out the rest of the step too: adding the
parts' gradients, clipping them and the optimizer's update, each for a share of the parameters
(`step_share`), which one process alone spends a tenth of the step on. Work that only computes
(evaluation: a loss per validation batch) runs the same way through `side_by_side`, which forks
its processes for the call.

The parts are the same whatever the count, and their gradients are added in the same order, so
one thread or two, or two processes, give the same losses to the bit. Dropout draws from a
generator of each part's own (`tinyautograd.random.seeded`), seeded in order before the parts
start.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import mmap
import multiprocessing
import os
import signal
import sys
import threading
import traceback
import warnings
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, ContextManager, Iterator, NamedTuple, Sequence, TypeVar

import numpy as np

import tinyautograd as ta
from tinyautograd import Tensor, nn, optim
from tinyautograd.optim import Optimizer

from .resources import blas_threads

Batch = tuple[np.ndarray, ...]          # arrays whose first axis is the batch's rows
Item = TypeVar("Item")
Result = TypeVar("Result")


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
    # Set, not added to: backward adds to a .grad already there, and a parameter that no part
    # reaches would keep an earlier batch's. (The trainer's step relies on it: no zero_grad.)
    for p in parameters:
        p.grad = None
    if len(parts) == 1:                 # nothing to share out: the plain step
        (batch, _), = parts
        loss = loss_of(batch)
        loss.backward()
        return loss.item()
    seeds = _seeds(parts)
    results = run_in_threads(lambda i: part_gradient(loss_of, parameters, *parts[i], seeds[i]),
                             range(len(parts)), threads)
    for k, p in enumerate(parameters):
        of_p = [grads[k] for _, grads in results if grads[k] is not None]          # dL_i/dp
        if of_p:
            p.grad = functools.reduce(np.add, of_p)       # in the parts' order, every time
    return sum(loss for loss, _ in results)


def _seeds(parts):
    """A seed for each part's dropout, drawn from the engine's generator in the parts' order."""
    return ta.random.default_generator().integers(2**63, size=len(parts))


def part_gradient(loss_of: Callable[[Batch], Tensor], parameters: Sequence[Tensor],
                  batch: Batch, weight: float, seed: int) -> tuple[float, list]:
    """One part's weighted loss w_i L_i and its gradient w_i dL_i/dθ (an array per parameter,
    None where the loss does not reach it or the parameter is frozen), its dropout drawn from
    a generator seeded `seed`."""
    with ta.random.seeded(int(seed)):
        loss = loss_of(batch) * weight
    # A frozen parameter (requires_grad_(False), to fine-tune the rest) gets no gradient, as
    # backward leaves it in a batch of one part: ta.grad refuses to differentiate by it.
    found = iter(ta.grad(loss, [p for p in parameters if p.requires_grad]))
    grads = [next(found) if p.requires_grad else None for p in parameters]
    return loss.item(), [None if g is None else g.data for g in grads]


# The signals that ask a run to stop: Ctrl-C, SIGTERM (`kill`, `timeout`, a container's or a
# cluster's stop) and SIGHUP (the terminal closed; none on Windows). They are the process's that
# forks to handle (the trainer finishes its step first), never its children's: `forked`.
STOPPING = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))


@contextlib.contextmanager
def handling(signums: Sequence[int], handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Inside, `handler` handles each of `signums`; on the way out, what handled them before
    does again. Only the main thread runs handlers, so elsewhere nothing changes; nor for a
    signal whose handler was not set from Python (None), which could not be put back; nor for
    one that is ignored, which this process was started to ignore (SIGHUP under `nohup`, a
    run meant to outlive its terminal; SIGINT in a script's `&`); nor in a child forked
    inside, which keeps what it set for itself."""
    previous, here = {}, os.getpid()
    try:
        if threading.current_thread() is threading.main_thread():
            for signum in signums:
                theirs = signal.getsignal(signum)
                if theirs is not None and theirs != signal.SIG_IGN:
                    previous[signum] = theirs      # noted first: a signal that raises in
                    signal.signal(signum, handler)  # between still finds it put back
        yield
    finally:
        if os.getpid() == here:
            _every([functools.partial(signal.signal, signum, theirs)
                    for signum, theirs in previous.items()])


def _every(calls: list[Callable[[], Any]]) -> None:
    """Make each call, every one of them even if a call before raises (a handler of a signal
    waiting to be handled, say, that runs as soon as it is set, or raised)."""
    if calls:
        try:
            calls[0]()
        finally:
            _every(calls[1:])


# What os.fork warns from Python 3.12 on in a process with more than one thread (`forked`).
FORK_WITH_THREADS = (r"This process \(pid=\d+\) is multi-threaded, use of fork\(\) may lead "
                     r"to deadlocks in the child")


@contextlib.contextmanager
def forked() -> Iterator[int]:
    """os.fork() as a block, `with forked() as pid:`, the child ignoring Ctrl-C, SIGTERM and
    SIGHUP (`STOPPING`) from its start.

    Ctrl-C reaches every process of the terminal's group (SIGTERM may, sent to the group; SIGHUP
    does, sent by the shell as its terminal closes), and it is the parent's to handle: in a
    child, the trainer's handler, inherited, would announce a checkpoint a second time, Python's
    own Ctrl-C would raise KeyboardInterrupt, which would run the parent's code on in the child,
    and SIGTERM's and SIGHUP's default would end it in the middle of a step. So all are blocked
    across the fork: a child starts with none waiting, and ignores them before it takes any. The
    parent holds one that comes during the block, and takes it at the block's end, once the
    block has noted the child (its pid, its pipe): raised any sooner, a KeyboardInterrupt would
    leave a child the parent does not know of, and cannot stop. Blocking alone does not hold it
    in the parent, since a signal is the whole process's, and any other thread (BLAS's, say)
    takes it for Python's handler; the handlers are swapped instead (where there is one to swap:
    in the main thread, the only one that runs them)."""
    held, pid = [], None
    try:
        with handling(STOPPING, lambda number, frame: held.append(number)):
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
            try:
                # From Python 3.12 fork warns when the process has other threads: one that
                # held a lock at the fork holds it for ever in the child. The trainer's own
                # process has none then (run_in_threads joins its threads before it returns;
                # OpenBLAS stops its pool before every fork, pthread_atfork, and the child
                # starts its own), so it is not warned. Other threads are a caller's (a
                # notebook's, torch's, a test's), and the child takes no lock they could
                # hold: it reads its pipe, computes with numpy (glibc's malloc and OpenBLAS
                # are ready for fork), writes its pipe and leaves by os._exit, which flushes
                # no file and runs none of the parent's exit handlers. So that warning, and
                # only it, is not shown.
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", FORK_WITH_THREADS, DeprecationWarning)
                    pid = os.fork()
                if pid == 0:
                    for signum in STOPPING:
                        signal.signal(signum, signal.SIG_IGN)
                yield pid
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    finally:
        if pid != 0:                                    # (a child goes on ignoring them)
            _every([functools.partial(signal.raise_signal, signum)   # to its own handler,
                    for signum in dict.fromkeys(held)])  # now: each once, in their order


class Workers:
    """Processes, forked from this one, that share each training step with it.

    Threads share Python's lock, and the reference counts of every object they both touch (what
    that costs: the module's docstring); forked processes share neither, and each computes its
    part at one-thread speed. What they do share is memory: the parameters and the optimizer's
    state are moved into shared mappings, and each part's gradient is written into a shared
    buffer of its own.
    So the whole step is shared out (`update`), not only the parts: each process then adds,
    clips and updates a share of the parameters, where one process alone would spend a tenth
    of the step on it. A worker serves steps until it is closed, or until this process is gone.

        with Workers(loss_of, model, parameters, optimizer, n=1, parts=2) as workers:
            loss, norm = workers.update(loss_of, parallel.split(batch, 2, counted), 2, clip)

    Linux only (`available()`): elsewhere fork is missing (Windows) or unsafe (macOS's
    system libraries), and the micro-batches run on threads instead. Only for an optimizer
    whose state is made whole before any update (`shares_its_state`): ValueError otherwise.
    """

    def __init__(self, loss_of: Callable[[Batch], Tensor], model: nn.Module,
                 parameters: Sequence[Tensor], optimizer: Optimizer, n: int,
                 parts: int = 2) -> None:
        if not shares_its_state(optimizer):
            raise ValueError(f"Workers: {type(optimizer).__name__} makes state arrays at a "
                             f"parameter's first update (SGD does with dampening), which "
                             f"worker processes cannot share; run the micro-batches on "
                             f"threads (workers_for gives None for such an optimizer)")
        self.loss_of, self.model, self.optimizer = loss_of, model, optimizer
        self.parameters = list(parameters)
        for p, shared in zip(self.parameters, _shared_copies([p.data for p in self.parameters])):
            p.data = shared
        _optimizer_state_into_shared_memory(optimizer)
        # A buffer for each part's gradient, of zeros as a new mapping is, which takes memory
        # only where a step writes it: not for the parts beyond a batch's rows, which none
        # fills (--micro-batches 256 on a batch of 4 took 256 gradients' memory).
        self.gradients = [_shared_zeros([p.data for p in self.parameters])
                          for _ in range(parts)]
        self.connections, self.pids = [], []
        try:
            for _ in range(n):
                ours, theirs = multiprocessing.Pipe()
                self.connections.append(ours)           # closed by close(), whatever comes next
                try:
                    with forked() as pid:
                        if pid == 0:                                # the worker: never returns
                            for parents_end in self.connections:   # so that each sees the end
                                parents_end.close()
                            _serve(theirs, self)
                        self.pids.append(pid)
                finally:
                    theirs.close()
        except BaseException:       # no more processes allowed, say, or Ctrl-C: none left behind
            self.close()
            raise

    @staticmethod
    def available() -> bool:
        """Whether worker processes can be forked here: on Linux only (fork elsewhere is
        missing, or unsafe with the system's libraries, as on macOS)."""
        return sys.platform.startswith("linux") and hasattr(os, "fork")

    def processes(self, threads: int, parts: int) -> int:
        """How many processes a step of `parts` parts on `threads` threads runs in."""
        return min(threads, parts, 1 + len(self.connections))

    def update(self, loss_of: Callable[[Batch], Tensor], parts: Sequence[tuple[Batch, float]],
               threads: int, clip: float) -> tuple[float, float | None]:
        """One optimizer step shared out over `processes(threads, len(parts))` processes (this
        one and its workers; see `step_share`); each parameter's `.grad` is left holding the
        batch's gradient, clipped. Returns the batch's loss and the gradient's norm before
        clipping (None when `clip` is 0)."""
        if loss_of != self.loss_of:
            raise ValueError("Workers.update: the workers compute another loss than loss_of")
        if len(parts) > len(self.gradients):
            raise ValueError(f"Workers.update: {len(parts)} parts, where these workers were "
                             f"made for at most {len(self.gradients)}")
        n = self.processes(threads, len(parts))
        # A group's options, not its parameters or their names: the lr changes from step to
        # step, and a schedule of one's own may change any other (betas, a list or a tuple).
        groups = [{key: value for key, value in group.items()
                   if key not in ("params", "param_names")}
                  for group in self.optimizer.param_groups]
        step = Step(parts, _seeds(parts), n, self.model.training, threads // n, clip, groups,
                    _scalars(self.optimizer, self.parameters, range(len(self.parameters))))
        with _worker_lost(self):
            for me, connection in enumerate(self.connections[:n - 1], start=1):
                connection.send((me, step))
        return step_share(0, step, self, self._meet(n))

    def _meet(self, n):
        """How this process meets the step's other n - 1: it gathers what each brings, and
        hands everyone the list; an error any of them brought stops the step everywhere."""
        def meet(mine):
            everyone = [mine]
            with _worker_lost(self):
                for connection in self.connections[:n - 1]:
                    everyone.append(connection.recv())
                failed = any(isinstance(x, (BaseException, str)) for x in everyone)
                for connection in self.connections[:n - 1]:
                    connection.send(None if failed else everyone)
            if failed:                                 # raised here, as a thread's would be
                del mine                               # held by `everyone` only
                _raise_brought(everyone)
            return everyone
        return meet

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


class Step(NamedTuple):
    """What every process of a step needs to know, sent to each worker at its start."""
    parts: Sequence[tuple[Batch, float]]
    seeds: Sequence[int]
    n: int                      # the processes sharing it
    training: bool              # the model's mode
    blas: int                   # BLAS threads for each process
    clip: float
    groups: list[dict]          # the optimizer's groups' options (the lr of this step)
    scalars: dict[int, dict]    # the optimizer's state other than arrays (Adam's step counts)


def step_share(me: int, step: Step, workers: Workers,
               meet: Callable[[object], list]) -> tuple[float, float | None]:
    """What process `me` of the step's n does, the same in every one of them:

    1. the gradients of its parts, part i in process i % n, each into a shared buffer of its
       own (`_part_gradients`; parts dealt from a shared counter, and processes pinned to
       cores, were measured and not kept: BENCHMARKS.md);
    2. for its share of the parameters (the n-th part `me` of them, in order), the sum of the
       parts' gradients, in the parts' order, so that the bits are a single process's
       (`_summed`);
    3. clipped by the whole gradient's norm, from everyone's sums of squares in order;
    4. the optimizer's update of its share (`_updated`).

    They meet (`meet(what this one brings) -> what each brought`) after step 1, after step 2
    (bringing their sums of squares) and after step 4 (bringing the state's new scalars).
    Then every process's `.grad`s and optimizer state are the whole step's. Returns the loss
    and the norm before clipping (None: not clipped)."""
    parameters, optimizer = workers.parameters, workers.optimizer
    losses, reached = {}, {}
    for their_losses, their_reached in _together(meet, _part_gradients, me, step, workers):
        losses.update(their_losses)
        reached.update(their_reached)
    mine = _shares(parameters, step.n)[me]
    # dL_i/dp for each parameter p, in the parts' order; their sum goes into the first.
    of = [[workers.gradients[i][k] for i in range(len(step.parts)) if reached[i][k]]
          for k in range(len(parameters))]
    squares = [s for theirs in _together(meet, _summed, parameters, of, mine, step.clip)
               for s in theirs]
    norm = None
    if step.clip:
        norm = optim.clip_grad_norm(parameters, step.clip, total_norm=math.sqrt(sum(squares)))
    for theirs in _together(meet, _updated, optimizer, parameters, step, mine):
        _set_scalars(optimizer, parameters, theirs)
    for p, of_p in zip(parameters, of):          # every share's sum, clipped: all of it
        p.grad = of_p[0] if of_p else None
    return sum(losses[i] for i in range(len(step.parts))), norm


def _part_gradients(me, step, workers):
    """step_share's 1: the gradients of process `me`'s parts (i = me, me + n, ...), each
    written into its part's shared buffer. Returns ({part: its weighted loss}, {part: for each
    parameter, whether the part's loss reaches it})."""
    losses, reached = {}, {}
    workers.model.train(step.training)
    with blas_threads(step.blas):
        for i in range(me, len(step.parts), step.n):
            losses[i], grads = part_gradient(workers.loss_of, workers.parameters,
                                             *step.parts[i], step.seeds[i])
            for buffer, g in zip(workers.gradients[i], grads):
                if g is not None:
                    buffer[...] = g
            reached[i] = [g is not None for g in grads]
    return losses, reached


def _summed(parameters, of, mine, clip):
    """step_share's 2: each parameter numbered in `mine` gets as its `.grad` the sum of its
    parts' gradients `of[k]`, added in order into the first; the others get none, so that the
    optimizer updates this share alone. Returns the sums' sums of squares (none unless `clip`)."""
    for k, (p, of_p) in enumerate(zip(parameters, of)):
        p.grad = None
        if k in mine and of_p:
            p.grad = functools.reduce(lambda a, b: np.add(a, b, out=a), of_p)
    if not clip:
        return []
    return [optim.sum_of_squares(p.grad) for p in parameters if p.grad is not None]


def _updated(optimizer, parameters, step, mine):
    """step_share's 4: the optimizer's update of the parameters that have a `.grad` (the share
    `mine`), with the step's options (its lr) and state. Returns the share's new scalars."""
    for group, options in zip(optimizer.param_groups, step.groups):
        group.update(options)
    _set_scalars(optimizer, parameters, step.scalars)     # steps this one did not share
    optimizer.step()
    return _scalars(optimizer, parameters, mine)


def _scalars(optimizer, parameters, ks):
    """{k: the optimizer's state of parameter k other than its arrays (those live in shared
    memory)} for the parameters numbered ks that have a state."""
    states = ((k, optimizer.state.get(id(parameters[k]))) for k in ks)
    return {k: {key: value for key, value in state.items() if not isinstance(value, np.ndarray)}
            for k, state in states if state is not None}


def _set_scalars(optimizer, parameters, scalars):
    for k, values in scalars.items():
        optimizer.state[id(parameters[k])].update(values)


def _together(meet, work, *args):
    """work(*args) in this process, then the meeting, bringing its result or its error.
    SystemExit too (a loss that calls sys.exit()): in a worker it ended the process, which the
    others then took for one killed (out of memory?); brought, it is raised here as itself, as
    a thread's is."""
    try:
        mine = work(*args)
    except (Exception, SystemExit) as error:
        mine = error
    try:
        return meet(mine)
    finally:
        del mine           # an error's own frame holding it: see _raise_dropping


def _shares(parameters, n):
    """The parameters cut into n runs of consecutive ones, of about equal numbers of numbers:
    process j adds, clips and updates run j."""
    total, done, cuts = sum(p.size for p in parameters), 0, [0]
    for k, p in enumerate(parameters):
        done += p.size
        if len(cuts) < n and done * n >= total * len(cuts):
            cuts.append(k + 1)
    cuts += [len(parameters)] * (n + 1 - len(cuts))
    return [range(a, b) for a, b in zip(cuts, cuts[1:])]


@contextlib.contextmanager
def _worker_lost(workers):
    """A worker that is gone (killed: out of memory, say) as one line, the others stopped."""
    try:
        yield
    except (EOFError, OSError):
        workers.close()
        raise WorkerLost(_ENDED) from None


class WorkerLost(ChildProcessError):
    """A worker process ended without an answer: killed, by the kernel when memory ran out,
    say. The machine's trouble, not a bug: an OSError, as the other answers of the operating
    system are."""


# What a process that died (killed when memory ran out, say) leaves the others to say.
_ENDED = ("a worker process ended without an answer (out of memory?); train with --threads 1 "
          "to compute in one process")


def _words(error):
    """An exception as one line of text: what travels for one that does not pickle."""
    return f"{type(error).__name__}: {error}"


def _with_its_traceback(error):
    """`error`, carrying the text of its traceback: the traceback itself does not travel to
    another process, and without it a bug in a worker would be reported from where the
    error was raised again, never from where it happened. A nicety: where the text cannot be
    made (out of memory, say), the error goes without it."""
    with contextlib.suppress(Exception):
        error.worker_traceback = "".join(traceback.format_exception(error))
    return error


def _sendable(error):
    """`error`, carrying the text of its traceback (`_with_its_traceback`), as it can travel
    to another process: itself where pickle gives it back, else a RuntimeError that says it in
    words, with the same traceback. An exception whose __init__ takes other arguments than its
    message (`ShapeError(got, expected)`) pickles, and then fails to unpickle in the process
    that reads it, which would raise a TypeError of its own there instead of this error."""
    error = _with_its_traceback(error)
    try:
        ForkingPickler.loads(ForkingPickler.dumps(error))
    except Exception:
        stand_in = RuntimeError(f"a worker process failed: {_words(error)}")
        stand_in.worker_traceback = getattr(error, "worker_traceback", None)
        return stand_in
    return error


class _WorkerTraceback(Exception):
    """Where a worker process raised an error: its traceback, shown as the error's cause."""

    def __str__(self):
        return "in the worker process:\n" + self.args[0]


def _raise_brought(brought):
    """Raise here the first failure in the list `brought` (what each process brought to a
    meeting, or a child's answer), emptying it (see _raise_dropping): an exception, with its
    traceback in the other process as the cause, or the words of one that could not travel."""
    first = next(i for i, x in enumerate(brought) if isinstance(x, (BaseException, str)))
    brought[:] = brought[first:first + 1]
    if isinstance(brought[0], str):
        raise RuntimeError(f"a worker process failed: {brought.pop()}")
    where = getattr(brought[0], "worker_traceback", None)
    if where:
        brought[0].__cause__ = _WorkerTraceback(where)      # `raise ... from` it
    _raise_dropping(brought)


def _raise_dropping(holder):
    """Raise the one exception in the list `holder`, emptying it.

    An exception's traceback holds every frame it passed through, and each frame its variables:
    a frame on the way that still held the exception (a failed part's result, kept to be raised
    after the meeting) would be a reference cycle, and the failed part's activations, in the
    frames of its forward, would stay alive until the garbage collector next ran instead of
    being freed as the caller drops the error. So the frames that hand an error on hold it in
    a list, emptied here as it is raised: no frame on its way keeps it."""
    raise holder.pop()


def workers_for(loss_of: Callable[[Batch], Tensor], model: nn.Module,
                parameters: Sequence[Tensor], optimizer: Optimizer, processes: int,
                micro_batches: int) -> ContextManager[Workers | None]:
    """Workers for up to `processes` processes (this one included) sharing steps of
    `micro_batches` parts, where there is more than one process's work, fork is safe and the
    optimizer's state can be shared (`shares_its_state`); else None (the parts then run on
    threads, and this process alone updates)."""
    n = min(processes, micro_batches) - 1
    if n < 1 or not Workers.available() or not shares_its_state(optimizer):
        return contextlib.nullcontext()
    try:
        return Workers(loss_of, model, parameters, optimizer, n, micro_batches)
    except OSError:                 # no fork or shared memory here after all: threads, then
        return contextlib.nullcontext()


class _StepStopped(Exception):
    """Another process brought an error to a meeting: this step is over."""


def _serve(connection, workers):
    """A worker's life: its share of each step, until told to stop or orphaned. Ctrl-C, SIGTERM
    and SIGHUP are the parent's to handle (it stops at the end of a step): `forked`."""
    def meet(mine):
        if isinstance(mine, BaseException):
            mine = _sendable(mine)
        try:
            connection.send(mine)
        except Exception:                         # an exception that does not pickle
            connection.send(_words(mine))
        everyone = connection.recv()
        if everyone is None:
            raise _StepStopped
        return everyone
    status = 0
    try:
        while True:
            try:
                message = connection.recv()
            except EOFError:                      # the parent is gone
                break
            if message is None:
                break
            me, step = message
            with contextlib.suppress(_StepStopped):
                step_share(me, step, workers, meet)
    except BaseException:
        status = 1
    finally:
        os._exit(status)                          # not the parent's exit handlers


def shares_its_state(optimizer: Optimizer) -> bool:
    """Whether every array the optimizer keeps for a parameter is made by its `initial_state`,
    before any update, so that Workers can move it into shared memory beforehand. An array made
    at a parameter's first update (SGD's momentum buffer, with dampening, is the gradient
    itself) would be made in whichever process updates that parameter, and stay there: the
    others, this one too, would never see it, so its checkpoint would lack it and a step on
    another count of processes would start the buffer again. Found by updating, with each
    group's options, a one-number stand-in for its first parameter (of its dtype and ndim)."""
    for group in optimizer.param_groups:
        if not group["params"]:          # (no parameter without decay: no norm gains, no biases)
            continue
        first = group["params"][0]
        stand_in = Tensor(np.zeros((1,) * first.ndim, dtype=first.dtype))
        state = optimizer.initial_state(stand_in, group)
        made = {key for key, value in state.items() if isinstance(value, np.ndarray)}
        with np.errstate(all="ignore"):          # a rule of one's own may divide by it
            optimizer.update(stand_in, np.zeros_like(stand_in.data), state, group)
        if any(isinstance(value, np.ndarray) and key not in made
               for key, value in state.items()):
            return False
    return True


def _optimizer_state_into_shared_memory(optimizer):
    """Every parameter's optimizer state made now (as its first update would) and its arrays
    moved into shared memory, so that whichever process updates a parameter updates them."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.setdefault(id(p), optimizer.initial_state(p, group))
            arrays = [key for key, value in state.items() if isinstance(value, np.ndarray)]
            state.update(zip(arrays, _shared_copies([state[key] for key in arrays])))


def _shared_copies(arrays):
    """Copies of `arrays` in one anonymous mapping that processes forked later share
    (`_shared_zeros`)."""
    copies = _shared_zeros(arrays)
    for copy, a in zip(copies, arrays):
        copy[...] = a
    return copies


def _shared_zeros(arrays):
    """Arrays of zeros with the shapes and dtypes of `arrays`, in one anonymous mapping that
    processes forked later share (each starting on a 64-byte boundary, as numpy's own do). A
    new mapping holds zeros, and its pages take memory only once written."""
    sizes = [-(-a.nbytes // 64) * 64 for a in arrays]
    memory = mmap.mmap(-1, max(sum(sizes), 1))
    zeros, offset = [], 0
    for a, size in zip(arrays, sizes):
        zeros.append(np.frombuffer(memory, dtype=a.dtype, count=a.size,
                                   offset=offset).reshape(a.shape))
        offset += size
    return zeros


def side_by_side(work: Callable[[Item], Result], items: Sequence[Item],
                 threads: int) -> list[Result]:
    """[work(item) for item in items], up to `threads` items at once: in processes forked for
    the call where fork is safe (`run_in_processes`), else on threads (`run_in_threads`). The
    same results either way; processes compute at one-thread speed, where threads take turns
    with Python's lock. For work that only computes: what it changes in a forked process stays
    there.

    Each item is computed on one BLAS thread, however many `threads` there are, so the results
    do not depend on the count (an evaluation's figures are the same on one core): threads
    beyond the items, given to BLAS, would split its products, whose last bits depend on how
    they are split (a task's evaluation is a single item where it holds out under 250 pairs)."""
    at_once = max(1, min(threads, len(items)))
    # This process's items on one thread; the others' too, `processes // n` being 1 here.
    with blas_threads(1):
        if Workers.available():
            try:
                return run_in_processes(work, items, at_once)
            except _ForkRefused:
                pass
        return run_in_threads(work, items, at_once)


def run_in_processes(work: Callable[[Item], Result], items: Sequence[Item],
                     processes: int) -> list[Result]:
    """[work(item) for item in items], in up to `processes` processes: this one, and processes
    forked for this call, which start as copies of this one (the model, the data, `work`
    itself: nothing is sent but the results, which must pickle). Item i goes to process
    i % n, every process computes its items in order, and the forked ones send back their
    results and exit. An error in any of them is raised here; BLAS gets the threads left over
    (processes // n each). Linux only (fork: `Workers.available()`)."""
    n = min(processes, len(items))
    if n <= 1:
        return [work(item) for item in items]
    children, shares = [], []               # (pid, the end we read); the results, in order
    try:
        for me in range(1, n):
            ours, theirs = multiprocessing.Pipe(duplex=False)
            try:
                with forked() as pid:
                    if pid == 0:                                # the child: never returns
                        ours.close()
                        for _, sibling in children:
                            sibling.close()
                        _compute_and_exit(theirs, work, items[me::n], processes // n)
                    children.append((pid, ours))
            except OSError as error:            # no more processes allowed, say
                ours.close()
                raise _ForkRefused(error) from error
            finally:
                theirs.close()
        with blas_threads(processes // n):
            shares.append([work(item) for item in items[::n]])
        for _, connection in children:
            shares.append(_answer(connection))
    finally:
        for k, (pid, connection) in enumerate(children, start=1):
            connection.close()
            if k >= len(shares):        # not answered (an error here first): the call is over
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return [shares[i % n][i // n] for i in range(len(items))]


class _ForkRefused(OSError):
    """The system would not fork another process (side_by_side then uses threads)."""


def _compute_and_exit(connection, work, items, blas):
    """A forked child's life in `run_in_processes`: its items' results, or its error, sent."""
    status = 0
    try:
        with blas_threads(blas):
            answer = ("results", [work(item) for item in items])
    except BaseException as error:
        answer, status = ("error", _sendable(error)), 1
    try:
        try:
            connection.send(answer)
        except Exception as unsent:             # what does not pickle: its words instead
            kind, what = answer
            error = what if kind == "error" else unsent
            connection.send(("error", _words(error)))
    finally:
        os._exit(status)                        # not the parent's exit handlers


def _answer(connection):
    """A child's results, or its error raised here (as itself, or its words)."""
    try:
        answer = list(connection.recv())             # [kind, what]
    except (EOFError, OSError):
        raise WorkerLost(_ENDED) from None
    if answer[0] == "error":
        del answer[0]
        _raise_brought(answer)
    return answer[1]


def run_in_threads(work: Callable[[Item], Result], items: Sequence[Item],
                   threads: int) -> list[Result]:
    """[work(item) for item in items], on up to `threads` threads at once, started for the
    call: item i on thread i % n, as run_in_processes deals them. BLAS gets the threads left
    over meanwhile (threads // n each: one apiece on two cores). An error in any of them is
    raised here. The threads are daemons: a caller stopped at once (a second Ctrl-C) leaves
    them computing parts that no one will read, and Python's exit does not wait for them (it
    waited for a pool's threads, and a Ctrl-C during that wait printed a traceback)."""
    n = min(threads, len(items))
    if n <= 1:
        return [work(item) for item in items]
    # A new thread starts from an empty context: numpy's error settings (np.errstate) would
    # be the defaults there. Each item runs in a copy of the caller's instead.
    caller = contextvars.copy_context()
    shares: list[Any] = [None] * n              # each thread's results, or its error

    def compute(me: int) -> None:
        try:
            shares[me] = [caller.copy().run(work, item) for item in items[me::n]]
        except BaseException as error:
            shares[me] = error

    started = [threading.Thread(target=compute, args=(me,), name=f"micro-batch-{me}",
                                daemon=True) for me in range(n)]
    with blas_threads(threads // n):
        for thread in started:
            thread.start()
        for thread in started:
            thread.join()
    failed = [share for share in shares if isinstance(share, BaseException)][:1]
    if failed:
        shares.clear()        # the threads' frames hold `shares`: see _raise_dropping
        _raise_dropping(failed)
    return [shares[i % n][i // n] for i in range(len(items))]


def without_graph(work: Callable[[Item], Result]) -> Callable[[Item], Result]:
    """`work` under no_grad in whichever thread runs it: the engine's modes are each thread's
    own, so a caller's no_grad does not reach a worker."""
    @functools.wraps(work)
    def run(item: Item) -> Result:
        with ta.no_grad():
            return work(item)
    return run
