"""The infilling request protocol (lm_eval_infogain/infill_protocol.py, docs/infilling.md): round trips,
loud failures for wrapped or inconsistent requests, canvases and gap texts under real tokenizer kinds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lm_eval_infogain import infill_protocol as ip

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def _request(prefix="def f(x):\n    ", middle="return x + 1", suffix="\n\nprint(f(2))\n", **gen):
    return ip.decode_request(ip.encode_request(prefix, suffix, middle), ip.generation_kwargs(**gen))


# ------------------------------------------------------------------ round trips and request detection
@pytest.mark.parametrize("prefix,middle,suffix", [
    ("def f():\n\treturn ", "\"é\\n\" + '}'", "\n# ünïcödé ✓\n"),
    ("", "only a middle", ""),
    ("x = 1\n", "", "y = 2\n"),  # an empty gap (14 HumanEval random-span problems have one)
    (ip.HEADER + "{\"prefix\": 1}", ip.HEADER, "\n" + ip.HEADER),  # hostile: the header inside the fields
])  # fmt: skip
def test_round_trip_keeps_every_field_exactly(prefix, middle, suffix):
    context = ip.encode_request(prefix, suffix, middle)
    assert context.startswith(ip.HEADER) and context.count(ip.HEADER) == 1
    request = ip.decode_request(context, {"infill": True, "until": [], "do_sample": False})
    assert (request.prefix, request.middle, request.suffix, request.length) == (prefix, middle, suffix, None)


def test_middle_is_not_in_the_context_as_text():
    """A backend that wrongly shows the context to a model must not hand it the answer."""
    context = ip.encode_request("a = ", "b", "secret_middle_value_42")
    assert "secret_middle_value_42" not in context


def test_ordinary_requests_are_none_and_lengths_are_read_from_gen_kwargs():
    assert ip.decode_request("Question: 1+1?\nAnswer:", {"until": ["\n"], "max_gen_toks": 8}) is None
    assert ip.decode_request("anything", None) is None
    assert ip.decode_request("anything", {"infill": False}) is None
    assert _request(infill_length=7).length == 7
    context = ip.encode_request("a", "c", "b")
    assert ip.decode_request(context, {"infill": "true", "infill_length": "12"}).length == 12  # --gen_kwargs strings
    assert ip.is_infill_request({"infill": True}) and not ip.is_infill_request({"until": []})


@pytest.mark.parametrize("context,gen_kwargs,message", [
    (ip.encode_request("a", "c", "b"), {"until": []}, "lack infill: true"),
    ("plain prompt", {"infill": True}, "context is not one"),
    ("plain prompt", {"infill_length": 4}, "without infill: true"),
    ("<|user|> " + ip.encode_request("a", "c", "b") + " <|assistant|>", {"infill": True}, "text before"),
    ("Fill in the gap.\n\n" + ip.encode_request("a", "c", "b"), {"infill": True}, "description or system"),
    (ip.encode_request("a", "c", "b") + " <|assistant|>", {"infill": True}, "text after"),
    (ip.encode_request("a", "c", "b") + " b\n\n" + ip.encode_request("a", "c", "b"), {"infill": True}, "2 infilling requests"),
    (ip.HEADER + "{not json", {"infill": True}, "malformed"),
    (ip.HEADER + json.dumps({"prefix": "a", "suffix": "b"}), {"infill": True}, "exactly the fields"),
    (ip.HEADER + json.dumps({"prefix": "a", "suffix": "b", "middle_base64": "@@"}), {"infill": True}, "not base64"),
    (ip.encode_request("a", "c", "b"), {"infill": True, "infill_length": 0}, "positive integer"),
    (ip.encode_request("a", "c", "b"), {"infill": True, "infill_length": True}, "positive integer"),
    (ip.encode_request("a", "c", "b"), {"infill": True, "infill_length": "six"}, "positive integer"),
    (ip.encode_request("a", "c", "b"), {"infill": "maybe"}, "expected true or false"),
])  # fmt: skip
def test_bad_or_wrapped_requests_fail_with_a_named_error(context, gen_kwargs, message):
    with pytest.raises(ip.InfillRequestError, match=message):
        ip.decode_request(context, gen_kwargs)


def test_wrapped_request_error_tells_what_to_drop():
    with pytest.raises(ip.InfillRequestError) as err:
        ip.decode_request("<s>[INST] " + ip.encode_request("a", "c", "b") + " [/INST]", {"infill": True})
    assert "--apply_chat_template" in str(err.value) and "--num_fewshot" in str(err.value)


def test_protocol_module_imports_without_torch():
    code = "import sys, lm_eval_infogain.infill_protocol; print('torch' in sys.modules, 'lm_eval' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# ------------------------------------------------------------------ canvases under real tokenizer kinds
def _protein_bert_tokenizer():
    """A BERT tokenizer over an amino-acid vocabulary laid out like AntiBERTy's vocab.txt."""
    from transformers import BertTokenizer

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *AMINO])}
    return BertTokenizer(vocab=vocab, do_lower_case=False)


