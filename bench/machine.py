"""How busy the machine is: benchmarks on a shared machine record how much CPU other
processes took while they ran, and can wait for it to be idle first."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path


def cpu_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class OtherLoad:
    """Context manager: .frac = share of all cores used by OTHER processes meanwhile
    (own_cpu: the CPU seconds to subtract, default this process's)."""

    def start(self) -> "OtherLoad":
        self.t, self.busy, self.own = time.perf_counter(), cpu_busy_s(), own_cpu_s()
        return self

    __enter__ = start

    def __exit__(self, *exc):
        self.finish()

    def finish(self, own_cpu: float | None = None) -> float:
        wall = time.perf_counter() - self.t
        own = own_cpu if own_cpu is not None else own_cpu_s() - self.own
        self.frac = max(0.0, cpu_busy_s() - self.busy - own) / (max(wall, 1e-9) * os.cpu_count())
        return self.frac


def wait_idle(max_wait_s: float, busy_frac: float = 0.1, log=None) -> bool:
    """Wait up to max_wait_s until < busy_frac of all cores are busy over 2 s; True if idle."""
    log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
    t0, cores = time.time(), os.cpu_count()
    while True:
        b = cpu_busy_s()
        time.sleep(2)
        frac = (cpu_busy_s() - b) / (2 * cores)
        if frac < busy_frac:
            return True
        if time.time() - t0 >= max_wait_s:
            log(f"machine still busy after {max_wait_s:.0f} s ({100 * frac:.0f}% of {cores} cores); running anyway")
            return False
        log(f"machine busy ({100 * frac:.0f}% of {cores} cores used by other processes); waiting")
