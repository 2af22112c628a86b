"""Tiny models and tasks for the lm-eval integration tests (shared by tests/test_harness*.py,
tests/test_plugin*.py and tests/test_likelihood*.py).

- :func:`chain_adapter`: a scripted "model" whose every masked position predicts the successor of
  the token on its left (high confidence) or nothing in particular (when that token is still
  masked). With a confidence sampler it writes a fixed chain left to right, so stop strings and
  EOS cuts have known outcomes.
- :func:`save_tiny_bert`: a random ``BertForMaskedLM`` plus a word-level tokenizer with a mask
  token and a chat template, saved like a hub checkpoint (``pretrained=<folder>`` works).
- :func:`write_task`: a 6-document ``generate_until`` task reading a local JSONL.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

WORDS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[EOS]",
    "a", "b", "c", "d", "x", "y", ".", "z", "q", "w", "e", "r", "t",
    "<", ">", "user", "assistant", "system", "question", "answer", ":", "0", "1", "2", "3",
]  # fmt: skip
VOCAB = {word: i for i, word in enumerate(WORDS)}
#: successor of each token in the scripted chain ("a b c d [EOS]", "x y . z q", ...).
CHAIN = {"a": "b", "b": "c", "c": "d", "d": "[EOS]", "x": "y", "y": ".", ".": "z", "z": "q", "q": "w",
         "w": "e", "e": "r", "r": "t", "t": "a", ":": "x", ">": "a", "0": "1", "1": "2", "2": "3", "3": "0"}  # fmt: skip
CHAT_TEMPLATE = (
    "{% for m in messages %}< {{ m['role'] }} > {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}< assistant > {% endif %}"
)


class ChainLM(nn.Module):
    """Scripted MDM: logits depend only on the token left of each position."""

    def __init__(self, strength: float = 30.0):
        super().__init__()
        n = len(WORDS)
        table = torch.zeros(n, n)
        for left, right in CHAIN.items():
            table[VOCAB[left], VOCAB[right]] = strength
        table[VOCAB["[MASK]"]] = torch.linspace(0, 1, n)  # unsure: low confidence everywhere
        self.register_buffer("table", table)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device and dtype
        self.config = SimpleNamespace(vocab_size=n, max_position_embeddings=512)
        self.forward_rows = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        self.forward_rows += input_ids.shape[0]
        left = torch.cat([torch.full_like(input_ids[:, :1], VOCAB["[MASK]"]), input_ids[:, :-1]], dim=1)
        return SimpleNamespace(logits=self.table[left] + self.anchor)


def word_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")  # joins with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", eos_token="[EOS]",
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def chain_adapter(max_length: int = 512):
    from lm_eval_infogain.models.hf import HFModelAdapter

    tokenizer = word_tokenizer()
    adapter = HFModelAdapter.from_tokenizer(ChainLM(), tokenizer, max_length=max_length)
    adapter.tokenizer = tokenizer
    return adapter


def save_tiny_bert(folder: Path, seed: int = 0) -> Path:
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=128, pad_token_id=VOCAB["[PAD]"],
    )
    BertForMaskedLM(config).eval().save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


DOCS = [
    {"question": "a", "answer": "b c"},
    {"question": "x", "answer": "y"},
    {"question": "0 1", "answer": "2 3"},
    {"question": "q w", "answer": "e r"},
    {"question": "z", "answer": "q w"},
    {"question": "1", "answer": "2 3"},
]


def write_task(folder: Path, name: str = "harness_chain", *, until: list[str] | None = None, max_gen_toks: int = 6,
               repeats: int = 1, extra: str = "") -> Path:
    """A generate_until task over :data:`DOCS` (local JSONL, absolute path, exact_match)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    until = ["."] if until is None else until
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        "doc_to_text: \"question : {{question}}\"\n"
        "doc_to_target: \"{{answer}}\"\n"
        f"generation_kwargs:\n  until: {json.dumps(until)}\n  max_gen_toks: {max_gen_toks}\n  do_sample: false\n"
        f"repeats: {repeats}\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        + extra
    )
    return folder


def install_scripted(monkeypatch) -> dict:
    """Make ``load_mdm`` return the scripted chain model; count loads and engine calls."""
    import lm_eval_infogain.models.loader as loader
    import lm_eval_infogain.sampling as sampling

    counts = {"loads": 0, "generate": 0, "prompts": 0}

    def fake_load(*args, **kwargs):
        counts["loads"] += 1
        return chain_adapter(max_length=kwargs.get("max_length", 512))

    real_generate = sampling.generate

    def counting_generate(adapter, prompts, config, **kwargs):
        counts["generate"] += 1
        counts["prompts"] += len(prompts)
        return real_generate(adapter, prompts, config, **kwargs)

    monkeypatch.setattr(loader, "load_mdm", fake_load)
    monkeypatch.setattr(sampling, "generate", counting_generate)
    return counts


def evaluate(model, task_folder: Path, tasks=("harness_chain",), **kwargs):
    """``simple_evaluate`` on local tasks only (no full task index), without bootstrap resampling."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_defaults=False, include_path=str(task_folder))
    kwargs.setdefault("bootstrap_iters", 0)
    kwargs.setdefault("log_samples", True)
    return simple_evaluate(model=model, tasks=list(tasks), task_manager=manager, **kwargs)


def restore_cli_side_effects(monkeypatch):
    """lm-eval's CLI hook installs an excepthook and routes our logs into lm-eval's handler: in a test
    process, undo both afterwards (generator: use as the body of a fixture)."""
    import logging
    import sys

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    ours = logging.getLogger("lm_eval_infogain")
    handlers, propagate, level = list(ours.handlers), ours.propagate, ours.level
    yield
    ours.handlers[:] = handlers
    ours.propagate, ours.level = propagate, level
