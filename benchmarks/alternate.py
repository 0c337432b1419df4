"""Time each engine alone, in a process of its own, the engines taking turns block by block.

A benchmark script that compares engines has a child mode, `python SCRIPT --engine NAME --json
PATH ...`, which builds that one engine, times it and writes its figures as JSON. `alternate`
runs that child for each engine in turn, block after block (ours, torch, ours, torch, ...), and
returns every engine's list of child results.

Why not time both engines in one process, step by step, as these scripts once did? Because they
disturb each other. Measured alone, a training step (benchmarks/train_step.py) took ours 71 ms
and PyTorch 66 ms on one thread; interleaved in one process, 79 and 82 ms. On two threads, alone
55 and 45 ms; interleaved 64 and 111 ms: OpenBLAS's threads and PyTorch's OpenMP threads fight
over the two cores, and each engine evicts the other's data from the shared caches. Alternating
whole blocks, each in a fresh process, keeps what taking turns was for: a busy spell on a
shared machine still falls on both engines alike, as long as it lasts longer than a block.
"""

import json
import os
import subprocess
import sys
import tempfile

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def alternate(script, engines, blocks, threads, arguments=(), show_output=False):
    """{engine: [the JSON each of its `blocks` children wrote, in order]}.

    Each child runs `python script --engine ENGINE --json PATH --threads THREADS *arguments`
    with the thread-count variables set in its environment (OpenBLAS reads them when numpy is
    imported, before the child has parsed its arguments). With show_output the children print
    to our stdout; otherwise their output is kept out of the way. A child that fails raises
    RuntimeError with the end of its stderr."""
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    results = {engine: [] for engine in engines}
    with tempfile.TemporaryDirectory() as directory:
        for block in range(blocks):
            for engine in engines:
                json_path = os.path.join(directory, f"{engine}-{block}.json")
                command = [sys.executable, script, "--engine", engine, "--json", json_path,
                           "--threads", str(threads), *map(str, arguments)]
                done = subprocess.run(command, env=env, text=True, stderr=subprocess.PIPE,
                                      stdout=None if show_output else subprocess.DEVNULL)
                if done.returncode != 0:
                    tail = "\n".join(done.stderr.splitlines()[-20:])
                    raise RuntimeError(f"{' '.join(command)}\nfailed with exit status "
                                       f"{done.returncode}:\n{tail}")
                with open(json_path) as f:
                    results[engine].append(json.load(f))
    return results
