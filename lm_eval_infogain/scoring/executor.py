"""Run untrusted programs (model-written code plus its tests), each contained by the kernel in its own process.

Why our own executor: lm-eval's HumanEval/MBPP tasks call ``evaluate.load("code_eval")`` (needs the
Hugging Face hub, and runs code in forked workers of the evaluating process). Here every program runs in
a fresh ``python -I -S`` process (``_sandbox_runner.py``) that, before any program code runs:

- enters fresh **mount, network, PID, IPC and UTS namespaces** (``unshare``) and swaps its root for a
  **minimal read-only one**: system and interpreter directories bound read-only, five device nodes, a
  size-limited private ``/tmp`` holding its working directory, no ``/proc``, no ``ctypes``. Nothing of the
  host is writable and the only network is a down loopback;
- becomes an **unprivileged user**: a per-slot uid when the evaluator is root (the root case matters:
  evaluations often run as root in containers), or a user namespace's root with every capability dropped
  otherwise; ``no_new_privs`` and non-dumpable either way;
- sets **rlimits** (CPU, memory, file size, processes, open files, no core dumps) and joins a **pids
  cgroup** where one is writable; the parent adds a wall-clock **timeout** that kills the process group;
- keeps a **Python guard** (audit hook) as an extra layer: no process creation, sockets, ctypes, writes
  outside the working directory, introspection that could reach the verdict machinery.

The **verdict** is not the exit status: the parent passes a one-time random token on stdin, and a sample
passes only when the runner wrote ``pass <token>`` to a private pipe after every stage (the program, then
its tests, each compiled on its own) returned normally, and the process then exited with status 0. See the
runner's docstring and docs/sandbox.md for why the program cannot write that line itself.

What the kernel allows is probed once per process (:func:`isolation`), strongest setup first, by running
a probe that tries to write a host file and checks its network. Anything weaker than full kernel
isolation is logged as a warning naming what is missing, and every verdict records the level used
(:attr:`ExecutionResult.isolation`, :func:`isolation_report`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import functools
import logging
import os
import queue
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = [
    "SandboxLimits",
    "ExecutionResult",
    "Program",
    "Isolation",
    "isolation",
    "isolation_report",
    "run_program",
    "run_programs",
]

logger = logging.getLogger(__name__)

_RUNNER = Path(__file__).with_name("_sandbox_runner.py")
#: Sandbox uids (when running as root) come from [base, base + SANDBOX_UID_COUNT), one per slot, each held
#: through an flock so that evaluators running side by side (data-parallel ranks, parallel test runs)
#: never share one: RLIMIT_NPROC counts per uid, and leftovers are killed per uid.
SANDBOX_UID_BASE = 61000
SANDBOX_UID_COUNT = 4096
_MAX_SLOTS = 64
_SLOTS: "queue.Queue[int]" = queue.Queue()
for _slot in range(_MAX_SLOTS):
    _SLOTS.put(_slot)

_PIDS_ROOT = Path("/sys/fs/cgroup/pids")
_programs_run = 0
_programs_lock = threading.Lock()
_probe_lock = threading.Lock()
_uid_lock = threading.Lock()
_slot_uids: dict[int, int] = {}
_uid_claims: list = []  # open lock files: the flocks live as long as this process


def _uid_lock_dir() -> Path:
    """A root-only folder for the uid locks (/run where writable, else a temp folder we must own)."""
    for parent in (Path("/run"), Path(tempfile.gettempdir())):
        directory = parent / "lm-eval-infogain-uids"
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            info = directory.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022:
            return directory
    raise OSError("no private folder for the sandbox uid locks in /run or the temp dir")


def _slot_uid(slot: int) -> int:
    """The unprivileged uid of a slot: claimed once per process, never shared with another evaluator."""
    with _uid_lock:
        if slot in _slot_uids:
            return _slot_uids[slot]
        directory, taken = _uid_lock_dir(), set(_slot_uids.values())
        for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UID_COUNT):
            if uid in taken:
                continue
            handle = open(directory / str(uid), "a")  # noqa: SIM115 - kept open: it holds the claim
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            _uid_claims.append(handle)
            _slot_uids[slot] = uid
            return uid
    raise OSError(f"all {SANDBOX_UID_COUNT} sandbox uids from {SANDBOX_UID_BASE} are in use")


def _default_timeout() -> float:
    return float(os.environ.get("LM_EVAL_INFOGAIN_EXEC_TIMEOUT", "20"))


@dataclass(frozen=True)
class SandboxLimits:
    """Per-program limits. Defaults suit HumanEval/MBPP (tiny programs, stdlib only).

    The wall-clock default (20 s, ``LM_EVAL_INFOGAIN_EXEC_TIMEOUT``) is generous on purpose: MBPP's
    reference solution of task 123 needs about 10 CPU seconds on a busy machine, and a correct program
    must not fail for being slow. The CPU limit is the timeout plus one second. ``file_size_mb`` also
    sizes the private ``/tmp`` (working directory included) under kernel isolation.
    """

    timeout_s: float = field(default_factory=_default_timeout)
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_processes: int = 16
    max_open_files: int = 64
    output_chars: int = 2000
    #: The Python guard of the runner. Switch off only to test the kernel layers on their own.
    audit_hook: bool = True

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_mb", "file_size_mb", "max_processes", "max_open_files", "output_chars"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Program:
    """A program in two stages: the model's code, then the trusted tests, each compiled on its own.

    Compiling the tests separately means the model's code cannot swallow them (an unterminated string, a
    dangling block); the verdict needs both stages to return normally, in one shared namespace.
    """

    solution: str
    tests: str = ""

    @property
    def source(self) -> str:
        """The whole program as one text (what ``--log_samples`` shows)."""
        return f"{self.solution}\n\n{self.tests}" if self.tests else self.solution


@dataclass(frozen=True)
class ExecutionResult:
    """Verdict of one program.

    ``passed`` is True only when the harness reported success after every stage returned normally, the
    process then exited cleanly within the limits. ``isolation`` is the level it ran under (see
    :attr:`Isolation.level`).
    """

    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error"
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    isolation: str = "none"

    def as_dict(self) -> dict:
        return {"passed": self.passed, "status": self.status, "returncode": self.returncode,
                "stderr": self.stderr[-500:], "duration_s": round(self.duration_s, 3),
                "isolation": self.isolation}


@dataclass(frozen=True)
class Isolation:
    """The OS layers in force (besides rlimits, timeout, scrubbed env and the Python guard)."""

    namespaces: bool = False  # fresh network + PID (+ IPC, UTS) namespaces via `unshare`
    separate_uid: bool = False  # per-slot unprivileged user id (only when running as root)
    unshare_path: str | None = None
    pids_cgroup: bool = False  # per-program cgroup-v1 pids controller with pids.max
    notes: tuple[str, ...] = field(default_factory=tuple)
    private_root: bool = False  # mount namespace with a minimal read-only root; only the temp dir is writable
    user_namespace: bool = False  # inside a user namespace, every capability dropped

    def __post_init__(self) -> None:
        if self.private_root and not self.namespaces:
            raise ValueError("Isolation.private_root needs namespaces=True (the PID namespace ends every "
                             "process of the program with it)")
        if self.separate_uid and self.user_namespace:
            raise ValueError("Isolation: choose separate_uid (root evaluator) or user_namespace, not both")

    @property
    def unprivileged(self) -> bool:
        return self.separate_uid or self.user_namespace or os.geteuid() != 0

    @property
    def level(self) -> str:
        """``kernel``: host files read-only, no network, unprivileged, all enforced by the kernel;
        ``partial``: some kernel layers; ``none``: rlimits, timeout and the Python guard only."""
        if self.private_root and self.namespaces and self.unprivileged:
            return "kernel"
        if self.private_root or self.namespaces or self.separate_uid or self.pids_cgroup:
            return "partial"
        return "none"

    def layers(self) -> list[str]:
        layers = ["rlimits", "timeout+process-group kill", "scrubbed env", "Python audit hook"]
        if self.private_root:
            layers.append("read-only private root (only the temp dir writable)")
        if self.namespaces:
            layers.append("network+PID namespaces")
        if self.separate_uid:
            layers.append("unprivileged uid per slot")
        if self.user_namespace:
            layers.append("user namespace without capabilities")
        if self.pids_cgroup:
            layers.append("pids cgroup")
        return layers

    def describe(self) -> str:
        return f"{self.level}: " + ", ".join(self.layers())


def _scrubbed_env(workdir: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}


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


def _wait_until_exit(proc: subprocess.Popen, timeout: float) -> bool:
    """True when the process exited within ``timeout``. Waits on a pidfd where the kernel has them:
    ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, which added about half of every short
    program's wall time."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    finally:
        os.close(pidfd)


