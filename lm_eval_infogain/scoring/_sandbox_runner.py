"""Runs INSIDE the sandbox process: limits itself, installs guards, then executes one program.

This file is copied next to the program into the sandbox's temporary directory and started with
``python -I -S _sandbox_runner.py program.py <cpu_s> <memory_mb> <fsize_mb> <nproc> <nofile> <cgroup> <hook>``
(``<cgroup>``: a pids cgroup's ``cgroup.procs`` file to join, or ``-``; ``<hook>``: ``1`` to install the
audit hook, ``0`` only in tests of the OS layers). It imports
only the standard library and never the ``lm_eval_infogain`` package, so it works under ``-S``
(no site-packages) and under a dropped user id that cannot read the installation.

Why a runner instead of ``python program.py``:
- resource limits are set here, in the child, so the parent never needs ``preexec_fn`` (unsafe with
  threads, and the parent runs many programs from a thread pool);
- an audit hook (PEP 578) blocks process creation, sockets, ctypes, writes/deletes outside the
  sandbox directory and reads of other processes' ``/proc`` entries. The hook is defence in depth —
  Python-level guards can be bypassed by determined code; the OS layers chosen by ``executor.py``
  (separate user id, network and PID namespaces, rlimits, process-group kill) are the boundary;
- the verdict is the runner's own exit status: 0 only when the program ran to its end without an
  exception. ``exit()``/``sys.exit()``/``os._exit()`` inside the program count as failure, so a
  program cannot "pass" by leaving before its tests run.
"""

import os
import resource
import sys

_BLOCKED_PREFIXES = ("socket.", "ctypes.", "subprocess.", "pty.", "os.exec", "os.spawn", "os.posix_spawn")
_BLOCKED_EVENTS = frozenset({"os.system", "os.fork", "os.forkpty", "os.startfile", "winreg.OpenKey"})
_BLOCKED_IMPORTS = frozenset({"_posixsubprocess", "_ctypes", "ctypes", "_xxsubinterpreters", "_testcapi"})
_PATH_EVENTS = frozenset(
    {
        "os.remove",
        "os.rmdir",
        "os.rename",
        "os.truncate",
        "os.chmod",
        "os.chown",
        "os.chflags",
        "os.lchflags",
        "os.mkdir",
        "os.symlink",
        "os.link",
        "os.utime",
        "os.setxattr",
        "os.removexattr",
        "shutil.rmtree",
        "shutil.chown",
        "shutil.move",
        "shutil.copyfile",
        "shutil.copytree",
    }
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _set_limits(cpu_s: int, memory_mb: int, fsize_mb: int, nproc: int, nofile: int) -> None:
    mib = 1024 * 1024
    for name, value in (
        ("RLIMIT_CPU", cpu_s),
        ("RLIMIT_AS", memory_mb * mib),
        ("RLIMIT_DATA", memory_mb * mib),
        ("RLIMIT_FSIZE", fsize_mb * mib),
        ("RLIMIT_NPROC", nproc),
        ("RLIMIT_NOFILE", nofile),
        ("RLIMIT_CORE", 0),
    ):
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            # Lowering below the current usage is refused (e.g. NPROC for a busy user): keep going,
            # the other layers still hold.
            pass


def _make_hook(sandbox: str):
    own_proc = "/proc/%d/" % os.getpid()

    def inside(path) -> bool:
        if isinstance(path, int):
            return True
        try:
            path = os.fsdecode(os.fspath(path))
        except TypeError:
            return True
        real = os.path.realpath(path)
        return real == sandbox or real.startswith(sandbox + os.sep)

    def readable(path) -> bool:
        if isinstance(path, int):
            return True
        try:
            real = os.path.realpath(os.fsdecode(os.fspath(path)))
        except TypeError:
            return True
        return not real.startswith("/proc/") or real.startswith(own_proc)

    def deny(event: str) -> None:
        raise PermissionError("sandbox: %s is not allowed" % event)

    def hook(event: str, args: tuple) -> None:
        if event in _BLOCKED_EVENTS or event.startswith(_BLOCKED_PREFIXES):
            deny(event)
        if event == "import" and args and args[0] in _BLOCKED_IMPORTS:
            deny("import " + str(args[0]))
        if event in ("os.kill", "os.killpg") and args and args[0] not in (0, os.getpid()):
            deny(event)
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writing = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if writing and not inside(path):
                deny("writing %r" % (path,))
            if not readable(path):
                deny("reading %r" % (path,))
        elif event in _PATH_EVENTS:
            for arg in args:
                if isinstance(arg, (str, bytes, os.PathLike)) and not inside(arg):
                    deny("%s on %r" % (event, arg))

    return hook


def _no_exit(*_args, **_kwargs):
    raise PermissionError("sandbox: os._exit is not allowed")


def main() -> int:
    program_path = sys.argv[1]
    cpu_s, memory_mb, fsize_mb, nproc, nofile = (int(v) for v in sys.argv[2:7])
    cgroup_procs, use_hook = sys.argv[7], sys.argv[8] == "1"
    if cgroup_procs != "-":
        # "0" means "the writing process" (cgroup v1 and v2); a numeric pid would be wrong inside a
        # PID namespace. Every later descendant inherits the group and its pids.max.
        with open(cgroup_procs, "w") as handle:
            handle.write("0")
    with open(program_path, encoding="utf-8") as handle:
        source = handle.read()
    _set_limits(cpu_s, memory_mb, fsize_mb, nproc, nofile)
    if use_hook:
        sys.addaudithook(_make_hook(os.path.realpath(os.getcwd())))
    os._exit = _no_exit
    posix = sys.modules.get("posix")
    if posix is not None:
        posix._exit = _no_exit
    program_globals = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(source, "program.py", "exec"), program_globals)
    except SystemExit:
        sys.stderr.write("sandbox: the program called exit() before finishing\n")
        return 3
    except BaseException:  # noqa: BLE001 - any failure of the program is its verdict
        import traceback  # only on failure: keeps start-up cheap for the common passing case

        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    raise SystemExit(main())
