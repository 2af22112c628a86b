"""Leaderboard from lm-eval output folders: layouts, metric choice, numbers, files, browser check.

The fixtures under tests/data/leaderboard/runs were written by lm-eval's own evaluator and result
writer (tests/data/leaderboard/make_fixtures.py); the expected numbers below are recomputed straight
from those JSON files, not from the leaderboard's code.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from lm_eval_infogain.leaderboard import choose_main_metrics, load_runs
from lm_eval_infogain.leaderboard.cli import OUTPUT_FILES, leaderboard_main
from lm_eval_infogain.leaderboard.loading import ResultsLayoutError, discover_result_files, load_run, parse_metric_key
from lm_eval_infogain.leaderboard.metrics import MetricChoiceError, parse_metric_overrides

RUNS = Path(__file__).resolve().parent / "data" / "leaderboard" / "runs"


# ---------------------------------------------------------------- helpers shared with other tests
def parse_markdown_table(text: str) -> list[dict[str, str]]:
    """Rows of the (single) pipe table in ``text`` as header → cell text."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells)))
    return rows


def expected_cell(files: list[Path], task: str, key: str) -> str:
    """The Markdown cell for ``task`` computed directly from results JSON files (one per seed)."""
    values, errs = [], []
    for path in files:
        table = json.loads(path.read_text())["results"][task]
        metric, _, filt = key.partition(",")
        values.append(table[key] * 100)
        err = table[f"{metric}_stderr,{filt}"]
        errs.append(None if err == "N/A" else err * 100)
    if len(values) == 1:
        return f"{values[0]:.1f}" + ("" if errs[0] is None else f" ± {errs[0]:.1f}")
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f} (n={len(values)})"