def _read_available(fd: int, limit: int = 4096) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, limit)
    except BlockingIOError:
        return b""


@dataclass(frozen=True)
class _Layout:
    """Where one program lives: on the host (one directory: every extra one costs a directory removal,
    which is milliseconds on some file systems), and as the program sees it."""

    base: Path  # host temp dir with the stage files and the output files, removed afterwards
    root: Path | None  # mount point for the private root (the base dir itself, covered by a tmpfs), or None
    inner_workdir: str  # the working directory the program sees


def _layout(iso: Isolation) -> _Layout:
    base = Path(tempfile.mkdtemp(prefix="infogain-exec-"))
    if iso.private_root:
        return _Layout(base, base, f"/tmp/{base.name}")
    return _Layout(base, None, str(base))


def _read_back(handle, limit: int) -> str:
    """Read an output file through the parent's own handle (the program may have replaced the path)."""
    handle.flush()
    handle.seek(0)
    return handle.read(limit).decode("utf-8", "replace")


def _command(iso: Isolation, limits: SandboxLimits, layout: _Layout, cgroup: Path | None, uid: int | None,
             verdict_fd: int, stage_files: list[str]) -> list[str]:
    cpu = int(limits.timeout_s) + 1
    if uid is not None:
        drop = f"uid:{uid}"
    elif iso.user_namespace:
        drop = "caps"
    else:
        drop = "-"
    python = [sys.executable, "-I", "-S", str(_RUNNER), str(cpu), str(limits.memory_mb), str(limits.file_size_mb),
              str(limits.max_processes), str(limits.max_open_files),
              str(cgroup / "cgroup.procs") if cgroup else "-", "1" if limits.audit_hook else "0",
              str(layout.root) if layout.root else "-", layout.inner_workdir, drop, str(verdict_fd), *stage_files]
    if not iso.namespaces:
        return python
    prefix = [iso.unshare_path or "unshare"]
    if iso.user_namespace:
        prefix += ["--user", "--map-root-user"]
    # The runner makes its own mount namespace (so it can never remount the host's): not `--mount` here.
    return prefix + ["--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child"] + python


