"""The sandbox's two promises, attacked: the kernel keeps the host's files and network out of reach (even with
the Python guard switched off), and no exit-code trick or tampering with the runner turns a failing test
into a pass. Every attack program is written so that it *would* pass if the attack worked."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from net_helpers import Listener

from lm_eval_infogain.scoring import executor
from lm_eval_infogain.scoring.code import execute_humaneval, execute_mbpp
from lm_eval_infogain.scoring.executor import Isolation, Program, SandboxLimits, run_program, run_programs

CHECKOUT = Path(__file__).resolve().parents[1]
LIMITS = SandboxLimits(timeout_s=10, memory_mb=512)
NO_GUARD = SandboxLimits(timeout_s=10, memory_mb=512, audit_hook=False)
SOLUTION = "def f(x):\n    return x + 1\n"
WRONG = "def f(x):\n    return 0\n"
TESTS = "assert f(1) == 2\n"


def _need_kernel_level() -> None:
    iso = executor.isolation()
    if iso.level != "kernel":
        pytest.skip(f"kernel isolation unavailable on this machine ({iso.describe()}; {list(iso.notes)})")


# --- the verdict: exit-code cheats and forged reports ------------------------------------------------------

CHEATS = {
    # The program: the test fails, then an atexit handler re-imports posix and exits 0.
    "atexit_posix_exit": "import atexit\n"
                         "def bye():\n"
                         "    import importlib, sys\n"
                         "    sys.modules.pop('posix', None)\n"
                         "    importlib.import_module('posix')._exit(0)\n"
                         "atexit.register(bye)\n",
    "sys_exit": "import sys\nsys.exit(0)\n",
    "os_exit": "import os\nos._exit(0)\n",
    "os_exit_in_thread_later": "import os, threading, time\n"
                               "threading.Thread(target=lambda: (time.sleep(0.3), os._exit(0))).start()\n",
    "signal_handler": "import os, signal\n"
                      "signal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
                      "signal.alarm(1)\n",
    "del_exit": "import os\n"
                "class Bye:\n"
                "    def __del__(self):\n"
                "        os._exit(0)\n"
                "keep = [Bye()]\n",
    "del_exit_on_collect": "import gc, os\n"
                           "class Bye:\n"
                           "    def __del__(self):\n"
                           "        os._exit(0)\n"
                           "b = Bye(); b.me = b; del b\n"
                           "gc.set_threshold(1)\n",
    "write_pass_to_every_fd": "import os\n"
                              "for fd in range(3, 4096):\n"
                              "    try:\n"
                              "        os.write(fd, b'pass 00000000000000000000000000000000\\n')\n"
                              "    except OSError:\n"
                              "        pass\n",
    "raise_the_pass_event": "import sys\n"
                            "sys.audit('lm_eval_infogain.sandbox.arm')\n"
                            "sys.audit('lm_eval_infogain.sandbox.pass')\n",
    "rerun_the_stage_runner": "import sys, _thread\n"
                              "stage_frame = sys._getframe(1)\n"
                              "run = stage_frame.f_globals['_run_stages']\n"
                              "locks = [_thread.allocate_lock() for _ in range(2)]\n"
                              "locks[1].acquire()\n"
                              "run((compile('pass', 'x', 'exec'),), {}, locks[0], locks[1], [],\n"
                              "    (sys.stdout, sys.stderr))\n",
    "interrupt_main": "import _thread, time\n_thread.interrupt_main()\ntime.sleep(0.2)\n",
}


@pytest.mark.parametrize("limits", [LIMITS, NO_GUARD], ids=["guard", "no_guard"])
def test_exit_code_cheats_and_forged_reports_fail(limits):
    """Each cheat precedes a failing test; its honest twin (same cheat, correct solution) passes, so a
    failure here is the verdict at work, not the cheat crashing."""
    names = list(CHEATS)
    cheating = [Program(CHEATS[name] + WRONG, TESTS) for name in names]
    honest = Program(SOLUTION, TESTS)
    results = run_programs(cheating + [honest], limits, workers=2)
    verdicts = dict(zip(names, results))
    for name, res in verdicts.items():
        assert not res.passed and res.status == "failed", (name, res)
    assert results[-1].passed, results[-1]
    assert verdicts["os_exit"].returncode == 0 and "without the harness's pass report" in verdicts["os_exit"].stderr
    assert "AssertionError" in verdicts["atexit_posix_exit"].stderr
    assert verdicts["sys_exit"].returncode == 3


def test_cheats_with_correct_code_still_pass_when_they_do_not_skip_the_tests():
    """The verdict is about the tests returning normally, not about the program's manners: an atexit
    hook, a finalizer or a late thread that exits 0 does not spoil a correct solution."""
    kept = ("atexit_posix_exit", "del_exit", "os_exit_in_thread_later", "interrupt_main")
    results = run_programs([Program(CHEATS[name] + SOLUTION, TESTS) for name in kept], LIMITS, workers=2)
    assert [r.status for r in results] == ["passed"] * len(kept), [(r.status, r.stderr[-200:]) for r in results]


def test_tests_run_as_their_own_stage():
    """The model's code cannot swallow the tests (here: an unterminated string that the test stage would
    close) or replace `check`: the test stage is compiled on its own and defines `check` last."""
    swallow = Program(SOLUTION + "def check(candidate):\n    pass\nx = '''\n",
                      "def check(candidate):\n    assert candidate(1) == 3\n'''\ncheck(f)\n")
    override = Program(WRONG + "def check(candidate):\n    pass\n",
                       "def check(candidate):\n    assert candidate(1) == 2\ncheck(f)\n")
    results = run_programs([swallow, override, Program(SOLUTION, "def check(c):\n    assert c(1) == 2\ncheck(f)\n")],
                           LIMITS, workers=2)
    assert [r.passed for r in results] == [False, False, True]
    assert "SyntaxError" in results[0].stderr
    assert Program("a = 1", "assert a == 1\n").source == "a = 1\n\nassert a == 1\n"


def test_program_is_its_own_main_module():
    src = "import sys\nassert sys.modules['__main__'].__dict__ is globals() and __name__ == '__main__'\n"
    assert run_program(src, LIMITS).passed


# --- tampering with the runner, and the host's files -------------------------------------------------------

def _rewrite_runner_globals_then_write(host_file: Path) -> str:
    """The issue's attack: turn the guard's settings off through every namespace the program can reach,
    then write outside the temp dir and run `id`."""
    return (
        "import sys\n"
        "frame = sys._getframe()\n"
        "spaces = [vars(sys.modules['__main__'])]\n"
        "while frame is not None:\n"
        "    spaces.append(frame.f_globals)\n"
        "    frame = frame.f_back\n"
        "for ns in spaces:\n"
        "    ns.update(_WRITE_FLAGS=0, _BLOCKED_PREFIXES=('nothing',), _BLOCKED_EVENTS=frozenset(),\n"
        "              _BLOCKED_IMPORTS=frozenset(), _PATH_EVENTS=frozenset(), _SYSTEM_DIRS=(), _DEVICES=())\n"
        "wrote = ran_id = False\n"
        "try:\n"
        f"    open({str(host_file)!r}, 'w').write('pwned')\n"
        "    wrote = True\n"
        "except OSError as exc:\n"
        "    print('write refused:', exc)\n"
        "try:\n"
        "    import subprocess\n"
        "    out = subprocess.run(['id'], capture_output=True, text=True).stdout\n"
        "    print('id says:', out)\n"
        "    ran_id = 'uid=0(' in out\n"
        "except Exception as exc:\n"
        "    print('id refused:', exc)\n"
    )


@pytest.mark.parametrize("limits", [LIMITS, NO_GUARD], ids=["guard", "no_guard"])
def test_runner_globals_rewrite_neither_passes_nor_writes(tmp_path, limits):
    if not limits.audit_hook:
        _need_kernel_level()
    shared = tmp_path / "world-writable"
    shared.mkdir()
    shared.chmod(0o777)  # file permissions alone would let any uid write here
    host_file = shared / "pwned.txt"
    res = run_program(Program(_rewrite_runner_globals_then_write(host_file), "assert wrote or ran_id\n"), limits)
    assert not res.passed, res
    assert not host_file.exists()
    assert "uid=0(" not in res.stdout
    if limits.audit_hook:
        assert "write refused: sandbox" in res.stdout and "id refused: sandbox" in res.stdout
    elif executor.isolation().separate_uid:  # `id` ran, as the slot's unprivileged uid: harmless
        uid = int(re.search(r"id says: uid=(\d+)", res.stdout).group(1))
        assert uid in executor._slot_uids.values() and uid >= executor.SANDBOX_UID_BASE


def _write_attempts(targets: dict[str, Path], victim: Path) -> str:
    """Pure-Python (no ctypes) ways to change files: each success is recorded in `changed`."""
    lines = ["import os, pathlib, shutil", "changed = []",
             "def attempt(what, action):",
             "    try:",
             "        action()",
             "        changed.append(what)",
             "    except Exception as exc:",
             "        print(what, 'refused:', type(exc).__name__)"]
    for name, target in targets.items():
        t = str(target)
        lines += [f"attempt('open {name}', lambda: open({t!r}, 'w').write('x'))",
                  f"attempt('os.open {name}', lambda: os.write(os.open({t!r}, os.O_WRONLY | os.O_CREAT), b'x'))",
                  f"attempt('pathlib {name}', lambda: pathlib.Path({t!r}).write_text('x'))",
                  f"attempt('copy {name}', lambda: shutil.copy('program.py', {t!r}))"]
    v, shell_target = str(victim), str(next(iter(targets.values())))
    lines += [f"attempt('append', lambda: open({v!r}, 'a').write('x'))",
              f"attempt('truncate', lambda: os.truncate({v!r}, 0))",
              f"attempt('remove', lambda: os.remove({v!r}))",
              f"attempt('rename', lambda: os.rename({v!r}, {v + '.moved'!r}))",
              f"attempt('chmod', lambda: os.chmod({v!r}, 0))",
              "attempt('shell', lambda: __import__('subprocess').run(",
              f"    ['sh', '-c', 'echo x > {shell_target}'], check=True))",
              "print('changed:', changed)"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("limits", [LIMITS, NO_GUARD], ids=["guard", "no_guard"])
def test_ctypes_free_writes_outside_the_temp_dir_fail_and_leave_the_host_untouched(tmp_path, limits):
    """Host paths: a world-writable folder, the host's /tmp, the checkout, an existing 0666 file. Without
    the guard, writes to "/tmp" succeed inside the program's private /tmp only: the host's stays clean."""
    if not limits.audit_hook:
        _need_kernel_level()
    shared = tmp_path / "world-writable"
    shared.mkdir()
    shared.chmod(0o777)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    victim.chmod(0o666)
    tag = uuid.uuid4().hex
    targets = {"shared": shared / "new.txt", "checkout": CHECKOUT / f".infogain-sandbox-test-{tag}.txt",
               "tmp": Path("/tmp") / f"infogain-sandbox-test-{tag}.txt"}
    tests = "assert [c for c in changed if not c.endswith(' tmp')]\n"
    try:
        res = run_program(Program(_write_attempts(targets, victim), tests), limits)
        leaked = [str(t) for t in targets.values() if t.exists()]
    finally:
        for target in (targets["checkout"], targets["tmp"]):
            target.unlink(missing_ok=True)
    assert not res.passed, res
    assert leaked == []
    assert victim.read_text() == "keep me" and oct(victim.stat().st_mode & 0o777) == "0o666"
    assert not Path(str(victim) + ".moved").exists()
    changed = res.stdout.splitlines()[-1]
    assert changed == "changed: []" if limits.audit_hook else changed.startswith("changed: ["), res.stdout
    assert all(name.endswith(" tmp") for name in json.loads(changed[len("changed: "):].replace("'", '"')))


def test_private_root_hides_the_host(tmp_path):
    """Under kernel isolation the program sees a minimal read-only root: no /proc, no checkout, no ctypes,
    no capabilities, and only its own temp dir and private /tmp writable."""
    _need_kernel_level()
    (tmp_path / "secret.txt").write_text("host secret")
    src = (
        "import os\n"
        "seen = {'root': sorted(os.listdir('/')), 'proc': os.path.exists('/proc/self'),\n"
        f"        'checkout': os.path.exists({str(CHECKOUT)!r}), 'secret': os.path.exists({str(tmp_path)!r}),\n"
        "        'cwd': os.getcwd()}\n"
        "def refused(action):\n"
        "    try:\n"
        "        action()\n"
        "    except Exception as exc:\n"
        "        return type(exc).__name__\n"
        "    return 'allowed'\n"
        "import importlib\n"
        "seen['ctypes'] = refused(lambda: importlib.import_module('_ctypes'))\n"
        "seen['chroot'] = refused(lambda: os.chroot('.'))\n"
        "seen['setuid'] = refused(lambda: os.setuid(0))\n"
        "seen['etc'] = refused(lambda: open('/etc/infogain-test', 'w'))\n"
        "open('here.txt', 'w').write('mine')\n"
        "open('/tmp/scratch.txt', 'w').write('mine')\n"
        "import json\n"
        "print(json.dumps(seen))\n"
    )
    res = run_program(src, NO_GUARD)
    assert res.passed, res
    seen = json.loads(res.stdout)
    assert not seen["proc"] and not seen["checkout"] and not seen["secret"]
    assert set(seen["root"]) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "tmp", "usr",
                                 *Path(sys.prefix).parts[1:2], *Path(sys.base_prefix).parts[1:2]}
    assert seen["ctypes"] != "allowed" and seen["chroot"] == "PermissionError"
    assert seen["setuid"] == "PermissionError" and seen["etc"] == "OSError"
    assert seen["cwd"].startswith("/tmp/infogain-exec-") and not Path(seen["cwd"]).exists()


def test_user_namespace_setup_holds_too(tmp_path):
    """The setup used when the evaluator is not root (a user namespace, every capability dropped) also
    keeps the host read-only and the verdict honest; forced here to test it on any machine with `unshare`."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("`unshare` not installed")
    iso = Isolation(namespaces=True, private_root=True, user_namespace=True, unshare_path=unshare)
    if executor._probe(iso) is not None:
        pytest.skip(f"user namespaces unavailable here: {executor._probe(iso)}")
    shared = tmp_path / "world-writable"
    shared.mkdir()
    shared.chmod(0o777)
    attack = Program(_rewrite_runner_globals_then_write(shared / "pwned.txt")
                     + "import os\ntry:\n    os.chroot('.')\n    wrote = True\nexcept OSError:\n    pass\n",
                     "assert wrote\n")
    programs = [attack, Program(CHEATS["atexit_posix_exit"] + WRONG, TESTS), Program(SOLUTION, TESTS)]
    results = [executor._execute(p, NO_GUARD, iso, slot) for slot, p in enumerate(programs)]
    assert [r.status for r in results] == ["failed", "failed", "passed"], results
    assert not (shared / "pwned.txt").exists()
    assert {r.isolation for r in results} == {"kernel"}


