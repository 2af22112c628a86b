"""Run untrusted programs (model-written code plus its tests), each contained in its own process.

Why our own executor: lm-eval's HumanEval/MBPP tasks call ``evaluate.load("code_eval")`` (needs the
Hugging Face hub, and runs code in forked workers of the evaluating process). Here every program gets:

- its own **process** (``python -I -S``: isolated mode, no user site, no site-packages ``.pth`` hooks),
  started in a new session so the whole process group is killed on timeout or when it finishes;
- its own fresh **temporary directory** as working directory, ``HOME`` and ``TMPDIR``, deleted afterwards;
- a **scrubbed environment** (``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` only) — nothing inherited;
- **resource limits** set by the runner before the program starts: CPU seconds, address space (memory),
  file size, number of processes/threads, open files, no core dumps; plus a **wall-clock timeout**;
- **no network**: a fresh network namespace (only a down loopback) when ``unshare`` works here, plus a
  Python audit hook that refuses sockets;
- a **fresh PID namespace** (same condition) so every descendant dies with the program, even ones that
  called ``setsid``;
- when the evaluator runs as root and an unprivileged user can run the interpreter: a **separate user id**
  per concurrent slot, so file permissions protect everything outside the temporary directory and
  ``RLIMIT_NPROC`` bounds fork bombs per slot;
- when a writable cgroup-v1 ``pids`` hierarchy exists (typically as root): a **pids cgroup** per program
  with ``pids.max`` = ``max_processes`` — the process bound that root's exemption from ``RLIMIT_NPROC``
  would otherwise lose;
- an audit hook (see ``_sandbox_runner.py``) refusing process creation, ctypes, writes and deletes
  outside the temporary directory, and other processes' ``/proc`` entries.

Which OS layers are active is probed once per process (:func:`isolation`) by actually running a tiny
program under each candidate setup, strongest first; :func:`isolation` reports the choice so logs and
docs can state exactly what was enforced. A program that breaks any rule simply fails its problem.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["SandboxLimits", "ExecutionResult", "Isolation", "isolation", "run_program", "run_programs"]

_RUNNER = Path(__file__).with_name("_sandbox_runner.py")
#: First user id handed to sandbox slots when running as root (slot i uses base + i).
SANDBOX_UID_BASE = 61000
_MAX_SLOTS = 64
_SLOTS: "queue.Queue[int]" = queue.Queue()
for _slot in range(_MAX_SLOTS):
    _SLOTS.put(_slot)


def _default_timeout() -> float:
    return float(os.environ.get("LM_EVAL_INFOGAIN_EXEC_TIMEOUT", "20"))


@dataclass(frozen=True)
class SandboxLimits:
    """Per-program limits. Defaults suit HumanEval/MBPP (tiny programs, stdlib only).

    The wall-clock default (20 s, ``LM_EVAL_INFOGAIN_EXEC_TIMEOUT``) is generous on purpose: MBPP's
    reference solution of task 123 needs about 10 CPU seconds on a busy machine, and a correct program
    must not fail for being slow. The CPU limit is the timeout plus one second.
    """

    timeout_s: float = field(default_factory=_default_timeout)
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_processes: int = 16
    max_open_files: int = 64
    output_chars: int = 2000
    #: The Python audit hook of the runner. Switch off only to test the OS layers on their own.
    audit_hook: bool = True

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "file_size_mb", "max_processes", "max_open_files", "output_chars"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ExecutionResult:
    """Verdict of one program. ``passed`` is True only for a clean run to the end within the limits."""

    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error"
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        return {"passed": self.passed, "status": self.status, "returncode": self.returncode,
                "stderr": self.stderr[-500:], "duration_s": round(self.duration_s, 3)}


@dataclass(frozen=True)
class Isolation:
    """The OS layers in force (besides rlimits, timeout, temp dir, scrubbed env and the audit hook)."""

    namespaces: bool = False  # fresh network + PID namespace via `unshare`
    separate_uid: bool = False  # per-slot unprivileged user id (only when running as root)
    unshare_path: str | None = None
    pids_cgroup: bool = False  # per-program cgroup-v1 pids controller with pids.max
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        layers = ["rlimits", "timeout+process-group kill", "temp dir", "scrubbed env", "audit hook"]
        if self.namespaces:
            layers.append("network+PID namespaces")
        if self.separate_uid:
            layers.append("unprivileged uid per slot")
        if self.pids_cgroup:
            layers.append("pids cgroup")
        return ", ".join(layers)


def _scrubbed_env(workdir: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}


_PIDS_ROOT = Path("/sys/fs/cgroup/pids")


def _make_cgroup(slot: int, limits: SandboxLimits) -> Path:
    group = _PIDS_ROOT / f"lm-eval-infogain-{os.getpid()}-{slot}"
    group.mkdir(exist_ok=True)
    (group / "pids.max").write_text(str(limits.max_processes))
    return group


def _remove_cgroup(group: Path) -> None:
    """Kill whatever is still in the group (host pids), then remove it."""
    for _ in range(50):
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
    try:
        group.rmdir()
    except OSError:
        pass


def _command(iso: Isolation, program: str, limits: SandboxLimits, cgroup: Path | None) -> list[str]:
    cpu = int(limits.timeout_s) + 1
    python = [sys.executable, "-I", "-S", _RUNNER.name, program, str(cpu), str(limits.memory_mb),
              str(limits.file_size_mb), str(limits.max_processes), str(limits.max_open_files),
              str(cgroup / "cgroup.procs") if cgroup else "-", "1" if limits.audit_hook else "0"]
    if not iso.namespaces:
        return python
    prefix = [iso.unshare_path or "unshare", "--net", "--pid", "--fork", "--kill-child"]
    if iso.separate_uid or os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    return prefix + python


def _kill_uid(uid: int) -> None:
    """Kill every process left behind by a sandbox uid (catches descendants that left the group)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _read(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _execute(source: str, limits: SandboxLimits, iso: Isolation, slot: int) -> ExecutionResult:
    workdir = tempfile.mkdtemp(prefix="infogain-exec-")
    uid = SANDBOX_UID_BASE + slot if iso.separate_uid else None
    cgroup: Path | None = None
    try:
        work = Path(workdir)
        if iso.pids_cgroup:
            cgroup = _make_cgroup(slot, limits)
        (work / "program.py").write_text(source, encoding="utf-8")
        shutil.copyfile(_RUNNER, work / _RUNNER.name)
        if uid is not None:
            for path in (work, work / "program.py", work / _RUNNER.name):
                os.chown(path, uid, uid)
        start = time.monotonic()
        with open(work / ".stdout", "wb") as out, open(work / ".stderr", "wb") as err:
            proc = subprocess.Popen(
                _command(iso, "program.py", limits, cgroup), cwd=workdir, env=_scrubbed_env(workdir),
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                user=uid, group=uid, extra_groups=[] if uid is not None else None, close_fds=True,
            )
            try:
                returncode: int | None = proc.wait(timeout=limits.timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                returncode, timed_out = None, True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                if uid is not None:
                    _kill_uid(uid)
                if cgroup is not None:
                    _remove_cgroup(cgroup)
                    cgroup = None
                proc.wait()
        duration = time.monotonic() - start
        stdout = _read(work / ".stdout", limits.output_chars)
        stderr = _read(work / ".stderr", limits.output_chars)
        if timed_out:
            return ExecutionResult(False, "timeout", None, stdout, stderr, duration)
        status = "passed" if returncode == 0 else "failed"
        return ExecutionResult(returncode == 0, status, returncode, stdout, stderr, duration)
    except OSError as exc:  # the sandbox itself could not start: fail this problem, keep the run going
        return ExecutionResult(False, "error", None, "", f"sandbox error: {exc}", 0.0)
    finally:
        if cgroup is not None:
            _remove_cgroup(cgroup)
        shutil.rmtree(workdir, ignore_errors=True)


def _probe(iso: Isolation) -> bool:
    result = _execute("assert sum(range(4)) == 6\n", SandboxLimits(timeout_s=20), iso, _MAX_SLOTS - 1)
    return result.passed


def _interpreter_readable_by_others() -> bool:
    """An unprivileged uid must be able to traverse to and read the interpreter and its stdlib."""
    for path in (Path(sys.executable).resolve(), Path(os.__file__).resolve()):
        for parent in [*path.parents][::-1][1:]:
            if not os.stat(parent).st_mode & 0o001:
                return False
    return True


@functools.lru_cache(maxsize=1)
def isolation() -> Isolation:
    """Probe, once per process, the strongest setup that runs a trivial program correctly."""
    unshare = shutil.which("unshare")
    candidates: list[Isolation] = []
    notes: list[str] = []
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if root and _interpreter_readable_by_others():
        if unshare:
            candidates.append(Isolation(namespaces=True, separate_uid=True, unshare_path=unshare))
        candidates.append(Isolation(separate_uid=True))
    elif root:
        notes.append("interpreter not readable by an unprivileged uid: running as root inside namespaces")
    if unshare:
        candidates.append(Isolation(namespaces=True, unshare_path=unshare))
    else:
        notes.append("`unshare` not found: no network/PID namespaces")
    cgroup_ok = root and os.access(_PIDS_ROOT / "cgroup.procs", os.W_OK)
    if cgroup_ok:
        candidates = [dataclasses.replace(c, pids_cgroup=True) for c in candidates] + candidates
        candidates.append(Isolation(pids_cgroup=True))
    for candidate in candidates:
        if _probe(candidate):
            return dataclasses.replace(candidate, notes=tuple(notes))
        notes.append(f"setup failed to start, skipped: {candidate.describe()}")
    return Isolation(notes=tuple(notes))


def run_program(source: str, limits: SandboxLimits | None = None) -> ExecutionResult:
    """Run one program in a fresh sandbox and return its verdict (never raises for program faults)."""
    limits = limits or SandboxLimits()
    iso = isolation()
    slot = _SLOTS.get()
    try:
        return _execute(source, limits, iso, slot)
    finally:
        _SLOTS.put(slot)


def run_programs(sources: Sequence[str], limits: SandboxLimits | None = None, *,
                 workers: int | None = None) -> list[ExecutionResult]:
    """Run many programs in parallel (bounded thread pool, one process each), results in input order.

    ``workers`` defaults to ``LM_EVAL_INFOGAIN_EXEC_WORKERS`` or the CPU count (at most 16).
    """
    if workers is None:
        workers = int(os.environ.get("LM_EVAL_INFOGAIN_EXEC_WORKERS", "0")) or min(16, os.cpu_count() or 1)
    if not 1 <= workers <= _MAX_SLOTS - 1:
        raise ValueError(f"workers must be between 1 and {_MAX_SLOTS - 1}, got {workers}")
    if not sources:
        return []
    isolation()  # probe before the pool starts, not concurrently inside it
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda src: run_program(src, limits), sources))