def _verdict(returncode: int | None, timed_out: bool, reported: bool, stdout: str, stderr: str,
             duration: float, level: str) -> ExecutionResult:
    if timed_out:
        return ExecutionResult(False, "timeout", None, stdout, stderr, duration, level)
    if reported and returncode == 0:
        return ExecutionResult(True, "passed", 0, stdout, stderr, duration, level)
    if returncode == 0:
        stderr += ("\nsandbox: exit status 0 without the harness's pass report: the program ended before "
                   "its tests finished")
    return ExecutionResult(False, "failed", returncode, stdout, stderr, duration, level)


def _execute(program: Program, limits: SandboxLimits, iso: Isolation, slot: int) -> ExecutionResult:
    layout = _layout(iso)
    cgroup: Path | None = None
    read_end: int | None = None
    uid: int | None = None
    try:
        uid = _slot_uid(slot) if iso.separate_uid else None
        stage_files = ["program.py"] + (["tests.py"] if program.tests else [])
        (layout.base / "program.py").write_text(program.solution, encoding="utf-8")
        if program.tests:
            (layout.base / "tests.py").write_text(program.tests, encoding="utf-8")
        if iso.pids_cgroup:
            cgroup = _make_cgroup(slot, limits)
        token = secrets.token_hex(16).encode()
        read_end, write_end = os.pipe()
        start = time.monotonic()
        with open(layout.base / ".stdout", "w+b") as out, open(layout.base / ".stderr", "w+b") as err:
            try:
                proc = subprocess.Popen(
                    _command(iso, limits, layout, cgroup, uid, write_end, stage_files), cwd=layout.base,
                    env=_scrubbed_env(layout.inner_workdir), stdin=subprocess.PIPE, stdout=out, stderr=err,
                    start_new_session=True, pass_fds=(write_end,),
                )
            finally:
                os.close(write_end)
            try:
                proc.stdin.write(token + b"\n")
                proc.stdin.close()
            except OSError:  # it died before reading: the verdict below says why
                pass
            try:
                timed_out = not _wait_until_exit(proc, limits.timeout_s)
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                if uid is not None and not iso.namespaces:
                    _kill_uid(uid)
                if cgroup is not None:
                    _remove_cgroup(cgroup)
                    cgroup = None
                returncode: int | None = None if timed_out else proc.wait()
                proc.wait()
            duration = time.monotonic() - start
            stdout, stderr = _read_back(out, limits.output_chars), _read_back(err, limits.output_chars)
        report = _read_available(read_end)
        if report == b"setup-failed " + token + b"\n":
            return ExecutionResult(False, "error", returncode, stdout, stderr, duration, iso.level)
        return _verdict(returncode, timed_out, report == b"pass " + token + b"\n", stdout, stderr, duration,
                        iso.level)
    except OSError as exc:  # the sandbox itself could not start: fail this problem, keep the run going
        return ExecutionResult(False, "error", None, "", f"sandbox error: {exc}", 0.0, iso.level)
    finally:
        if read_end is not None:
            os.close(read_end)
        if cgroup is not None:
            _remove_cgroup(cgroup)
        shutil.rmtree(layout.base, ignore_errors=True)


