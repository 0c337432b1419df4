"""The machine's resources a run asks for: memory, checked before anything is allocated and
kept for reuse while it trains, and threads: how many a training step uses, and the BLAS
threads numpy's matrix products use (threadpoolctl sets them while we run)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import statistics
import sys
import time
from typing import TYPE_CHECKING, ContextManager, Iterator

from threadpoolctl import ThreadpoolController

from .data import EVAL_PAIRS, task_context
from .files import size_said
from .schema import BadInput
from .layers import default_d_ff, least_parameters

if TYPE_CHECKING:                    # train.py imports this module
    from .train_config import TrainConfig

FLOAT = 4                     # bytes: the engine computes in float32


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now: what the machine has
    (`machine_memory`), and at most what a container's memory limit leaves
    (`cgroup_memory_left`); None if neither can be read."""
    return min((n for n in (machine_memory(), cgroup_memory_left()) if n is not None),
               default=None)


def machine_memory(meminfo: str = "/proc/meminfo") -> int | None:
    """Linux's MemAvailable (in kB in `meminfo`), or the machine's physical memory where that
    cannot be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


# A container sees the machine's memory and cores, but its cgroup may allow it far less: a
# run sized by the machine's figures is then killed for memory, or runs a thread a core on
# cores it gets a fraction of. Linux's cgroups say how much, in files under CGROUPS.
CGROUPS = "/sys/fs/cgroup"


def cgroup_memory_left(root: str = CGROUPS, membership: str = "/proc/self/cgroup") -> int | None:
    """Bytes this process's cgroup may still take before its memory limit (a container started
    with --memory=2g, say), the least along the way up to the root; None without a limit.
    The limit (cgroup v2's memory.max, "max" for none; v1's memory.limit_in_bytes) less what
    the group uses (memory.current; memory.usage_in_bytes), not counting the file cache the
    kernel drops first when memory runs short (inactive_file in memory.stat)."""
    left = []
    for directory in _cgroup_directories("memory", root, membership):
        v2 = os.path.exists(os.path.join(directory, "memory.max"))
        limit = _number_in(directory, "memory.max" if v2 else "memory.limit_in_bytes")
        used = _number_in(directory, "memory.current" if v2 else "memory.usage_in_bytes")
        cache = _memory_stat(directory, "inactive_file" if v2 else "total_inactive_file")
        if limit is not None and used is not None:
            left.append(max(limit - used + cache, 0))
    return min(left, default=None)


def cpu_quota(root: str = CGROUPS, membership: str = "/proc/self/cgroup") -> float | None:
    """How many cores' worth of time this process's cgroup may use (a container started with
    --cpus=2, say), the least along the way up to the root; None without a quota. cgroup v2's
    cpu.max holds "quota period" ("max period" for none); v1 has cpu.cfs_quota_us (-1 for
    none) and cpu.cfs_period_us."""
    quotas = []
    for directory in _cgroup_directories("cpu", root, membership):
        quota, period = (_number_in(directory, "cpu.max", 0), _number_in(directory, "cpu.max", 1))
        if quota is None:
            quota, period = (_number_in(directory, "cpu.cfs_quota_us"),
                             _number_in(directory, "cpu.cfs_period_us"))
        if quota is not None and period and quota > 0:
            quotas.append(quota / period)
    return min(quotas, default=None)


def _cgroup_directories(controller: str, root: str, membership: str) -> list[str]:
    """This process's cgroup directories for `controller`: its own, then its ancestors' up to
    the root (a limit set on any of them applies), those that this process can see. cgroup v2
    has one tree at `root`; v1 a tree per controller (`root`/memory, `root`/cpu). Inside a
    container its own cgroup is usually the root it sees."""
    v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))
    tree = root if v2 else os.path.join(root, controller)
    path = "/"
    with contextlib.suppress(OSError, ValueError):
        with open(membership) as f:
            for line in f:                        # "hierarchy:controllers:path"
                _, controllers, where = line.rstrip("\n").split(":", 2)
                ours = controllers == "" if v2 else controller in controllers.split(",")
                if ours:
                    path = where
    directories = []
    while True:
        directory = tree + path.rstrip("/")
        if os.path.isdir(directory):
            directories.append(directory)
        if path.rstrip("/") == "":
            return directories
        path = os.path.dirname(path.rstrip("/"))


def _number_in(directory: str, name: str, field: int = 0) -> int | None:
    """The whole number in field `field` of a cgroup file, or None (no such file, "max")."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(os.path.join(directory, name)) as f:
            return int(f.read().split()[field])
    return None


def _memory_stat(directory: str, key: str) -> int:
    """One figure of a cgroup's memory.stat ("key value" lines), 0 where it cannot be read."""
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(directory, "memory.stat")) as f:
            for line in f:
                name, value = line.split()
                if name == key:
                    return int(value)
    return 0


