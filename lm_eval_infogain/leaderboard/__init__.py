"""Leaderboards and regression checks from lm-eval output folders.

``loading`` reads results files of any lm-eval layout, ``metrics`` picks one number per task,
``table`` folds runs into rows, ``render`` writes Markdown / CSV / HTML, ``plots`` the PNG views,
``regress`` compares a run with a stored baseline, and ``cli`` wires them to ``lm-eval-infogain``.
Nothing here imports torch.
"""

from .loading import RunResult, load_run, load_runs
from .metrics import MainMetric, choose_main_metrics
from .table import Leaderboard, build_leaderboard

__all__ = ["RunResult", "load_run", "load_runs", "MainMetric", "choose_main_metrics", "Leaderboard", "build_leaderboard"]