def _probe(iso: Isolation) -> str | None:
    """Run a probe under ``iso`` with the Python guard off; None when every claimed layer held, else why not.

    The probe tries to write a file into a world-writable host directory (so file permissions alone
    would not stop it), lists its network interfaces and prints its uid."""
    outside = Path(tempfile.mkdtemp(prefix="infogain-probe-"))
    try:
        outside.chmod(0o777)
        target = outside / "written-from-sandbox"
        source = (
            "import os, socket\n"
            "try:\n"
            f"    open({str(target)!r}, 'w').write('x')\n"
            "except OSError:\n"
            "    pass\n"
            "print(os.geteuid(), ','.join(name for _, name in socket.if_nameindex()))\n"
        )
        result = _execute(Program(source), SandboxLimits(timeout_s=20, audit_hook=False), iso, _MAX_SLOTS - 1)
        if not result.passed:
            return f"{result.status}: {result.stderr.strip()[-300:]}"
        uid, _, interfaces = result.stdout.strip().partition(" ")
        if iso.private_root and target.exists():
            return f"the private root did not protect the host: the probe wrote {target}"
        if iso.namespaces and interfaces != "lo":
            return f"network namespace not in force: interfaces {interfaces!r}"
        if iso.separate_uid and uid != str(_slot_uid(_MAX_SLOTS - 1)):
            return f"uid drop not in force: the probe ran as uid {uid}"
        return None
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def _interpreter_readable_by_others() -> bool:
    """Without a private root, an unprivileged uid must be able to traverse to and read the stdlib."""
    for path in (Path(sys.executable).resolve(), Path(os.__file__).resolve()):
        for parent in [*path.parents][::-1][1:]:
            if not os.stat(parent).st_mode & 0o001:
                return False
    return True


