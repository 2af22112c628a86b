"""How many intra-op threads a CPU run uses: the cores actually free, never more than the model can use.

torch starts one intra-op thread per core and every forward waits for its slowest thread. When
another process keeps a core busy, that thread gets a fraction of a core and the whole forward
waits for it: on a 2-core machine with one busy core, a forward of the bundled demo model takes
~1.5 s with 2 threads and ~78 ms with 1 (batch 16). So the thread count follows the cores that are
free *now* and the size of the model:

- an explicit choice always wins: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` in the environment, or
  a ``torch.set_num_threads`` call before the model was built (a count other than torch's default);
- otherwise ``threads = min(free cores / processes of this run on the machine, model cap)``. Free
  cores are the cores this process may run on (``os.sched_getaffinity``) minus the cores other
  processes used over a short window (``/proc/stat`` minus our own CPU time; the 1-minute load
  average where ``/proc/stat`` does not exist), a core counting as taken from a quarter busy on. The model cap is one thread per
  :data:`PARAMS_PER_THREAD` parameters: a tiny model gains nothing from more.

:class:`ThreadGovernor` applies the choice when the model is built and re-checks it between batches
(at most every :data:`RECHECK_SECONDS`), so load that appears mid-run is followed too.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import torch

__all__ = ["ThreadChoice", "ThreadGovernor", "choose_threads", "PARAMS_PER_THREAD"]

log = logging.getLogger(__name__)

#: A thread per this many parameters at most (the bundled 1.1M-parameter demo model: 2 threads).
PARAMS_PER_THREAD = 500_000
RECHECK_SECONDS = 5.0
#: Share of a core other processes must use for it to count as taken.
BUSY_CORE = 0.25
_SAMPLE_SECONDS = 0.2
_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    #: "OMP_NUM_THREADS", "MKL_NUM_THREADS", "torch.set_num_threads" or "auto".
    source: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"intra_op": self.threads, "source": self.source, "reason": self.reason}


def _allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return list(range(os.cpu_count() or 1))


def _default_thread_counts(n_allowed: int) -> set[int]:
    """Counts torch picks by itself (logical or physical cores): anything else was set on purpose."""
    counts = {n_allowed, os.cpu_count() or n_allowed}
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        if physical:
            counts.add(int(physical))
    except ImportError:
        pass
    return counts


def _cpu_jiffies(cpus: list[int]) -> tuple[float, float] | None:
    """(busy, total) seconds of the given CPUs since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{i}" for i in cpus}
    busy = total = 0.0
    for line in lines:
        parts = line.split()
        if not parts or parts[0] not in wanted:
            continue
        values = [float(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
        idle = values[3] + values[4]
        total += sum(values)
        busy += sum(values) - idle
    hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    return (busy / hz, total / hz) if total else None


class _LoadProbe:
    """Cores kept busy by *other* processes over the window since the last call."""

    def __init__(self, cpus: list[int]):
        self.cpus = cpus
        self._last = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float] | None:
        jiffies = _cpu_jiffies(self.cpus)
        return None if jiffies is None else (*jiffies, time.process_time())

    def busy_elsewhere(self) -> float | None:
        now = self._snapshot()
        last, self._last = self._last, now
        if now is None or last is None or now[1] <= last[1]:
            return None
        wall_cpu = now[1] - last[1]  # CPU-seconds that passed over all watched CPUs
        ours = max(0.0, now[2] - last[2])
        others = max(0.0, (now[0] - last[0]) - ours)
        return len(self.cpus) * others / wall_cpu


def _local_processes() -> int:
    for name in ("LOCAL_WORLD_SIZE", "ACCELERATE_NUM_PROCESSES_PER_NODE"):
        try:
            value = int(os.environ.get(name, "0"))
        except ValueError:
            continue
        if value > 0:
            return value
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def choose_threads(n_params: int, busy_elsewhere: float | None = None, ours: int | None = None) -> ThreadChoice:
    """The thread count for a model of ``n_params`` parameters (rules in the module docstring).

    ``ours``: the count this module set earlier (not an explicit user choice).
    """
    for name in _ENV:
        value = os.environ.get(name, "").strip()
        if value:
            return ThreadChoice(torch.get_num_threads(), name, f"{name}={value} in the environment")
    cpus = _allowed_cpus()
    current = torch.get_num_threads()
    if current != ours and current not in _default_thread_counts(len(cpus)):
        return ThreadChoice(current, "torch.set_num_threads", f"set to {current} before the model was built")
    if busy_elsewhere is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        busy_elsewhere, measured = max(0.0, load - 1.0), "1-min load average"  # minus this process
    else:
        measured = "last seconds"
    # A core a quarter busy already costs a thread (oversubscription costs far more than one thread less).
    free = max(1, len(cpus) - int(busy_elsewhere + 1.0 - BUSY_CORE))
    processes = _local_processes()
    per_process = max(1, free // processes)
    cap = max(1, n_params // PARAMS_PER_THREAD)
    threads = max(1, min(per_process, cap))
    reason = (
        f"{len(cpus)} cores, {busy_elsewhere:.1f} busy with other processes ({measured}), "
        f"{processes} process(es) of this run, model cap {cap}"
    )
    return ThreadChoice(threads, "auto", reason)


class ThreadGovernor:
    """Sets torch's intra-op threads for this run and follows the machine's load between batches."""

    def __init__(self, n_params: int, device: torch.device):
        self.n_params = n_params
        self.active = device.type == "cpu"
        self.choice: ThreadChoice | None = None
        self._probe: _LoadProbe | None = None
        self._next_check = 0.0
        if not self.active:
            return
        explicit = choose_threads(n_params, busy_elsewhere=0.0)
        if explicit.source != "auto":
            self.choice = explicit
        else:
            self._probe = _LoadProbe(_allowed_cpus())
            time.sleep(_SAMPLE_SECONDS)  # one short window: what the other processes are doing now
            self.choice = choose_threads(n_params, self._probe.busy_elsewhere())
        self._apply(initial=True)

    def _apply(self, *, initial: bool) -> None:
        assert self.choice is not None
        if self.choice.source == "auto" and torch.get_num_threads() != self.choice.threads:
            torch.set_num_threads(self.choice.threads)
        (log.info if initial else log.debug)(
            "intra-op threads: %d (%s: %s)", self.choice.threads, self.choice.source, self.choice.reason
        )
        self._next_check = time.monotonic() + RECHECK_SECONDS

    def recheck(self) -> None:
        """Cheap between batches: at most one ``/proc/stat`` read every :data:`RECHECK_SECONDS`."""
        if not self.active or self.choice is None or self.choice.source != "auto":
            return
        if time.monotonic() < self._next_check:
            return
        busy = self._probe.busy_elsewhere() if self._probe is not None else None
        choice = choose_threads(self.n_params, busy, ours=self.choice.threads) if busy is not None else self.choice
        if choice.source != "auto":  # someone changed torch's setting meanwhile: leave it alone
            self.choice = choice
            return
        changed = choice.threads != self.choice.threads
        self.choice = choice
        if changed:
            log.info("intra-op threads: %d (load changed: %s)", choice.threads, choice.reason)
        self._apply(initial=False)
