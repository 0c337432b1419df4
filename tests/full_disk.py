"""A full disk, for tests of what a failed write leaves behind: within `files_limited_to(n)`,
writing a file beyond n bytes fails with EFBIG, as writing to a full disk fails with ENOSPC."""

import contextlib
import resource
import signal


@contextlib.contextmanager
def files_limited_to(n_bytes):
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # an error, not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
