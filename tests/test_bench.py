"""The speed benchmark's machinery on tiny models (no timing targets here: those are the script's job)."""

import json

import torch

from lm_eval_infogain import bench
from lm_eval_infogain.sampling import DecodingConfig, generate


def test_timed_adapter_counts_forward_time_without_changing_outputs():
    adapter = bench.bert_adapter(1, 32, vocab=64)
    prompts = bench._prompts(2, 6, 64)
    cfg = DecodingConfig(sampler="info_gain", gen_length=6, block_size=3, candidate_number=3)
    timed = bench.TimedAdapter(adapter)
    plain = generate(adapter, prompts, cfg)
    measured = generate(timed, prompts, cfg)
    assert measured.tokens == plain.tokens
    assert timed.forward_seconds > 0
    assert [s.model_calls for s in measured.stats] == [s.model_calls for s in plain.stats]


def test_cases_report_medians_and_the_target_ratios(tmp_path):
    adapters = {
        "bert-4x256": bench.bert_adapter(1, 32, vocab=64),
        "bert-2x64": bench.bert_adapter(1, 32, vocab=64),
        "llada-4x256": bench.llada_adapter(1, 32, heads=2, vocab=64),
    }
    small = dict(gen_length=4, block=2)
    cases = [
        bench.BenchCase(f"overhead/{m}/{s}", m, 2, 5, bench._config(s, small["gen_length"], small["block"]))
        for m in ("bert-4x256", "bert-2x64") for s in ("info_gain", "confidence")
    ] + [
        bench.BenchCase(f"cache/{c}", "llada-4x256", 2, 8, bench._config("info_gain", 4, 2, c))
        for c in ("none", "prefix", "dual")
    ]
    rows = bench.run_cases(adapters, cases, repeats=2, warmup=0)
    assert [r["label"] for r in rows] == [c.label for c in cases]
    for row in rows:
        assert row["repeats"] == 2
        assert row["wall_s"] >= row["forward_s"] > 0
        assert row["overhead"] >= 1.0
        assert row["tokens_per_s"] > 0 and row["rows_forwarded"] >= row["model_calls"] >= 1
    by = {r["label"]: r for r in rows}
    # the cache runs fewer positions through the model than the full forward
    assert by["cache/dual"]["tokens_forwarded"] < by["cache/prefix"]["tokens_forwarded"] < by["cache/none"]["tokens_forwarded"]
    lines = bench.ratio_lines(rows)
    assert any(line.startswith("overhead bert-4x256") for line in lines)
    assert any(line.startswith("cost bert-2x64") for line in lines)
    assert any(line.startswith("cache prefix") for line in lines) and any(line.startswith("cache dual") for line in lines)
    assert "case | wall s" in bench.format_table(rows)


def test_cli_grid_on_a_random_llada_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = bench.main([
        "--llada-shape", "1x32x2x64x64", "--samplers", "confidence", "--batch-sizes", "1,2",
        "--caches", "none,prefix", "--prompt-length", "6", "--gen-length", "4", "--block-size", "2",
        "--repeats", "1", "--warmup", "0", "--json", str(out),
    ])
    assert code == 0
    data = json.loads(out.read_text())
    labels = [row["label"] for row in data["rows"]]
    assert labels == [f"grid/llada-1x32x2x64x64/confidence/B{b}/{c}" for b in (1, 2) for c in ("none", "prefix")]
    assert data["environment"]["device"] == "cpu"
    assert "grid/llada" in capsys.readouterr().out
    assert torch.get_num_threads() >= 1
