"""``lm-eval-infogain leaderboard`` and ``lm-eval-infogain regress``.

Exit codes: 0 success, 1 regression found (``regress`` only), 2 bad input (missing files, tasks,
metrics, an output path that cannot be written) — reported in one line before any work, so CI logs
say what to fix. Unreadable ``*.json`` files under the results folders are skipped with a
``note:`` line naming each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .loading import ResultsLayoutError, load_runs
from .metrics import MetricChoiceError, choose_main_metrics, parse_metric_overrides
from .regress import RegressionInputError, compare, format_checks, load_baseline, load_current, write_baseline
from .table import build_leaderboard

__all__ = ["leaderboard_main", "regress_main", "write_leaderboard", "OutputPathError"]

OUTPUT_FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.html", "entropy_vs_accuracy.png", "speed_vs_accuracy.png")
#: Written only when some run has both --log_samples files and per-sample statistics.
CORRELATION_FILE = "entropy_correlation.csv"


class OutputPathError(ValueError):
    """The output folder cannot be created or written (an existing file, no permission)."""


def _note_skipped(path: Path, reason: str) -> None:
    print(f"note: skipped unreadable results file {path}: {reason}", file=sys.stderr)


def _check_output_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"-o {out} is a file; the leaderboard needs a folder to write its files into")
    blocking = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise OutputPathError(f"cannot create -o {out}: {blocking} is a file, not a folder")


def write_leaderboard(
    paths: list[str | Path],
    out_dir: str | Path,
    *,
    baseline_sampler: str | None = "confidence",
    metric_overrides: list[str] | None = None,
    title: str = "Leaderboard",
    paired: bool = True,
) -> dict[str, Path]:
    """Build every output file; returns ``{file name: path}``. Raises on bad input."""
    from . import correlation
    from .plots import entropy_plot, speed_plot
    from .render import to_csv, to_html, to_markdown

    out = Path(out_dir)
    _check_output_dir(out)
    runs = load_runs(paths, on_skip=_note_skipped)
    metrics = choose_main_metrics(runs, parse_metric_overrides(metric_overrides or []))
    lb = build_leaderboard(runs, metrics, baseline_sampler, paired=paired)
    lb.roots = [Path(p) for p in paths]
    images = {"entropy_vs_accuracy.png": entropy_plot(lb), "speed_vs_accuracy.png": speed_plot(lb)}
    corr = correlation.correlations(runs, metrics)
    files = {
        "leaderboard.md": to_markdown(lb, title, [c for c in corr if c.model == "*"]),
        "leaderboard.csv": to_csv(lb),
        "leaderboard.html": to_html(lb, images, title),
    }
    if corr:
        files[CORRELATION_FILE] = correlation.to_csv(corr)
    written: dict[str, Path] = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
            written[name] = out / name
        for name, data in images.items():
            (out / name).write_bytes(data)
            written[name] = out / name
    except OSError as err:
        raise OutputPathError(f"cannot write into -o {out}: {err.strerror or err} ({err.filename or out})") from None
    for warning in lb.warnings:
        print(f"note: {warning}", file=sys.stderr)
    return written


def leaderboard_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lm-eval-infogain leaderboard",
        description="Tables (Markdown, CSV, sortable HTML) and plots from lm-eval output folders "
        "(searched recursively for results JSON files).",
    )
    parser.add_argument("results", nargs="+", help="lm-eval --output_path folders or results_*.json files")
    parser.add_argument("-o", "--output-dir", required=True, help="where leaderboard.{md,csv,html} and the PNGs go")
    parser.add_argument("--baseline-sampler", default="confidence",
                        help="deltas are against this sampler with otherwise equal settings ('none' disables)")
    parser.add_argument("--metric", action="append", default=[], metavar="TASK=METRIC[,FILTER]",
                        help="main metric of a task (default: its first metric; filter flexible-extract > "
                        "strict-match > none > first)")
    parser.add_argument("--paired", action=argparse.BooleanOptionalAction, default=True,
                        help="paired Δ with a 95%% bootstrap interval and win/tie/loss against the baseline row, from "
                        "the runs' --log_samples files (default: on; rows without them show '–')")
    parser.add_argument("--title", default="Leaderboard")
    args = parser.parse_args(argv)
    baseline = None if args.baseline_sampler.lower() in ("", "none") else args.baseline_sampler
    try:
        written = write_leaderboard(args.results, args.output_dir, baseline_sampler=baseline,
                                    metric_overrides=args.metric, title=args.title, paired=args.paired)
    except (ResultsLayoutError, MetricChoiceError, OutputPathError) as err:
        print(f"lm-eval-infogain leaderboard: {err}", file=sys.stderr)
        return 2
    print(written["leaderboard.md"].read_text(encoding="utf-8"))
    for path in written.values():
        print(f"wrote {path}")
    return 0


def regress_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lm-eval-infogain regress",
        description="Fail (exit 1) when a metric of the current lm-eval results falls below the baseline by more "
        "than max(k * sqrt(se_base^2 + se_cur^2), floor). Exit 2 on missing files, tasks or metrics.",
    )
    parser.add_argument("--baseline", required=True,
                        help="baseline JSON (written by --write-baseline) or a raw lm-eval results_*.json")
    parser.add_argument("--current", required=True, nargs="+", help="lm-eval --output_path folder(s) or results files")
    parser.add_argument("--tolerance-sigma", type=float, default=2.0, help="k: allowed drop in combined stderrs")
    parser.add_argument("--min-tolerance", type=float, default=0.0, help="absolute floor of the allowed drop")
    parser.add_argument("--write-baseline", action="store_true",
                        help="write --baseline from --current instead of checking")
    args = parser.parse_args(argv)
    try:
        current = load_current(args.current, on_skip=_note_skipped)
        if args.write_baseline:
            write_baseline(args.baseline, current)
            print(f"wrote baseline {args.baseline} ({len(current)} run(s): {'; '.join(r.label for r in current)})")
            return 0
        baseline = load_baseline(args.baseline)
        checks = compare(baseline, current, sigma=args.tolerance_sigma, min_tolerance=args.min_tolerance)
    except RegressionInputError as err:
        print(f"lm-eval-infogain regress: {err}", file=sys.stderr)
        return 2
    print(format_checks(checks))
    failed = [c for c in checks if c.failed]
    if failed:
        print(f"\nREGRESSION: {len(failed)} of {len(checks)} metric(s) dropped beyond tolerance "
              f"(k={args.tolerance_sigma}, floor={args.min_tolerance}):")
        print(format_checks(failed))
        return 1
    print(f"\nok: {len(checks)} metric(s) within tolerance (k={args.tolerance_sigma}, floor={args.min_tolerance})")
    return 0