def png_info(path: Path) -> dict:
    """Width, height and text chunks of a PNG, checking its signature and chunk CRCs."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, info, texts = 8, {}, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        if kind == b"IHDR":
            info["width"], info["height"] = struct.unpack(">II", body[:8])
        if kind == b"tEXt":
            k, _, v = body.partition(b"\0")
            texts[k.decode()] = v.decode("latin-1")
        pos += 12 + length
    info["text"] = texts
    return info


def _results(subdir: str) -> list[Path]:
    return sorted((RUNS / subdir).rglob("results*.json")) + sorted((RUNS / subdir).rglob("dream_*.json"))


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("board")
    assert leaderboard_main([str(RUNS), "-o", str(out)]) == 0
    return out


# ---------------------------------------------------------------- loading
def test_discovers_every_layout_recursively():
    files = discover_result_files([RUNS])
    names = {p.name for p in files}
    assert len(files) == 11
    assert "results.json" in names  # lm-eval 0.4.0/0.4.1: OUT/results.json
    assert any(n.startswith("dream_") for n in names)  # --output_path given as a .json file
    assert not any("samples" in n for n in names)  # per-sample files are not results


def test_run_fields_from_infogain_block_and_from_model_args():
    run = load_run(_results("llada_info_gain_k1_seed1")[0])
    assert (run.model, run.sampler, run.seed) == ("GSAI-ML/LLaDA-8B-Instruct", "info_gain", 1)
    assert run.decoding["candidate_number"] == 8 and run.stats["fx_gsm"].samples == 20
    raw = json.loads(run.path.read_text())["config"]["infogain"]["per_task"]["fx_gsm"]
    assert run.stats["fx_gsm"].cumulative_entropy_mean == pytest.approx(raw["cumulative_entropy_mean"])
    other = load_run(_results("qwen_ar")[0])
    assert (other.model, other.sampler, other.infogain, other.stats) == ("Qwen/Qwen2.5-0.5B-Instruct", None, None, {})
    legacy = load_run(RUNS / "legacy_v040" / "results.json")
    assert legacy.model == "EleutherAI/pythia-160m"
    assert legacy.tasks["fx_sudoku"].metrics[("exact_match", "none")].stderr is None  # "N/A"


def test_stats_rebuilt_from_per_sample_file_when_results_lack_them(tmp_path):
    src = _results("llada_confidence_k1")[0]
    dst = tmp_path / "m" / src.name
    dst.parent.mkdir()
    data = json.loads(src.read_text())
    del data["config"]["infogain"]["per_task"]
    dst.write_text(json.dumps(data))
    samples = next(src.parent.glob("infogain_samples_*.jsonl"))
    shutil.copy(samples, dst.parent / samples.name)
    run = load_run(dst)
    lines = [json.loads(x) for x in samples.read_text().splitlines() if x.strip()]
    gsm = [x["cumulative_entropy"] for x in lines if x["task"] == "fx_gsm"]
    assert run.stats["fx_gsm"].cumulative_entropy_mean == pytest.approx(sum(gsm) / len(gsm))


def test_old_keys_without_filter_and_groups(tmp_path):
    data = {
        "results": {
            "grp": {"acc,none": 0.5, "alias": "grp"},
            "sub_a": {"acc": 0.25, "acc_stderr": 0.05, "alias": " - sub_a"},
            "sub_b": {"acc,none": 0.75, "acc_stderr,none": "N/A", "alias": " - sub_b"},
        },
        "group_subtasks": {"grp": ["sub_a", "sub_b"], "sub_a": [], "sub_b": []},
        "versions": {},
        "config": {"model": "hf", "model_args": "pretrained=x/y,dtype=float16"},
    }
    (tmp_path / "results.json").write_text(json.dumps(data))
    run = load_run(tmp_path / "results.json")
    assert set(run.tasks) == {"sub_a", "sub_b"}  # group rows are aggregates, not leaves
    assert run.tasks["sub_a"].metrics[("acc", "none")].stderr == 0.05
    assert parse_metric_key("pass@1_stderr,create_test") == ("pass@1", "create_test", True)


def test_bad_paths_are_named_errors(tmp_path, capsys):
    with pytest.raises(ResultsLayoutError, match="does not exist"):
        discover_result_files([tmp_path / "nope"])
    (tmp_path / "x.json").write_text('{"tasks": {}}')
    with pytest.raises(ResultsLayoutError, match="no lm-eval results"):
        discover_result_files([tmp_path])
    assert leaderboard_main([str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- metric choice
def test_main_metric_prefers_flexible_extract_and_can_be_overridden():
    runs = load_runs([RUNS])
    chosen = choose_main_metrics(runs)
    assert (chosen["fx_gsm"].metric, chosen["fx_gsm"].filter, chosen["fx_gsm"].scale) == ("exact_match", "flexible-extract", 100.0)
    assert (chosen["fx_sudoku"].metric, chosen["fx_sudoku"].filter) == ("exact_match", "none")
    strict = choose_main_metrics(runs, parse_metric_overrides(["fx_gsm=exact_match,strict-match"]))
    assert strict["fx_gsm"].filter == "strict-match"
    with pytest.raises(MetricChoiceError, match="has no metric"):
        choose_main_metrics(runs, parse_metric_overrides(["fx_gsm=bleu"]))
    with pytest.raises(MetricChoiceError, match="TASK=METRIC"):
        parse_metric_overrides(["fx_gsm"])


# ---------------------------------------------------------------- outputs
def test_every_output_is_written(board):
    for name in OUTPUT_FILES:
        assert (board / name).stat().st_size > 500, name


def test_markdown_numbers_recomputed_from_results_json(board):
    rows = parse_markdown_table((board / "leaderboard.md").read_text())
    by = {(r["Model"], r["Sampler"], r["K"]): r for r in rows}
    assert len(rows) == 8
    gsm, sud = "exact_match,flexible-extract", "exact_match,none"
    llada = "GSAI-ML/LLaDA-8B-Instruct"
    conf1, ig1 = by[(llada, "confidence", "1")], by[(llada, "info_gain", "1")]
    seeds = [f for s in (0, 1, 2) for f in _results(f"llada_info_gain_k1_seed{s}")]
    assert conf1["fx_gsm"] == expected_cell(_results("llada_confidence_k1"), "fx_gsm", gsm)
    assert conf1["fx_sudoku"] == expected_cell(_results("llada_confidence_k1"), "fx_sudoku", sud)
    assert ig1["fx_gsm"] == expected_cell(seeds, "fx_gsm", gsm)
    assert ig1["fx_sudoku"] == expected_cell(seeds, "fx_sudoku", sud)
    # K=2 confidence was run one task per folder; both land in one row.
    conf2 = by[(llada, "confidence", "2")]
    assert conf2["fx_gsm"] == expected_cell(_results("llada_confidence_k2/gsm"), "fx_gsm", gsm)
    assert conf2["fx_sudoku"] == expected_cell(_results("llada_confidence_k2/sudoku"), "fx_sudoku", sud)

    # Mean over tasks and the delta against confidence, from the JSON values.
    def val(files, task, key):
        return statistics.fmean(json.loads(f.read_text())["results"][task][key] * 100 for f in files)

    conf_mean = (val(_results("llada_confidence_k1"), "fx_gsm", gsm) + val(_results("llada_confidence_k1"), "fx_sudoku", sud)) / 2
    ig_mean = (val(seeds, "fx_gsm", gsm) + val(seeds, "fx_sudoku", sud)) / 2
    assert conf1["Mean"].split(" ")[0] == f"{conf_mean:.1f}"
    assert ig1["Mean"].split(" ")[0] == f"{ig_mean:.1f}" and ig1["Mean"].endswith("(n=3)")
    assert ig1["Δ vs confidence"] == f"{ig_mean - conf_mean:+.1f}"
    # Statistics: H̃ of a row = sample-weighted mean of per-task means, averaged over seeds.
    infos = [json.loads(f.read_text())["config"]["infogain"] for f in seeds]
    h = statistics.fmean(i["totals"]["cumulative_entropy_mean"] for i in infos)
    assert ig1["H̃"] == f"{h:.1f}"
    tps = sum(i["totals"]["generated_tokens"] for i in infos) / sum(i["totals"]["wall_time_s"] for i in infos)
    assert ig1["Tok/s"] == f"{tps:.1f}"
    assert ig1["Calls"] == f"{infos[0]['totals']['model_calls_mean']:.1f}"


def test_missing_tasks_other_models_and_na_stderr(board):
    rows = parse_markdown_table((board / "leaderboard.md").read_text())
    by = {(r["Model"], r["Sampler"], r["K"]): r for r in rows}
    rnd = by[("GSAI-ML/LLaDA-8B-Instruct", "random", "1")]
    assert rnd["fx_gsm"] == "–" and rnd["Mean"].endswith("†")
    # random only shares fx_sudoku with confidence: delta over the shared task only.
    conf = json.loads(_results("llada_confidence_k1")[0].read_text())["results"]["fx_sudoku"]["exact_match,none"]
    mine = json.loads(_results("llada_random_k1")[0].read_text())["results"]["fx_sudoku"]["exact_match,none"]
    assert rnd["Δ vs confidence"] == f"{(mine - conf) * 100:+.1f}"
    legacy = by[("EleutherAI/pythia-160m", "–", "–")]
    assert legacy["fx_sudoku"] == "65.0"  # stderr "N/A": no ± part
    assert legacy["H̃"] == legacy["Tok/s"] == "–"
    assert by[("Qwen/Qwen2.5-0.5B-Instruct", "–", "–")]["fx_gsm"] == expected_cell(_results("qwen_ar"), "fx_gsm", "exact_match,flexible-extract")


def test_csv_matches_markdown(board):
    md = {(r["Model"], r["Sampler"], r["K"]): r for r in parse_markdown_table((board / "leaderboard.md").read_text())}
    lines = list(csv.DictReader(io.StringIO((board / "leaderboard.csv").read_text())))
    assert len(lines) == len(md)
    for line in lines:
        key = (line["model"], line["sampler"] or "–", line.get("K") or "–")
        assert md[key]["fx_sudoku"].split(" ")[0] == f"{float(line['fx_sudoku']):.1f}"
        assert not any(part.startswith("/") for part in line["sources"].split())  # relative when under cwd
        assert all(Path(p).is_file() for p in line["sources"].split())


def test_pngs_are_real_matplotlib_plots(board):
    import matplotlib.image as mpimg

    for name in ("entropy_vs_accuracy.png", "speed_vs_accuracy.png"):
        path = board / name
        info = png_info(path)
        assert info["text"].get("Software", "").startswith("Matplotlib")
        assert info["width"] >= 800 and info["height"] >= 300
        pixels = mpimg.imread(path)
        assert pixels.std() > 0.05  # axes, points and text, not a blank canvas
        assert path.stat().st_size > 20_000


def test_html_is_self_contained(board):
    page = (board / "leaderboard.html").read_text()
    assert page.count("<table") == 1 and "<script>" in page
    for needle in ('src="http', "href=", "<link", "@import", "src=\"//"):
        assert needle not in page
    assert page.count("data:image/png;base64,") == 2


# ---------------------------------------------------------------- real browser
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _chrome(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium/Chrome installed (apt-get install -y chromium) — headless HTML check skipped")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0",
    ]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=120)


def test_html_renders_in_headless_chromium(board, tmp_path):
    shot = tmp_path / "shot.png"
    proc = _chrome(tmp_path, "--window-size=1400,1000", f"--screenshot={shot}", (board / "leaderboard.html").as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    info = png_info(shot)
    assert (info["width"], info["height"]) == (1400, 1000)
    import matplotlib.image as mpimg

    assert mpimg.imread(shot).std() > 0.05
    assert "Uncaught" not in proc.stderr, proc.stderr[-2000:]


def test_html_sorting_runs_in_browser(board, tmp_path):
    md = parse_markdown_table((board / "leaderboard.md").read_text())
    headers = list(md[0])
    col = headers.index("fx_sudoku")

    def order(fragment: str, col: int = col) -> list[str]:
        proc = _chrome(tmp_path, "--dump-dom", (board / "leaderboard.html").as_uri() + fragment)
        assert "Uncaught" not in proc.stderr, proc.stderr[-2000:]
        dom = proc.stdout
        assert f'data-sorted="{fragment.split("=")[1]}"' in dom  # the script ran
        body = dom.split("<tbody>")[1].split("</tbody>")[0]
        cells = [tr.split("<td")[col + 1] for tr in body.split("<tr")[1:]]
        return [c.split('data-sort="')[1].split('"')[0] for c in cells]

    desc = order(f"#sort=-{col}")
    numbers = [float(x) for x in desc if x]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) == 8
    asc = order(f"#sort={col}")
    assert [float(x) for x in asc if x] == sorted(numbers)
    # Rows without the task sink to the bottom whichever way the column is sorted.
    gsm = headers.index("fx_gsm")
    gsm_desc = order(f"#sort=-{gsm}", gsm)
    assert gsm_desc[-2:] == ["", ""] and all(gsm_desc[:-2])


def test_sampler_constants_mirror_the_decoding_config():
    from lm_eval_infogain.leaderboard import table
    from lm_eval_infogain.sampling import config

    assert table.SAMPLER_NAMES == config.SAMPLER_NAMES
    assert table.INFO_GAIN_FAMILY == config.INFO_GAIN_FAMILY


def test_leaderboard_does_not_import_torch():
    code = "import sys, lm_eval_infogain.leaderboard.cli, lm_eval_infogain.leaderboard.regress; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_local_checkpoint_paths_do_not_leak_into_tables(tmp_path, monkeypatch):
    from lm_eval_infogain.leaderboard.loading import portable_model_name

    assert portable_model_name("/ckpt/llada-sft/step-1000") == "llada-sft/step-1000"
    assert portable_model_name("GSAI-ML/LLaDA-8B-Instruct") == "GSAI-ML/LLaDA-8B-Instruct"
    src = next((RUNS / "llada_confidence_k1").rglob("results_*.json"))
    run_dir = tmp_path / "results_in" / "m"
    run_dir.mkdir(parents=True)
    data = json.loads(src.read_text())
    data["config"]["infogain"]["pretrained"] = str(tmp_path / "weights" / "my-mdm")
    (run_dir / src.name).write_text(json.dumps(data))
    monkeypatch.chdir(RUNS)  # the results folder is not below the working directory
    out = tmp_path / "board"
    assert leaderboard_main([str(tmp_path / "results_in"), "-o", str(out)]) == 0
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.html"):
        text = (out / name).read_text()
        assert str(tmp_path) not in text and "weights/my-mdm" in text, name
    assert "results_in/m/" + src.name in (out / "leaderboard.csv").read_text()


def test_browser_console_capture_sees_script_errors(tmp_path):
    """Control for the two browser tests above: a page with a broken script is reported."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body>x<script>missing.call();</script></body></html>")
    proc = _chrome(tmp_path, "--dump-dom", page.as_uri())
    assert "Uncaught ReferenceError" in proc.stderr