def training_memory(config: TrainConfig, vocab_size: int) -> int:
    """An estimate, on the low side, of the bytes a training step of `config` (resolved) needs:
    the parameters' (`weights_memory`), and the activations that the backward
    pass keeps, the attention scores and logits among them; or, for a task, those of an
    evaluation if more: it scores EVAL_PAIRS held-out pairs at once, whatever the batch size
    (a batch of one with --max-len 10000 passed the check, made its pairs for a minute, then
    ran out of memory in its first evaluation)."""
    d = config.d_model
    d_ff = config.d_ff or default_d_ff(d, config.activation or "gelu")
    context = config.context or 2 * config.max_len + 2
    layers = config.n_layer * (2 if config.task else 1)
    # A task's encoder and decoder each see a sequence of at most task_context tokens (the
    # source; the target with <bos> or <eos>), however long the positions' table (and no more
    # than it holds: a context too short for the lengths is refused on its own terms).
    seen = min(context, task_context(config.max_len)) if config.task else context
    tokens = config.batch_size * seen
    # Numbers kept per token, as measured (tracemalloc) on a step's peak: a block keeps 12 to
    # 13 of width d_model (norms, queries, keys, values, residuals, and the backward's
    # gradients of them), 3 of width d_ff and a row of attention probabilities per head; the
    # logits take 4 of the vocabulary's width (logits, probabilities, log-probabilities,
    # their gradient). Counted for the whole batch: its micro-batches may run side by side.
    # Four of the twelve are attention's queries, keys, values and output, of the heads' width
    # (n_head * d_head), which --d-head makes other than d_model.
    heads_width = config.n_head * config.d_head if config.d_head else d
    activations = tokens * layers * (8 * d + 4 * heads_width + 3 * d_ff
                                     + config.n_head * seen) + 4 * tokens * vocab_size
    if config.task:       # no graph kept: one attention's scores and probabilities at a time
        longest = config.context or task_context(config.max_len)
        activations = max(activations, 2 * EVAL_PAIRS * config.n_head * longest ** 2)
    return weights_memory(config, vocab_size) + FLOAT * activations


def weights_memory(config: TrainConfig, vocab_size: int) -> int:
    """The bytes of training_memory that the parameters take, whatever the batch: four times
    over (weights, gradients, AdamW's two moments), and once more for each micro-batch but
    one (`gradient_copies`)."""
    d = config.d_model
    sizes = {"d_model": d, "d_ff": config.d_ff or default_d_ff(d, config.activation or "gelu"),
             "n_layer": config.n_layer, "n_head": config.n_head,
             "n_kv_head": config.n_kv_head, "d_head": config.d_head,
             "activation": config.activation,
             "context": config.context or 2 * config.max_len + 2,
             "positions": config.positions}
    if config.task:
        sizes.update(src_vocab_size=vocab_size, tgt_vocab_size=vocab_size)
    else:
        sizes.update(vocab_size=vocab_size)
    return FLOAT * (4 + gradient_copies(config)) * least_parameters(sizes)


def gradient_copies(config: TrainConfig) -> int:
    """How many copies of the parameters a step of `config` (resolved) holds beyond its
    gradient: each micro-batch's gradient is a whole one, held until they are added
    (tinyformer/parallel.py), so a step of n parts holds n where one part holds one. (A
    resolved config has no more parts than rows: --micro-batches is at most --batch-size.)"""
    return config.micro_batches - 1


def check_memory(config: TrainConfig, vocab_size: int) -> None:
    """ValueError, before anything is allocated, when the run cannot fit in memory."""
    if config.task and config.context is None:    # a task's context follows its --max-len
        options = ["--max-len", "--batch-size", "--d-model", "--n-layer"]
    else:
        options = ["--batch-size", "--context", "--d-model", "--n-layer"]
    if config.tokenizer == "bpe":        # each token's logits are a vocabulary wide
        options.insert(2, "--vocab-size")
    smaller = f"a smaller {', '.join(options[:-1])} or {options[-1]}"
    if gradient_copies(config) > 1:       # more micro-batches than the default's two
        smaller = smaller.replace(" or ", ", ") + " or fewer --micro-batches"
    # Where the weights alone take most of it, a smaller batch or context barely helps: said.
    need, weights = training_memory(config, vocab_size), weights_memory(config, vocab_size)
    detail = (f", {size_said(weights)} of it for the weights, their gradients and AdamW's two "
              f"moments," if weights >= need / 2 else "")
    check_fits(need, "training with these sizes", smaller, detail)


