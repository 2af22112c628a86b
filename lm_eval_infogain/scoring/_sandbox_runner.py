"""Runs INSIDE the sandbox process: confines itself, then executes one program and reports its verdict.

Started by ``executor.py`` as the evaluating user (often root) with
``python -I -S _sandbox_runner.py <cpu_s> <memory_mb> <fsize_mb> <nproc> <nofile> <cgroup> <hook> <root>
<workdir> <drop> <verdict_fd> <stage file>...``:

- ``<cgroup>``: a pids cgroup's ``cgroup.procs`` file to join, or ``-``;
- ``<hook>``: ``1`` installs the Python guard (``0`` only in tests of the kernel layers);
- ``<root>``: an empty directory to build a private root file system on (in a mount namespace of its
  own, which the runner creates), or ``-``; ``<workdir>``: the program's working directory inside it;
- ``<drop>``: ``uid:N`` (become that unprivileged user), ``caps`` (drop every capability; used inside a
  user namespace) or ``-``;
- ``<verdict_fd>``: the write end of the verdict pipe; the one-time token arrives as the only line on stdin;
- the stage files: the program (model code) and, optionally, its tests, each compiled on its own.

It imports only the standard library and never the ``lm_eval_infogain`` package, so it works under
``-S``. Order of work, every step before any program code runs:

1. read the token from stdin, then point stdin at ``/dev/null``; join the pids cgroup;
2. with ``<root>``: build a minimal read-only root (system and interpreter directories bound read-only,
   five device nodes, a size-limited private ``/tmp`` holding the working directory, no ``/proc``, no
   ``_ctypes`` extension) and ``pivot_root`` into it — the host's files are then out of reach;
3. drop privileges (unprivileged uid, or no capabilities), forbid gaining new ones, become non-dumpable;
4. compile the stages, start the thread that will run them, set the rlimits, install the audit hooks;
5. run the stages in that thread, in one namespace, one after the other.

The verdict: the runner's *notary* audit hook writes ``pass <token>`` to the verdict pipe and ends the
process at once (no ``atexit``, no finalizers, no lingering threads) — but only when the event comes from
the stage-running frame it saw first, right after every stage returned normally. The program cannot raise
that event from that frame, cannot reach the notary (it is held only by the interpreter's hook list;
``gc`` introspection, tracing and profiling are refused), and never runs in the main thread, so no signal
handler of its own can catch a frame of the notary. Exit statuses are no verdict: ``exit()``,
``os._exit(0)``, ``atexit`` or ``__del__`` tricks end the process without the report, which fails.
See docs/sandbox.md for the threat model and what in-process code can still do.
"""

import os
import sys
import _thread