def test_per_sample_entropy_correlation_recomputed_from_files(board):
    from lm_eval_infogain.leaderboard.cli import CORRELATION_FILE

    lines = list(csv.DictReader(io.StringIO((board / CORRELATION_FILE).read_text())))
    src = _results("llada_confidence_k1")[0]
    row = [x for x in lines if x["source"] == src.name and x["task"] == "fx_gsm"][0]
    stamp = src.name.removeprefix("results_").removesuffix(".json")
    scores = {}
    for line in (src.parent / f"samples_fx_gsm_{stamp}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["filter"] == "flexible-extract":  # the main metric's filter
            scores[rec["doc_id"]] = rec["exact_match"]
    ent = {}
    for line in (src.parent / f"infogain_samples_{stamp}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["task"] == "fx_gsm":
            ent[rec["doc_id"]] = rec["cumulative_entropy"]
    docs = sorted(scores)
    r = statistics.correlation([ent[d] for d in docs], [scores[d] for d in docs])
    assert int(row["n"]) == 20 and float(row["r"]) == pytest.approx(r)
    right = [ent[d] for d in docs if scores[d] > 0]
    assert float(row["entropy_right"]) == pytest.approx(statistics.fmean(right))
    pooled = [x for x in lines if x["model"] == "*" and x["task"] == "fx_gsm"][0]
    assert int(pooled["n"]) == 80  # confidence + three info_gain seeds logged samples
    assert f"`fx_gsm` r = {float(pooled['r']):+.2f}" in (board / "leaderboard.md").read_text()


# ---------------------------------------------------------------- throughput context, bad files and paths
def _copy_run(src: str, dst: Path, edit) -> Path:
    """A copy of a fixture run whose results JSON ``edit(data)`` changes."""
    shutil.copytree(RUNS / src, dst)
    for file in dst.rglob("results_*.json"):
        data = json.loads(file.read_text())
        edit(data)
        file.write_text(json.dumps(data))
    return dst


def test_tokens_per_second_shows_batch_size_and_device(tmp_path):
    def bigger_batch(data):
        data["config"]["infogain"].update(schema=2, batch_size="8", world_size=2)

    run = _copy_run("llada_confidence_k1", tmp_path / "runs" / "b8", bigger_batch)
    out = tmp_path / "board"
    assert leaderboard_main([str(run), "-o", str(out)]) == 0
    rows = parse_markdown_table((out / "leaderboard.md").read_text())
    header = list(rows[0])
    assert header[header.index("Tok/s") + 1: header.index("Tok/s") + 3] == ["Batch", "Device"]
    assert rows[0]["Batch"] == "8" and rows[0]["Device"] == "cpu×2"
    csv_row = next(csv.DictReader((out / "leaderboard.csv").read_text().splitlines()))
    assert csv_row["batch_size"] == "8" and csv_row["device"] == "cpu×2"


def test_an_unreadable_results_file_is_skipped_with_a_note(tmp_path, capsys):
    run = _copy_run("llada_confidence_k1", tmp_path / "runs" / "good", lambda data: None)
    broken = run / "broken" / "results_2026-01-01T00-00-00.000000.json"
    broken.parent.mkdir()
    broken.write_text('{"results": {"fx_gsm": ')  # an interrupted write
    assert leaderboard_main([str(tmp_path / "runs"), "-o", str(tmp_path / "board")]) == 0
    err = capsys.readouterr().err
    assert f"note: skipped unreadable results file {broken}: " in err


def test_output_folder_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "existing.txt"
    target.write_text("keep me")
    assert leaderboard_main([str(RUNS / "llada_confidence_k1"), "-o", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lm-eval-infogain leaderboard: -o {target} is a file; the leaderboard needs a folder to write its files into"]
    assert target.read_text() == "keep me"
    assert leaderboard_main([str(RUNS / "llada_confidence_k1"), "-o", str(target / "sub")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