def beam_memory(model_config: dict, context: int, beam: int, start: int, steps: int) -> int:
    """An estimate, on the low side, of the bytes a beam search of `beam` beams needs, from
    `start` tokens for `steps` more: each live beam holds its keys and values at every layer
    (twice while a step selects the beams that live on: the old rows and their copy), and
    each step scores every token of the vocabulary for it (float64, in a few arrays). There
    are at most `beam` live beams, and at most vocab_size ** steps: beams are distinct
    continuations. An encoder-decoder's encoded source is left out."""
    c = model_config
    vocab = c.get("vocab_size") or c["tgt_vocab_size"]
    steps = min(steps, context)
    beams = min(beam, vocab ** min(steps, 64))    # (past 64 steps, more than any --beam)
    d_head = c.get("d_head") or c["d_model"] // c["n_head"]
    keys_and_values = 2 * c["n_layer"] * (c.get("n_kv_head") or c["n_head"]) * d_head \
        * min(start + steps, context) * FLOAT
    return beams * (2 * keys_and_values + 4 * 8 * vocab)


def check_fits(need: int, what: str, smaller: str, detail: str = "") -> None:
    """ValueError, before anything is allocated, when `need` bytes are more than the memory
    available: "{what} needs about 27.9 GB of memory{detail} and 23.9 GB is available; choose
    {smaller}"."""
    have = available_memory()
    if have is not None and need > have:
        raise BadInput(f"{what} needs about {size_said(need)} of memory{detail} and "
                       f"{size_said(have)} is available; choose {smaller}")


def blas_threads(n: int | None) -> ContextManager:
    """A context manager in which numpy's BLAS (matrix products) uses `n` threads; with None,
    as many as BLAS chooses by itself (usually one per core)."""
    if n is None:
        return contextlib.nullcontext()
    return blas_controller().limit(limits=n, user_api="blas")


# glibc's mallopt() parameters (malloc.h) and what they are set to while a run trains.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_UP_TO = 32 << 20         # arrays up to 32 MiB from the reusable heap (glibc's own maximum)
_RETURN_ABOVE = 2**31 - 1      # the heap's free top handed back above 2 GiB (mallopt takes an int)
_GLIBC_TRIM_DEFAULT = 128 << 10


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Inside, the C library keeps the memory that numpy frees, for the next arrays, instead
    of handing it back to the operating system at once. Yields whether it could.

    A training step frees its activations and gradients and allocates arrays of the same sizes
    in the next step. glibc's malloc, by default, returns freed blocks above 128 KiB to the
    system (an array of a micro-batch's activations is 200 KiB to 800 KiB), and every page of
    the next step's arrays is then faulted in again, zeroed by the kernel: about 2,600 page
    faults a step of the Shakespeare recipe on one thread, 6% of its time. Here arrays up to
    32 MiB come from the heap, and the heap is not trimmed until the block ends; then what is
    free goes back (malloc_trim). Both thresholds are set: glibc stops adapting either one as
    soon as a program sets one. The peak memory is the run's either way.

    Linux with glibc only (elsewhere this does nothing), and not when the environment sets
    glibc's own MALLOC_* variables or GLIBC_TUNABLES: those are the user's to choose."""
    mallopt = _glibc_function("mallopt")
    chosen_by_user = "GLIBC_TUNABLES" in os.environ or any(
        name.startswith("MALLOC_") for name in os.environ)
    if mallopt is None or chosen_by_user:
        yield False
        return
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_UP_TO) and
                   mallopt(_M_TRIM_THRESHOLD, _RETURN_ABOVE))
    try:
        yield applied
    finally:
        if applied:
            mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_DEFAULT)
            _glibc_function("malloc_trim")(0)


def _glibc_function(name):
    """A function of the C library this process runs on, if that is glibc on Linux."""
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        if libc.gnu_get_libc_version:          # glibc's own: musl has mallopt's name too
            return getattr(libc, name)
    return None


@functools.cache
def blas_controller() -> ThreadpoolController:
    """threadpoolctl's handle on the BLAS libraries loaded, found once (that takes a while;
    setting a limit through it then takes microseconds, so a step may do it)."""
    return ThreadpoolController()


def usable_cores() -> int:
    """The cores this process may use: those it may run on (its CPU affinity, which containers
    narrow), and no more than its cgroup's CPU quota, rounded up (`cpu_quota`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def step_threads(threads: int | None, most: int | None = None
                 ) -> AdaptiveThreads | FixedThreads:
    """The threads a run's steps take (a training step, a token generated), to enter around
    them and run each step under its `step()`: the count the user gave (FixedThreads), or with
    None the one the steps' own timing chooses among counts up to `most` (None: the cores;
    AdaptiveThreads). The two have one interface, so the loop runs the same code."""
    return AdaptiveThreads(most=most) if threads is None else FixedThreads(threads)