# --- network and processes ----------------------------------------------------------------------------------



def test_network_unreachable_without_the_guard():
    iso = executor.isolation()
    if not iso.namespaces:
        pytest.skip(f"no network namespace on this machine: {iso.describe()}")
    listener = Listener()
    try:
        src = ("import socket\n"
               "print([name for _, name in socket.if_nameindex()])\n"
               "reached = False\n"
               "for host in ('127.0.0.1', '10.0.2.2', '1.1.1.1'):\n"
               "    try:\n"
               f"        socket.create_connection((host, {listener.port}), timeout=1)\n"
               "        reached = True\n"
               "    except OSError as exc:\n"
               "        print(host, exc)\n")
        res = run_program(Program(src, "assert reached\n"), NO_GUARD)
    finally:
        listener.close()
    assert not res.passed and listener.connections == 0
    assert res.stdout.splitlines()[0] == "['lo']"


def test_process_creation_refused_by_the_guard_and_harmless_without_it():
    src = ("import subprocess\n"
           "out = subprocess.run(['id', '-u'], capture_output=True, text=True).stdout.strip()\n"
           "print('uid', out)\n")
    guarded, bare = run_program(src, LIMITS), run_program(src, NO_GUARD)
    assert not guarded.passed and "sandbox: import _posixsubprocess is not allowed" in guarded.stderr
    iso = executor.isolation()
    if iso.level == "kernel" and os.geteuid() == 0 and iso.separate_uid:
        assert bare.passed and bare.stdout.startswith("uid 6") and bare.stdout.strip() != "uid 0"