# The shield (always installed): what could reach the notary's token in this process or read its memory.
_SHIELD_EVENTS = frozenset(
    {
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
        "sys._current_exceptions", "sys.settrace", "sys.setprofile", "sys.addaudithook",
        "sys.monitoring.register_callback", "code.__new__",
    }
)
_SHIELD_IMPORTS = frozenset(
    {
        "_ctypes", "ctypes", "_ctypes_test", "_testcapi", "_testinternalcapi", "_xxsubinterpreters",
        "_interpreters", "_xxinterpchannels",
    }
)
# The guard (defence in depth for the kernel layers): processes, network, files, signals, limits.
_BLOCKED_PREFIXES = ("socket.", "subprocess.", "pty.", "os.exec", "os.spawn", "os.posix_spawn")
_BLOCKED_EVENTS = frozenset(
    {
        "os.system", "os.fork", "os.forkpty", "os.startfile", "winreg.OpenKey", "os.unshare", "os.setns",
        # The limits are set before the program runs; it may not raise them (as root it could).
        "resource.setrlimit", "resource.prlimit",
    }
)
_BLOCKED_IMPORTS = frozenset({"_posixsubprocess"})
_PATH_EVENTS = frozenset(
    {
        "os.remove", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.chown", "os.chflags",
        "os.lchflags", "os.mkdir", "os.symlink", "os.link", "os.utime", "os.setxattr", "os.removexattr",
        "shutil.rmtree", "shutil.chown", "shutil.move", "shutil.copyfile", "shutil.copytree",
    }
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

#: Host directories a Python program may need to read (libraries, configuration, zoneinfo, ...).
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_DEVICES = ("null", "zero", "full", "random", "urandom")

_EXIT_EXCEPTION, _EXIT_CALLED_EXIT, _EXIT_SETUP_FAILED, _EXIT_NOT_REPORTED = 1, 3, 4, 5

# mount(2) flags; the ST_* bits of statvfs use the same values for the ones preserved here.
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MS_KEEP = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC | 1024 | 2048 | 4096  # + NOATIME, NODIRATIME, RELATIME
_MNT_DETACH, _CLONE_NEWNS = 2, 0x00020000
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_SECUREBITS, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 4, 24, 28, 38, 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
# NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, each with its lock bit.
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
_CAPABILITY_VERSION_3 = 0x20080522


class SetupError(Exception):
    """The sandbox could not be built (reported with exit status 4, so the parent says "error")."""


def _read_token(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < 256:
        chunk = os.read(fd, 256 - len(data))
        if not chunk:
            break
        data += chunk
    token = data.strip()
    if not token:
        raise SetupError("no verdict token on stdin")
    return token


def _libc():
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _checked(ctypes, result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SetupError("%s: %s" % (what, os.strerror(errno)))


def _mount_points_under(directory: str) -> list:
    """Mount points at or below ``directory`` in this mount namespace (field 5 of mountinfo)."""
    points = []
    with open("/proc/self/mountinfo", "rb") as handle:
        for line in handle:
            point = os.fsdecode(line.split()[4])
            for escape, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
                point = point.replace(escape, char)
            if point == directory or point.startswith(directory + "/"):
                points.append(point)
    return points


def _private_root(ctypes, libc, root: str, workdir: str, tmp_mb: int, stages: dict) -> None:
    """Build a minimal read-only root at ``root`` (we are in a fresh mount namespace) and move into it."""

    def encode(value):
        return None if value is None else os.fsencode(value)

    def mount(source, target, fstype, flags, data=None) -> None:
        result = libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data))
        _checked(ctypes, result, "mount %s on %s" % (source or fstype, target))

    # Our own mount namespace, whatever started us: nothing below can touch the host's mount table.
    _checked(ctypes, libc.unshare(_CLONE_NEWNS), "unshare a mount namespace")
    mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
    wanted = list(_SYSTEM_DIRS) + [sys.base_prefix, sys.prefix, sys.exec_prefix] + list(sys.path)
    chosen: list = []
    for path in sorted({p if os.path.islink(p) and os.path.dirname(p) == "/" else os.path.realpath(p)
                        for p in wanted if p and os.path.lexists(p)}):
        if not any(path.startswith(outer + "/") for outer in chosen):
            chosen.append(path)
    for path in chosen:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            os.makedirs(root + path, 0o755, exist_ok=True)
            mount(path, root + path, None, _MS_BIND | _MS_REC)
    os.mkdir(root + "/dev", 0o755)
    for name in _DEVICES:
        open(root + "/dev/" + name, "wb").close()
        mount("/dev/" + name, root + "/dev/" + name, None, _MS_BIND)
    # No native calls from inside: the ctypes extension reads as an empty file.
    for directory in sys.path:
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.startswith("_ctypes") and name.endswith(".so"):
                    mount("/dev/null", root + os.path.realpath(os.path.join(directory, name)), None, _MS_BIND)
    # Every mount below the new root read-only (binds are recursive, so submounts too), keeping the flags
    # a user namespace may not clear; device nodes only under /dev.
    for point in _mount_points_under(root):
        if point != root:
            kept = os.statvfs(point).f_flag & _MS_KEEP
            device = point.startswith(root + "/dev/")
            mount(None, point, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | kept
                  | (0 if device else _MS_NODEV))
    os.mkdir(root + "/tmp", 0o755)
    mount("tmpfs", root + "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777,size=%dm" % tmp_mb)
    os.makedirs(root + workdir, 0o700)
    for name, text in stages.items():
        with open(os.path.join(root + workdir, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    mount(None, root, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.chdir(root)
    _checked(ctypes, libc.pivot_root(b".", b"."), "pivot_root")
    _checked(ctypes, libc.umount2(b".", _MNT_DETACH), "detach the old root")
    os.chdir(workdir)


def _drop_privileges(ctypes, libc, drop: str) -> None:
    if drop.startswith("uid:"):
        uid = int(drop[4:])
        os.chown(".", uid, uid)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise SetupError("could not become uid %d" % uid)
    elif drop == "caps":  # root of a user namespace: keep the uid, lose every capability for good
        cap = 0
        while libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
            cap += 1
        _checked(ctypes, libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
        _checked(ctypes, libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0), "lock securebits")

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        _checked(ctypes, libc.capset(ctypes.byref(Header(_CAPABILITY_VERSION_3, 0)), (Data * 2)()), "capset")
    _checked(ctypes, libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _checked(ctypes, libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "non-dumpable")


def _forget_ctypes() -> None:
    for name in [n for n in sys.modules if n == "ctypes" or n.startswith(("ctypes.", "_ctypes"))]:
        del sys.modules[name]


def _join_cgroup(procs_file: str) -> None:
    # "0" means "the writing process" (cgroup v1 and v2); a numeric pid would be wrong inside a PID
    # namespace. Every later thread and descendant inherits the group and its pids.max.
    with open(procs_file, "w") as handle:
        handle.write("0")


def _set_limits(cpu_s: int, memory_mb: int, fsize_mb: int, nproc: int, nofile: int) -> None:
    import resource

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


def _resolver():
    realpath, fsdecode, fspath = os.path.realpath, os.fsdecode, os.fspath

    def resolved(path):
        if isinstance(path, int):
            return None
        try:
            return realpath(fsdecode(fspath(path)))
        except TypeError:
            return None

    return resolved


def _deny(event: str) -> None:
    raise PermissionError("sandbox: %s is not allowed" % event)


def _make_shield():
    """Refuses what could find the notary or read this process's memory. Holds nothing secret itself (it
    raises, so its frame shows up in tracebacks), and is installed even when the guard is not."""
    resolved, deny = _resolver(), _deny
    events, imports, own_proc = _SHIELD_EVENTS, _SHIELD_IMPORTS, "/proc/%d/" % os.getpid()
    memory = tuple(base + name for base in (own_proc, "/proc/self/", "/proc/thread-self/")
                   for name in ("mem", "task", "map_files"))

    def shield(event: str, args: tuple) -> None:
        if event in events or event.startswith("ctypes."):
            deny(event)
        if event == "import" and args and args[0] in imports:
            deny("import " + str(args[0]))
        if event == "open" and args:
            real = resolved(args[0])
            if real is not None and real.startswith(memory):
                deny("reading %r" % (args[0],))

    return shield


def _make_guard(sandbox: str):
    """The Python guard (defence in depth; the kernel layers are the boundary).

    Everything it consults is bound here, before the program runs, in this closure: rebinding the
    runner's module globals (reachable through frames) changes nothing."""
    resolved, deny, own_proc, own_pid = _resolver(), _deny, "/proc/%d/" % os.getpid(), os.getpid()
    blocked_prefixes, blocked_events, blocked_imports = _BLOCKED_PREFIXES, _BLOCKED_EVENTS, _BLOCKED_IMPORTS
    path_events, write_flags = _PATH_EVENTS, _WRITE_FLAGS

    def inside(path) -> bool:
        real = resolved(path)
        return real is None or real == sandbox or real.startswith(sandbox + "/")

    def readable(path) -> bool:
        real = resolved(path)
        return real is None or not real.startswith("/proc/") or real.startswith(own_proc)

    def guard(event: str, args: tuple) -> None:
        if event in blocked_events or event.startswith(blocked_prefixes):
            deny(event)
        if event == "import" and args and args[0] in blocked_imports:
            deny("import " + str(args[0]))
        if event in ("os.kill", "os.killpg") and args and args[0] not in (0, own_pid):
            deny(event)
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writing = (isinstance(flags, int) and flags & write_flags) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if writing and not inside(path):
                deny("writing %r" % (path,))
            if not readable(path):
                deny("reading %r" % (path,))
        elif event in path_events:
            for arg in args:
                if isinstance(arg, (str, bytes, os.PathLike)) and not inside(arg):
                    deny("%s on %r" % (event, arg))

    return guard


def _make_notary(verdict_fd: int, token: bytes):
    """The only code that can report a pass: see the module docstring for why the program cannot."""
    message = b"pass " + token + b"\n"
    getframe, write, exit_now, type_, str_ = sys._getframe, os.write, os._exit, type, str
    streams = (sys.stdout, sys.stderr)
    armed = []

    def notary(event, args) -> None:
        if type_(event) is not str_:
            return
        if event == "lm_eval_infogain.sandbox.arm":
            if not armed:
                armed.append(getframe(1))
        elif event == "lm_eval_infogain.sandbox.pass" and armed and getframe(1) is armed[0]:
            write(verdict_fd, message)
            for stream in streams:
                try:
                    stream.flush()
                except BaseException:  # noqa: BLE001 - the verdict is written; output is best effort
                    pass
            exit_now(0)

    return notary


def _run_stages(codes, namespace, go, done, outcome, streams, audit=sys.audit):
    """Runs in its own thread: every stage in one C-level sweep, then the pass event from this frame.

    ``deque(map(exec, ...), maxlen=0)`` runs the stages without returning to Python code in between,
    so nothing the program rebinds (even this frame's locals, writable from outside on newer Pythons)
    can skip a stage."""
    from _collections import deque  # the C type itself: importing `collections` costs a millisecond
    from itertools import repeat

    go.acquire()
    try:
        audit("lm_eval_infogain.sandbox.arm")
        deque(map(exec, codes, repeat(namespace, len(codes))), 0)
        audit("lm_eval_infogain.sandbox.pass")  # the notary ends the process here
        outcome.append(_EXIT_NOT_REPORTED)
    except SystemExit:
        outcome.append(_EXIT_CALLED_EXIT)
        streams[1].write("sandbox: the program called exit() before its tests finished\n")
    except BaseException:  # noqa: BLE001 - any failure of the program is its verdict
        outcome.append(_EXIT_EXCEPTION)
        import traceback  # only on failure: keeps start-up cheap for the common passing case

        traceback.print_exc(file=streams[1])
    finally:
        for stream in streams:  # the streams as they were before the program ran
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        done.release()


def _ignore_interrupts() -> None:
    import _signal

    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # `_thread.interrupt_main()` then does nothing


def _install_hooks(notary, shield, guard) -> None:
    """Notary first (it must see every event before a later hook refuses one), the shield last (it refuses
    adding hooks). `sys.addaudithook` fails silently when a hook objects, so each refusing hook is checked."""
    sys.addaudithook(notary)
    if guard is not None:
        sys.addaudithook(guard)
    sys.addaudithook(shield)
    checks = [("gc.get_objects", "shield")] + ([("os.system", "guard")] if guard is not None else [])
    for event, name in checks:
        try:
            sys.audit(event, b"")
        except PermissionError:
            continue
        raise SetupError("the %s audit hook is not in force" % name)


def _setup_failed(exc: BaseException, verdict_fd: int, token: bytes) -> None:
    """Say so on stderr and, when the token is known, on the verdict pipe (no program code ran)."""
    sys.stderr.write("sandbox setup failed: %s\n" % (exc,))
    sys.stderr.flush()
    if token and verdict_fd >= 0:
        try:
            os.write(verdict_fd, b"setup-failed " + token + b"\n")
        except OSError:
            pass
    os._exit(_EXIT_SETUP_FAILED)


def main() -> None:
    exit_now, token, verdict_fd = os._exit, b"", -1
    try:
        cpu_s, memory_mb, fsize_mb, nproc, nofile = (int(v) for v in sys.argv[1:6])
        cgroup_procs, use_guard, root, workdir, drop = sys.argv[6:11]
        verdict_fd, stage_files = int(sys.argv[11]), sys.argv[12:]
        token = _read_token(0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        if cgroup_procs != "-":
            _join_cgroup(cgroup_procs)
        stages = {}
        for name in stage_files:
            with open(name, encoding="utf-8") as handle:
                stages[name] = handle.read()
        if root != "-" or drop != "-":
            ctypes, libc = _libc()
            if root != "-":
                _private_root(ctypes, libc, root, workdir, fsize_mb, stages)
            _drop_privileges(ctypes, libc, drop)
            del ctypes, libc
            _forget_ctypes()
        _ignore_interrupts()
        notary, shield = _make_notary(verdict_fd, token), _make_shield()
        guard = _make_guard(os.path.realpath(os.getcwd())) if use_guard == "1" else None
        module = type(sys)("__main__")  # the program's own module: sys.modules['__main__'] is the program
        module.__dict__["__builtins__"] = __builtins__
        go, done, outcome = _thread.allocate_lock(), _thread.allocate_lock(), []
        go.acquire()
        done.acquire()
    except Exception as exc:  # noqa: BLE001 - any setup failure: no program code ran
        _setup_failed(exc, verdict_fd, token)
    try:
        codes = tuple(compile(stages[name], name, "exec", dont_inherit=True) for name in stage_files)
    except BaseException:  # noqa: BLE001 - e.g. a syntax error in the program: its verdict
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        exit_now(_EXIT_EXCEPTION)
    streams = (sys.stdout, sys.stderr)
    try:
        _thread.start_new_thread(_run_stages, (codes, module.__dict__, go, done, outcome, streams))
    except RuntimeError as exc:
        _setup_failed(exc, verdict_fd, token)
    del stages
    sys.modules["__main__"] = module
    sys.argv = [stage_files[0]]
    # After the thread exists: RLIMIT_NPROC also counts threads, and a busy user may be over it.
    _set_limits(cpu_s, memory_mb, fsize_mb, nproc, nofile)
    try:
        _install_hooks(notary, shield, guard)
    except Exception as exc:  # noqa: BLE001
        _setup_failed(exc, verdict_fd, token)
    del notary, shield, guard, token
    # From here on the main thread only waits and exits, through names bound now: it runs none of the
    # program's code (no lookups it could rebind, no allocation that could run its finalizers here).
    wait, int_, type_, code = done.acquire, int, type, _EXIT_EXCEPTION
    go.release()
    wait()
    if outcome:
        first = outcome[0]
        if type_(first) is int_:
            code = first
    exit_now(code)


if __name__ == "__main__":
    main()