def test_bert_protein_canvas_is_cls_prefix_masks_suffix_sep():
    tokenizer = _protein_bert_tokenizer()
    request = ip.decode_request(ip.encode_request("Y Y C", "W G K G", "A R E R G"), {"infill": True})
    canvas = ip.build_canvas(request, tokenizer, mask_id=4)
    vocab = tokenizer.get_vocab()
    assert canvas.ids == [2, *(vocab[c] for c in "YYC"), 4, 4, 4, 4, 4, *(vocab[c] for c in "WGKG"), 3]
    assert (canvas.gap_start, canvas.gap_length, canvas.head, canvas.fixed_length) == (4, 5, 1, False)
    filled = canvas.ids[:4] + [vocab[c] for c in "ARERG"] + canvas.ids[9:]
    assert canvas.gap_ids(filled) == [vocab[c] for c in "ARERG"]
    assert "".join(ip.gap_text(tokenizer, canvas, canvas.gap_ids(filled)).split()) == "ARERG"
    bare = ip.build_canvas(request, tokenizer, mask_id=4, add_special_tokens=False)
    assert bare.ids == canvas.ids[1:-1] and bare.gap_start == 3


def test_fixed_length_gap_is_trimmed_at_eos_and_pad():
    tokenizer = _protein_bert_tokenizer()
    request = ip.decode_request(ip.encode_request("Y C", "W G", "A R"), {"infill": True, "infill_length": 6})
    canvas = ip.build_canvas(request, tokenizer, mask_id=4)
    assert canvas.gap_length == 6 and canvas.fixed_length and canvas.ids.count(4) == 6
    vocab = tokenizer.get_vocab()
    a, r = vocab["A"], vocab["R"]
    assert "".join(ip.gap_text(tokenizer, canvas, [a, r, 3, a, a, a], eos_ids=[3], pad_id=0).split()) == "AR"
    assert "".join(ip.gap_text(tokenizer, canvas, [a, r, 0, 0, 0, 0], eos_ids=[3], pad_id=0).split()) == "AR"
    assert ip.gap_text(tokenizer, canvas, [3, a, a, a, a, a], eos_ids=[3], pad_id=0) == ""