# --- isolation recorded and reported ----------------------------------------------------------------------

def test_isolation_level_recorded_in_results_and_logged_samples():
    level = executor.isolation().level
    res = run_program(Program(SOLUTION, TESTS), LIMITS)
    assert res.isolation == level and res.as_dict()["isolation"] == level
    doc = {"prompt": "def f(x):\n", "test": "def check(candidate):\n    assert candidate(1) == 2\n",
           "entry_point": "f"}
    (sample,), = execute_humaneval([["    return x + 1\n"]], [doc])
    assert sample["passed"] and sample["isolation"] == level
    assert sample["program"] == "def f(x):\n    return x + 1\n\n\n" + doc["test"] + "\n\ncheck(f)\n"
    mbpp_doc = {"test_list": ["assert f(1) == 2"], "test_setup_code": ""}
    (sample,), = execute_mbpp([[WRONG]], [mbpp_doc])
    assert not sample["passed"] and sample["isolation"] == level


def test_isolation_report_is_none_before_the_first_program():
    script = ("import json\n"
              "from lm_eval_infogain.scoring import executor\n"
              "before = executor.isolation_report()\n"
              "executor.run_program('assert True')\n"
              "print(json.dumps({'before': before, 'after': executor.isolation_report()}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["before"] is None
    after = report["after"]
    iso = executor.isolation()
    assert after["level"] == iso.level and after["programs_run"] == 1
    assert set(after) == {"level", "description", "private_root", "network_isolated", "pid_namespace",
                          "unprivileged", "separate_uid", "user_namespace", "pids_cgroup", "notes",
                          "programs_run"}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_missing_unshare_falls_back_loudly(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "unshare" else real_which(name, *a, **k))
    # Our own handler on the executor's logger: other code may route the package's logs elsewhere.
    logger, records = logging.getLogger("lm_eval_infogain.scoring.executor"), _Records()
    logger.addHandler(records)
    monkeypatch.setattr(logger, "level", logging.WARNING)
    executor.isolation.cache_clear()
    try:
        iso = executor.isolation()
        assert iso.level != "kernel" and not iso.namespaces and not iso.private_root
        warned = [m for m in records.messages if "kernel isolation is not available" in m and "unshare" in m]
        assert warned, records.messages
        results = run_programs([Program(SOLUTION, TESTS), Program(CHEATS["atexit_posix_exit"] + WRONG, TESTS)],
                               LIMITS, workers=2)
        assert [r.status for r in results] == ["passed", "failed"]
        assert {r.isolation for r in results} == {iso.level}
        assert "unshare" in " ".join(executor.isolation_report()["notes"])
    finally:
        logger.removeHandler(records)
        executor.isolation.cache_clear()


def test_setup_failure_is_an_error_never_a_pass(monkeypatch):
    iso = executor.isolation()
    if not iso.separate_uid:
        pytest.skip("no uid drop on this machine to break")
    monkeypatch.setattr(executor, "_slot_uid", lambda slot: 2 ** 40)  # no such uid: the drop must fail
    res = executor._execute(Program("assert True"), LIMITS, iso, 1)
    assert res.status == "error" and not res.passed and "sandbox setup failed" in res.stderr


def test_isolation_rejects_contradictions():
    with pytest.raises(ValueError, match="private_root"):
        Isolation(private_root=True)
    with pytest.raises(ValueError, match="separate_uid"):
        Isolation(namespaces=True, separate_uid=True, user_namespace=True)


def test_fork_bomb_bounded_without_the_guard():
    """RLIMIT_NPROC (per slot uid) or the pids cgroup (where processes would be root's) bounds forks."""
    iso = executor.isolation()
    if not (iso.separate_uid or iso.pids_cgroup or os.geteuid() != 0):
        pytest.skip(f"no kernel bound on processes here: {iso.describe()}")
    src = ("import os, time\n"
           "forks = 0\n"
           "for _ in range(200):\n"
           "    try:\n"
           "        pid = os.fork()\n"
           "    except OSError:\n"
           "        break\n"
           "    if pid == 0:\n"
           "        time.sleep(60)\n"
           "        os._exit(0)\n"
           "    forks += 1\n"
           "print(forks)\n")
    res = run_program(src, NO_GUARD)
    assert res.passed, res
    assert int(res.stdout) < NO_GUARD.max_processes
    if iso.separate_uid:  # the uids are this process's own: nothing else runs under them
        assert _processes_of(set(executor._slot_uids.values())) == []  # the children died with the program


def _processes_of(uids: set[int]) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid in uids:
                found.append(entry.name)
        except OSError:
            continue
    return found
