"""The speed benchmark's machinery on tiny models (no timing targets here: those are the script's job)."""

import json

import pytest
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


def test_rows_forwarded_equal_their_floor_batched_and_alone():
    """Only distinct actions are forwarded: the rows run equal the rows the decisions required."""
    adapters = {"m": bench.bert_adapter(1, 32, vocab=64)}
    cfg = DecodingConfig(sampler="info_gain", gen_length=8, steps=8, block_size=4, candidate_number=8,
                         position_temperature=0.2, threshold=0.8, eos_penalty=0.0, eos_fill=False)
    cases = [bench.BenchCase("b", "m", 4, 6, cfg), bench.BenchCase("e", "m", 4, 6, cfg, mode="each")]
    rows = bench.run_cases(adapters, cases, repeats=1, warmup=0)
    for row in rows:
        assert row["rows_forwarded"] == row["rows_floor"]
        # far below forwarding all 8 candidates of every lookahead step
        assert row["rows_forwarded"] < 8 * 8 * 4


REFERENCE_FILE = """
import torch

class InfoGainSampler:
    # A stand-in with the reference's interface: confidence order, one forward per token.
    def __init__(self, model, tokenizer, mask_id=None):
        self.model, self.mask_id = model, mask_id

    def sample(self, input_ids, max_new_tokens=256, steps=256, block_size=32, candidate_number=8,
               position_temperature=0.2, threshold=0.8, temperature=0.0, variant="info_gain", attention_mask=None):
        x = torch.cat([input_ids, torch.full((1, max_new_tokens), self.mask_id)], dim=1)
        for _ in range(max_new_tokens):
            logits = self.model(input_ids=x, attention_mask=torch.ones_like(x)).logits
            conf, tok = logits.softmax(-1).max(-1)
            conf = torch.where(x == self.mask_id, conf, torch.full_like(conf, -1.0))
            pos = int(conf[0].argmax())
            x[0, pos] = tok[0, pos]
        return x
"""


def test_reference_sampler_runs_side_by_side_and_ratios_are_printed(tmp_path):
    path = tmp_path / "reference.py"
    path.write_text(REFERENCE_FILE)
    reference = bench.load_reference_sampler(str(path))
    adapters, cases = bench.reference_suite("cpu", torch.float32, reference, layers=1, width=32, prompts=3,
                                            prompt_length=5, gen_length=4, block=2)
    rows = bench.run_cases(adapters, cases, repeats=1, warmup=0)
    by = {r["label"]: r for r in rows}
    paper = by["reference/paper"]
    assert paper["rows_forwarded"] == paper["model_calls"] == 3 * 4  # one row per token, per prompt
    assert paper["rows_floor"] is None and paper["forward_s"] > 0
    assert by["reference/ours/B3"]["rows_forwarded"] == by["reference/ours/B1"]["rows_forwarded"]
    lines = bench.ratio_lines(rows)
    assert any(line.startswith("reference rows: ours") and "target ≤ 1.05" in line for line in lines)
    assert any(line.startswith("reference wall, 3 prompts batched") for line in lines)
    assert any(line.startswith("reference wall, prompt by prompt") for line in lines)
    assert "–" in bench.format_table(rows)


@pytest.mark.parametrize("args, message", [
    (["--batch-sizes", "0"], "--batch-sizes: 0 must be ≥ 1"),
    (["--batch-sizes", "1,x"], "'x' is not an integer"),
    (["--llada-shape", "2xabc"], "--llada-shape: '2xabc'"),
    (["--llada-shape", "2"], "LAYERSxWIDTH"),
    (["--samplers", "nope"], "choose from"),
    (["--repeats", "0"], "--repeats: 0 must be ≥ 1"),
    (["--reference-sampler", "/nonexistent/ref.py"], "--reference-sampler"),
    (["--only", "reference"], "needs --reference-sampler"),
])
def test_bad_arguments_are_one_line_errors(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)