def _byte_bpe_tokenizer():
    """A small byte-level BPE tokenizer (GPT-2 style) trained here, offline, on Python code."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    corpus = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n", "x = [1, 2, 3]\n"] * 20
    core.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<mask>", "<eos>"],
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=core, mask_token="<mask>", eos_token="<eos>")


@pytest.mark.parametrize("prefix,middle,suffix", [
    ("def add(a, b):\n    ", "return a + b", "\n\nprint(add(1, 2))\n"),
    ("for i in range(10):\n", "    print(i)\n", "x = [1, 2, 3]\n"),
    ("x = [1, ", "2, 3", "]\n"),
])  # fmt: skip
def test_byte_level_bpe_gap_filled_with_the_middle_gives_the_middle_back(prefix, middle, suffix):
    tokenizer = _byte_bpe_tokenizer()
    mask = tokenizer.mask_token_id
    canvas = ip.build_canvas(ip.decode_request(ip.encode_request(prefix, suffix, middle), {"infill": True}), tokenizer, mask)
    middle_ids = tokenizer(middle, add_special_tokens=False)["input_ids"]
    assert canvas.gap_length == len(middle_ids) and canvas.head == 0
    assert tokenizer.decode(canvas.ids[: canvas.gap_start]) == prefix
    assert tokenizer.decode(canvas.ids[canvas.gap_start + canvas.gap_length :]) == suffix
    filled = canvas.ids[: canvas.gap_start] + middle_ids + canvas.ids[canvas.gap_start + canvas.gap_length :]
    assert ip.gap_text(tokenizer, canvas, canvas.gap_ids(filled), eos_ids=[tokenizer.eos_token_id]) == middle


def test_sentencepiece_style_leading_space_survives_through_the_anchor():
    """Metaspace decoders drop the space of a leading '▁word' decoded alone; in place it must stay."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<mask>": 1, "▁x": 2, "▁=": 3, "▁return": 4, "▁y": 5}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", mask_token="<mask>")
    assert tokenizer.decode([4]) == "return"  # alone: the space is gone
    canvas = ip.build_canvas(ip.decode_request(ip.encode_request("x =", " y", " return"), {"infill": True}), tokenizer, 1)
    assert canvas.ids == [2, 3, 1, 5]
    assert ip.gap_text(tokenizer, canvas, [4]) == " return"


def test_bos_adding_tokenizer_leads_the_canvas_with_bos_only():
    """Llama-like tokenizers (LLaDA's among them) add BOS to a whole text and nothing after it."""
    from tokenizers import processors

    tokenizer = _byte_bpe_tokenizer()
    tokenizer.add_special_tokens({"bos_token": "<bos>"})
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    prefix, middle, suffix = "def add(a, b):\n    ", "return a + b", "\n"
    canvas = ip.build_canvas(ip.decode_request(ip.encode_request(prefix, suffix, middle), {"infill": True}), tokenizer,
                             tokenizer.mask_token_id)
    middle_ids = tokenizer(middle, add_special_tokens=False)["input_ids"]
    assert canvas.ids[0] == bos and canvas.head == 1 and canvas.ids.count(bos) == 1
    assert canvas.ids[-1] != bos and canvas.ids.count(tokenizer.mask_token_id) == len(middle_ids) == canvas.gap_length
    filled = canvas.ids[: canvas.gap_start] + middle_ids + canvas.ids[canvas.gap_start + canvas.gap_length :]
    assert ip.gap_text(tokenizer, canvas, canvas.gap_ids(filled)) == middle


def test_fit_drops_oldest_prefix_tokens_and_refuses_what_cannot_fit():
    tokenizer = _protein_bert_tokenizer()
    request = ip.decode_request(ip.encode_request("A C D E F", "G H", "K L M"), {"infill": True})
    canvas = ip.build_canvas(request, tokenizer, mask_id=4)  # [CLS] ACDEF ### GH [SEP] = 12
    assert len(canvas.ids) == 12 and canvas.fit(12) is canvas and canvas.fit(None) is canvas
    short = canvas.fit(9)
    vocab = tokenizer.get_vocab()
    assert short.ids == [2, vocab["E"], vocab["F"], 4, 4, 4, vocab["G"], vocab["H"], 3]
    assert (short.gap_start, short.dropped, short.gap_length) == (3, 3, 3)
    assert short.ids[short.gap_start : short.gap_start + 3] == [4, 4, 4]
    with pytest.raises(ip.InfillTooLongError, match="max_length=6"):
        canvas.fit(6)


def test_mask_token_inside_the_prefix_is_refused():
    tokenizer = _protein_bert_tokenizer()
    request = ip.decode_request(ip.encode_request("A [MASK] C", "G", "K"), {"infill": True})
    with pytest.raises(ip.InfillRequestError, match="mask token"):
        ip.build_canvas(request, tokenizer, mask_id=4)
