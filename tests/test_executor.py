"""Hostile programs through the executor: each fails its own problem, the batch completes, others pass."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from net_helpers import Listener

from lm_eval_infogain.scoring import executor
from lm_eval_infogain.scoring.code import pass_at_k
from lm_eval_infogain.scoring.executor import SandboxLimits, run_programs

GOOD = "def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n"
LIMITS = SandboxLimits(timeout_s=3, memory_mb=512)


def _sandbox_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"_sandbox_runner.py" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found




def _hostile(tmp_path: Path, port: int) -> dict[str, str]:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    return {
        "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
        "infinite_loop": "while True:\n    pass\n",
        "huge_alloc": "x = bytearray(50 * 1024 ** 3)\nassert len(x) > 0\n",
        "delete_outside": f"import os, shutil\nos.remove({str(victim)!r})\n",
        "rmtree_outside": f"import shutil\nshutil.rmtree({str(tmp_path)!r})\n",
        "env_secret": "import os\nprint(os.environ.get('INFOGAIN_TEST_SECRET'))\nassert 'INFOGAIN_TEST_SECRET' in os.environ\n",
        "proc_environ": f"data = open('/proc/{os.getpid()}/environ', 'rb').read()\nprint(data)\n"
                        "assert b'INFOGAIN_TEST_SECRET' in data\n",
        "socket": f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'x')\n",
        "subprocess": "import subprocess\nsubprocess.run(['true'])\n",
        "early_exit": "import sys\nsys.exit(0)\nassert False\n",
        "os_exit": "import os\nos._exit(0)\n",
        "big_file": "open('big.bin', 'wb').write(b'0' * (64 * 1024 * 1024))\n",
    }


def test_hostile_programs_fail_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOGAIN_TEST_SECRET", "s3cr3t")
    listener = Listener()
    try:
        hostile = _hostile(tmp_path, listener.port)
        names = list(hostile)
        sources = [s for name in names for s in (hostile[name], GOOD)]
        start = time.monotonic()
        results = run_programs(sources, LIMITS, workers=2)
        elapsed = time.monotonic() - start
    finally:
        listener.close()
    verdicts = {name: results[2 * i] for i, name in enumerate(names)}
    for name, res in verdicts.items():
        assert not res.passed, f"{name} passed: {res}"
    assert all(r.passed for r in results[1::2]), [r.status for r in results[1::2]]
    assert verdicts["infinite_loop"].status == "timeout"
    assert "MemoryError" in verdicts["huge_alloc"].stderr
    assert (tmp_path / "victim.txt").read_text() == "keep me"
    assert "s3cr3t" not in "".join(r.stdout + r.stderr for r in results)
    assert listener.connections == 0
    assert elapsed < 60
    assert _sandbox_processes() == []


def test_scrubbed_environment_and_own_directory(monkeypatch):
    monkeypatch.setenv("INFOGAIN_TEST_SECRET", "s3cr3t")
    (res,) = run_programs(["import os, json\nprint(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd()}))\n"],
                          LIMITS, workers=1)
    assert res.passed
    import json

    out = json.loads(res.stdout)
    assert set(out["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_CTYPE"}
    assert out["env"]["HOME"] == out["cwd"] and "infogain-exec-" in out["cwd"]
    assert not Path(out["cwd"]).exists()  # removed afterwards


def test_os_layers_without_audit_hook(tmp_path):
    """The OS layers alone (no Python guard) still bound forks and cut the network, where available."""
    iso = executor.isolation()
    if not (iso.namespaces or iso.pids_cgroup or iso.separate_uid or os.geteuid() != 0):
        pytest.skip(f"no OS-level process/network isolation on this machine: {iso.notes}")
    raw = SandboxLimits(timeout_s=2, memory_mb=512, audit_hook=False)
    listener = Listener()
    try:
        bomb = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n"
        net = f"import socket\nsocket.create_connection(('127.0.0.1', {listener.port}), timeout=1)\n"
        results = run_programs([bomb, GOOD, net, GOOD], raw, workers=2)
    finally:
        listener.close()
    assert not results[0].passed and results[1].passed and results[3].passed
    if iso.namespaces:
        assert not results[2].passed and listener.connections == 0
    assert _sandbox_processes() == []


def test_isolation_is_described():
    text = executor.isolation().describe()
    assert "rlimits" in text and "audit hook" in text


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [(10, 0, 1, 0.0), (10, 10, 5, 1.0), (10, 3, 1, 0.3), (5, 2, 2, 1 - (3 * 2) / (5 * 4)), (4, 1, 4, 1.0)],
)
def test_pass_at_k_unbiased(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_bad_limits_rejected():
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError, match="workers"):
        run_programs([GOOD], workers=0)