def _candidates(unshare: str | None, root: bool, notes: list[str]) -> list[Isolation]:
    """Setups to try, strongest first."""
    candidates: list[Isolation] = []
    readable = root and _interpreter_readable_by_others()
    if unshare:
        if root:
            candidates.append(Isolation(namespaces=True, private_root=True, separate_uid=True, unshare_path=unshare))
        candidates.append(Isolation(namespaces=True, private_root=True, user_namespace=True, unshare_path=unshare))
        if readable:
            candidates.append(Isolation(namespaces=True, separate_uid=True, unshare_path=unshare))
        candidates.append(Isolation(namespaces=True, user_namespace=not root, unshare_path=unshare))
    else:
        notes.append("`unshare` (util-linux) not found: no mount/network/PID namespaces, host files and "
                     "network are not protected by the kernel")
    if readable:
        candidates.append(Isolation(separate_uid=True))
    elif root:
        notes.append("interpreter not readable by an unprivileged uid: no separate uid without a private root")
    if root and os.access(_PIDS_ROOT / "cgroup.procs", os.W_OK):
        # Where the program's processes would belong to root (exempt from RLIMIT_NPROC), a pids cgroup
        # bounds fork bombs; with a separate uid RLIMIT_NPROC does, and joining a cgroup costs a few
        # to tens of milliseconds per program (the kernel waits for an RCU grace period).
        bounded = [c if c.separate_uid else dataclasses.replace(c, pids_cgroup=True) for c in candidates]
        candidates = bounded + [c for c in candidates if not c.separate_uid] + [Isolation(pids_cgroup=True)]
    return candidates


@functools.lru_cache(maxsize=1)
def isolation() -> Isolation:
    """Probe, once per process, the strongest setup whose layers actually hold here.

    Anything weaker than ``kernel`` level is logged as a warning that names what is missing."""
    with _probe_lock:  # probes share a slot: never two at once
        return _choose_isolation()


def _choose_isolation() -> Isolation:
    notes: list[str] = []
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    chosen = Isolation()
    for candidate in _candidates(shutil.which("unshare"), root, notes):
        failure = _probe(candidate)
        if failure is None:
            chosen = candidate
            break
        notes.append(f"skipped ({candidate.describe()}): {failure}")
    if chosen.level == "kernel":  # what is missing only matters when something is
        notes = [note for note in notes if note.startswith("skipped")]
    chosen = dataclasses.replace(chosen, notes=tuple(notes))
    if chosen.level != "kernel":
        logger.warning(
            "code sandbox: kernel isolation is not available here, generated programs run with %s. "
            "Missing: %s. Run as root or enable unprivileged user namespaces (and install util-linux's "
            "`unshare`) for a read-only host and no network.",
            chosen.describe(), "; ".join(notes) or "no namespace support", )
    return chosen


def isolation_report() -> dict | None:
    """What contained the programs of this process, for ``results["config"]``; None before the first program.

    Keys: ``level`` ("kernel" | "partial" | "none"), ``description`` (one line), ``private_root``,
    ``network_isolated``, ``pid_namespace``, ``unprivileged``, ``separate_uid``, ``user_namespace``,
    ``pids_cgroup`` (bools), ``notes`` (list of str: what was missing or skipped), ``programs_run`` (int).
    """
    with _programs_lock:
        count = _programs_run
    if count == 0:
        return None
    iso = isolation()
    return {
        "level": iso.level,
        "description": iso.describe(),
        "private_root": iso.private_root,
        "network_isolated": iso.namespaces,
        "pid_namespace": iso.namespaces,
        "unprivileged": iso.unprivileged,
        "separate_uid": iso.separate_uid,
        "user_namespace": iso.user_namespace,
        "pids_cgroup": iso.pids_cgroup,
        "notes": list(iso.notes),
        "programs_run": count,
    }


ProgramLike = str | Program


def run_program(source: ProgramLike, limits: SandboxLimits | None = None) -> ExecutionResult:
    """Run one program in a fresh sandbox and return its verdict (never raises for program faults).

    ``source`` is either the whole program as text (it passes when it runs to its end) or a
    :class:`Program` (the tests run as their own stage after the model's code)."""
    global _programs_run
    program = source if isinstance(source, Program) else Program(source)
    limits = limits or SandboxLimits()
    iso = isolation()
    slot = _SLOTS.get()
    try:
        return _execute(program, limits, iso, slot)
    finally:
        _SLOTS.put(slot)
        with _programs_lock:
            _programs_run += 1


def run_programs(sources: Sequence[ProgramLike], limits: SandboxLimits | None = None, *,
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
