"""Shared pytest setup: hypothesis runs the same examples on every machine (derandomize, no
example database), with no per-example deadline (the first call of a test pays for imports, and
CI machines vary). HYPOTHESIS_PROFILE=random draws fresh examples on every run instead.

Ctrl-C is Python's own in every test process: a suite started in the background by a script
(`pytest &`, with no job control) inherits SIGINT ignored, and so would every process the
Ctrl-C tests start, which would then never stop."""

import os
import signal

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("random", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