class FixedThreads:
    """The threads a user gave: AdaptiveThreads' interface (`step()`, `chosen`, `candidates`)
    with nothing to choose. Inside, BLAS uses that many threads."""

    def __init__(self, n: int) -> None:
        self.chosen = n
        self.candidates = (n,)

    def __enter__(self) -> FixedThreads:
        self._outside = blas_threads(self.chosen)       # applied as soon as made
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._outside.__exit__(*exc_info)

    @contextlib.contextmanager
    def step(self) -> Iterator[int]:
        """Run one step on the threads given."""
        yield self.chosen


class AdaptiveThreads:
    """The thread count that makes a run's steps fastest now, chosen again and again as the
    machine's load changes.

    A training step's micro-batches run on that many threads (tinyformer/parallel.py), and
    between steps (an evaluation, a sample) BLAS uses that many; a decoding step (a token)
    runs its matrix products on that many BLAS threads (tinyformer/decoding.py). On a quiet
    machine more cores can help. Beside a process that keeps one core busy, a second thread
    or process adds little or nothing: it shares a core with the neighbour, or with the first
    (Linux mostly wakes it on the core of the one that woke it when no core is idle;
    benchmarks/neighbour_share.py), and the step waits for it. No fixed count is right for
    both, so a run times its own steps. Every `period` steps it runs `trial` steps with each
    candidate count and keeps the fastest by the median (the fewest threads within 10% of
    it); in between, it runs with that one. The candidates take turns (1, 2, 1, 2, ...), so
    that a passing slow spell weighs on each alike: the steps just after an evaluation run
    slow whatever the count, and in blocks (1, 1, 1, 1, 2, ...) they would all fall to the
    first candidate, which would then lose the trial. Exploring costs a few slow steps per
    period at worst. The count changes how fast a step is computed, not its result: the
    micro-batches are the same and their gradients are added in the same order, so the losses
    are the same to the bit, and so are the tokens generated (tests/test_resources.py checks
    both). That holds while each micro-batch is computed on one thread: BLAS threads that
    split a product change its last bits, so a training run's candidates go no higher than
    its micro-batches (`most`), one process each.

        with AdaptiveThreads() as threads:
            for step in ...:
                with threads.step() as n:
                    train_step(n)
    """

    # More threads must be clearly faster to be chosen. Beside a busy neighbour one thread and
    # two come within a few per cent of each other, and the noise would choose, now one, now
    # two; one then leaves the neighbour its core. On a quiet machine two win by far more.
    margin = 0.10

    def __init__(self, candidates: tuple[int, ...] | None = None, period: int = 200,
                 trial: int = 4, most: int | None = None) -> None:
        cores = min(usable_cores(), most or usable_cores())
        self.candidates = candidates or tuple(sorted({1, cores}))
        self.period, self.trial = period, trial
        self.controller = blas_controller()
        self.chosen = self.candidates[0]    # until the first trials: the safe choice
        self.count = 0
        self.times: dict[int, list[float]] = {}

    def __enter__(self) -> AdaptiveThreads:
        # Between steps (an evaluation, a sample) the count chosen so far applies too.
        self._outside = self.controller.limit(limits=self.chosen, user_api="blas")
        self._current = self.chosen
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._outside.restore_original_limits()

    def _use(self, n: int) -> None:
        if n != self._current:
            self.controller.limit(limits=n, user_api="blas")
            self._current = n

    def _on_trial(self) -> bool:
        return self.count % self.period < len(self.candidates) * self.trial

    @contextlib.contextmanager
    def step(self) -> Iterator[int]:
        """Run one step under the chosen count, or a candidate on trial, timing it; after the
        period's last trial, choose. A step that raises leaves BLAS on the chosen count, for
        whatever runs next (a caller may catch it and go on), and is neither timed nor
        counted: its trial is run again by the next step."""
        on_trial = self._on_trial()
        turn = self.count % self.period % len(self.candidates)
        n = self.candidates[turn] if on_trial else self.chosen
        self._use(n)
        began = time.perf_counter()
        try:
            yield n
        except BaseException:
            self._use(self.chosen)
            raise
        if on_trial:
            self.times.setdefault(n, []).append(time.perf_counter() - began)
        self.count += 1
        if self.times and not self._on_trial():         # the trials are in: choose
            self.chosen = self._choice({n: statistics.median(t) for n, t in self.times.items()})
            self.times = {}
        self._use(self.chosen)

    def _choice(self, medians: dict[int, float]) -> int:
        """The fewest threads whose median step is within `margin` of the fastest."""
        fastest = min(medians.values())
        return min(n for n, median in medians.items() if median <= fastest * (1 + self.margin))
