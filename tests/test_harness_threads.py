"""CPU intra-op threads: an explicit choice wins; otherwise the free cores, the processes, the model size."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from lm_eval_infogain.harness import threads


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(threads, "_allowed_cpus", lambda: [0, 1])
    monkeypatch.setattr(threads, "_default_thread_counts", lambda n: {2})
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOCAL_WORLD_SIZE", "WORLD_SIZE",
                 "ACCELERATE_NUM_PROCESSES_PER_NODE"):
        monkeypatch.delenv(name, raising=False)


def test_explicit_settings_win(two_cores, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    choice = threads.choose_threads(10**9, busy_elsewhere=1.0)
    assert (choice.threads, choice.source) == (2, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # torch.set_num_threads(1) by the user
    choice = threads.choose_threads(10**9, busy_elsewhere=0.0)
    assert (choice.threads, choice.source) == (1, "torch.set_num_threads")
    assert threads.choose_threads(10**9, busy_elsewhere=0.0, ours=1).source == "auto"  # our own earlier choice


@pytest.mark.parametrize(
    "busy, params, processes, expected",
    [
        (0.0, 10**9, None, 2),  # idle machine, big model: every core
        (1.0, 10**9, None, 1),  # one core busy elsewhere: leave it alone
        (0.2, 10**9, None, 2),  # a little background noise does not cost a core
        (0.3, 10**9, None, 1),  # a core a quarter busy does: a thread waiting on it stalls every forward
        (2.0, 10**9, None, 1),  # never fewer than one
        (0.0, 1_065_600, None, 2),  # the bundled 1.1M-parameter model: 2
        (0.0, 300_000, None, 1),  # a tiny model gains nothing from a second thread
        (0.0, 10**9, "2", 1),  # two data-parallel processes on this machine share the cores
    ],
)
def test_auto_threads(two_cores, monkeypatch, busy, params, processes, expected):
    if processes:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", processes)
    choice = threads.choose_threads(params, busy_elsewhere=busy)
    assert choice.source == "auto" and choice.threads == expected, choice.reason


def test_a_busy_core_is_seen_and_the_governor_takes_one_thread_less():
    cpus = threads._allowed_cpus()
    if threads._cpu_jiffies(cpus) is None:
        pytest.skip("/proc/stat is not available")
    saved = torch.get_num_threads()
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        probe = threads._LoadProbe(cpus)
        time.sleep(0.5)
        assert probe.busy_elsewhere() >= 0.6  # the burner's core (other load only adds to it)
        torch.set_num_threads(len(cpus))  # torch's own default: not an explicit user choice
        governor = threads.ThreadGovernor(10**9, torch.device("cpu"))
        assert governor.choice.source == "auto"
        assert torch.get_num_threads() == governor.choice.threads <= max(1, len(cpus) - 1)
        assert governor.choice.to_dict()["intra_op"] == governor.choice.threads
    finally:
        burner.kill()
        burner.wait()
        torch.set_num_threads(saved)


def test_governor_leaves_gpu_runs_and_explicit_choices_alone(monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: pytest.fail("must not change threads"))
    assert threads.ThreadGovernor(10**9, torch.device("cuda")).choice is None
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    governor = threads.ThreadGovernor(10**9, torch.device("cpu"))
    assert governor.choice.source == "OMP_NUM_THREADS"
    governor.recheck()
