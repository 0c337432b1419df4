"""What /proc says of a machine's processes (Linux), for tests that must see a process start and
end: tests/test_bench.py's busy neighbour, which must never outlive its benchmarks."""

import os


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command's name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_state(pid):
    """The state letter of a process (R running, S sleeping, Z a zombie, its end not yet
    collected), or None if it is gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def runs_code(pid, code):
    """Whether process `pid` runs, started as `python -c CODE` (not a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            arguments = f.read().split(b"\0")
    except OSError:
        return False
    return code.encode() in arguments and process_state(pid) not in (None, "Z")


def running_children(parent, code):
    """The process ids of the children of `parent` started as `python -c CODE` that still run."""
    return [int(pid) for pid in filter(str.isdigit, os.listdir("/proc"))
            if runs_code(pid, code) and (_stat_fields(pid) or [0, 0])[1] == str(parent)]


def running(code):
    """The process ids of every process started as `python -c CODE` that still runs."""
    return [int(pid) for pid in filter(str.isdigit, os.listdir("/proc")) if runs_code(pid, code)]
