"""Shared pytest setup: hypothesis runs the same examples on every machine (derandomize, no
example database), with no per-example deadline (the first call of a test pays for imports, and
CI machines vary). HYPOTHESIS_PROFILE=random draws fresh examples on every run instead.

Python keeps each module it compiles (`__pycache__/`) even where PYTHONDONTWRITEBYTECODE says
not to: otherwise each of the suite's several hundred processes (the command line, benchmarks,
learners' files) compiled the whole package again, 0.13 s each, and each worker rewrote every
test module's asserts again.

Ctrl-C is Python's own in every test process: a suite started in the background by a script
(`pytest &`, with no job control) inherits SIGINT ignored, and so would every process the
Ctrl-C tests start, which would then never stop."""

import os
import signal
import sys

import pytest
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

settings.register_profile("ci", derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("random", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """numpy's matrix products on one thread in every test process, unless a test sets its own
    count (threadpoolctl, --threads), which it then restores to this one. By default BLAS
    starts a thread a core, and the suite's workers (pytest -n 2 on two cores) then wait on
    each other's threads: a (288, 32) @ (32, 128) product took 10 ms instead of 0.1 ms, and
    the README's tour 50 s instead of 4 s. One thread also rounds alike on every machine,
    whatever its cores."""
    with threadpool_limits(1, user_api="blas"):
        yield
