"""Shared pytest setup: hypothesis runs the same examples on every machine (derandomize, no
example database), with no per-example deadline (the first call of a test pays for imports, and
CI machines vary). HYPOTHESIS_PROFILE=random draws fresh examples on every run instead."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("random", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
