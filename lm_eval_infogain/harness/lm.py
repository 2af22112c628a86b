"""``infogain_mdm``: masked diffusion LMs as an lm-eval backend. Glue only.

Requests become token ids here; decoding is the engine's job (``sampling``), model families the
loader's (``models``), log-likelihoods ``likelihood.py``'s. The rules for how task generation
kwargs meet model_args are in ``requests.py``; batching in ``batching.py``; data parallelism in
``distributed.py``; CPU threads in ``threads.py``; statistics in ``run_stats.py`` /
``stats_file.py``, and those of ``--use_cache`` answers in ``cache_stats.py``. What lm-eval does not
tell a model (an evaluation starts, its seeds, its cache hits) arrives through ``evaluation.py``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from lm_eval.api.model import LM
from lm_eval.models.utils import Collator, postprocess_generated_text
from tqdm import tqdm

from ..infill_protocol import InfillCanvas, InfillRequest, decode_request, gap_text
from ..infill_protocol import build_canvas as build_infill_canvas
from ..sampling.config import DecodingConfig
from . import stats_file
from .batching import AdaptiveBatcher, is_out_of_memory
from .cache_stats import StatsSidecar, answer_key, describe_difference, settings_id, sidecar_path
from .distributed import AcceleratorProxy, Parallel
from .evaluation import EvaluationContext
from .options import BUNDLED_MODEL_NAME, LM_EVAL_ARGS, ModelArgsError, merge_lm_eval_args, parse_model_args
from .requests import GenerationPlan, RepeatTracker, plan_generation, request_key
from .run_stats import RunStats, peak_memory_bytes, versions
from .threads import ThreadGovernor

__all__ = ["InfoGainLM", "DEMO_MODEL_DIR"]

log = logging.getLogger(__name__)
DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "demo" / "model"
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "auto": "auto"}


def _resolve_device(requested: str | None) -> torch.device:
    """Nothing requested: CUDA when there is one, else the CPU (lm-eval's CLI default ``cuda:0`` is
    dropped by the CLI hook when the user did not type ``--device``). ``cuda`` asked for on a
    machine without CUDA falls back to the CPU with a warning."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        log.warning("device=%s requested but CUDA is not available; running on CPU", requested)
        return torch.device("cpu")
    return torch.device("cpu") if device.type == "cpu" else device


#: Seed sources recorded in the results (``config.infogain.seed.source``).
SEED_FROM_MODEL_ARGS, SEED_FROM_LM_EVAL, SEED_DEFAULT = "model_args", "lm_eval", "default"


@dataclass
class Evaluation:
    """Everything that belongs to one lm-eval evaluation (reset when the next one starts)."""

    seed: int
    seed_source: str
    config: DecodingConfig
    raw_options: dict[str, Any]
    stats: RunStats = field(default_factory=RunStats)
    plans: dict[str, GenerationPlan] = field(default_factory=dict)
    reported: bool = False


class InfoGainLM(LM):
    """lm-eval model ``infogain_mdm`` (every model_arg: docs/lm_eval.md)."""

    def __init__(self, **model_args: Any) -> None:
        super().__init__()
        # Everything is validated before any weight is read.
        self.options, self.config = parse_model_args(model_args)
        self.parallel = Parallel(self.options.device)
        self._rank, self._world_size = self.parallel.rank, self.parallel.world_size
        if self.parallel.device is not None:
            requested = self.options.device
            if requested is not None and _resolve_device(requested).type != self.parallel.device.type:
                log.warning("data parallel run: device=%s replaced by %s", requested, self.parallel.device)
            self._device = self.parallel.device
            log.info("data parallel run: rank %d of %d processes, device %s", self.rank, self.world_size, self._device)
        else:
            self._device = _resolve_device(self.options.device)
        self.pretrained = self.options.pretrained or self._demo_model()
        #: How results name the model: ``pretrained`` as given, or the bundled model's name.
        self.model_name = self.options.pretrained or BUNDLED_MODEL_NAME
        from ..models.loader import load_mdm

        self.adapter = load_mdm(
            self.pretrained,
            device=str(self._device),
            dtype=_TORCH_DTYPES.get(self.options.dtype) if self.options.dtype else None,
            trust_remote_code=self.options.trust_remote_code,
        )
        self.tokenizer = self.adapter.tokenizer
        if self.config.cache not in self.adapter.cache_modes:
            raise ModelArgsError(
                f"cache={self.config.cache!r} is not supported by this model (supported: {', '.join(self.adapter.cache_modes)})"
            )
        self.threads = ThreadGovernor(self._parameter_count(), self._device)
        self._evaluation: Evaluation | None = None
        #: Set by the CachingLM hook around a cached generate_until call: ids of the requests we got.
        self._infogain_received: set[int] | None = None
        self._sidecar: StatsSidecar | None = None

    # ------------------------------------------------------------------ construction by lm-eval
    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> "InfoGainLM":
        """lm-eval's constructor path: ``--model_args`` merged with its own ``batch_size`` /
        ``max_batch_size`` / ``device`` (model_args win; lm-eval's version is a ``TypeError``)."""
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict[str, Any], additional_config: dict | None = None) -> "InfoGainLM":
        from . import cli_checks

        extra = {k: v for k, v in (additional_config or {}).items() if k in LM_EVAL_ARGS}
        return cls(**merge_lm_eval_args(arg_dict or {}, extra, cli_checks.take_flags_given()))

    def _parameter_count(self) -> int:
        try:
            return int(sum(p.numel() for p in self.adapter.model.parameters()))
        except (AttributeError, TypeError):
            return 1 << 40  # unknown: no cap from the model size

    # ------------------------------------------------------------------ one evaluation
    def _decoding_seed(self, context: EvaluationContext | None) -> tuple[int, str]:
        """model_args ``seed`` > lm-eval's torch seed (``--seed``) > DecodingConfig's default."""
        if "seed" in self.options.decoding_options:
            return self.config.seed, SEED_FROM_MODEL_ARGS
        if context is not None and context.torch_seed is not None:
            return int(context.torch_seed), SEED_FROM_LM_EVAL
        return self.config.seed, SEED_DEFAULT

    def _infogain_begin_evaluation(self, context: EvaluationContext | None) -> None:
        """Called by the ``evaluate`` hook when lm-eval starts an evaluation with this model."""
        seed, source = self._decoding_seed(context)
        config = self.config if seed == self.config.seed else self.config.replace(seed=seed)
        raw = dict(self.options.decoding_options)
        if source != SEED_FROM_MODEL_ARGS:
            raw["seed"] = seed
        self._evaluation = Evaluation(seed, source, config, raw)
        log.info("decoding seed %d (from %s)", seed, source)

    def _current(self) -> Evaluation:
        """This evaluation; a new one when none began or the last one was reported (a caller that
        bypasses lm-eval's ``evaluate``, or the hook is not installed)."""
        if self._evaluation is None or self._evaluation.reported:
            self._infogain_begin_evaluation(None)
        assert self._evaluation is not None
        return self._evaluation

    @property
    def stats(self) -> RunStats:
        return self._current().stats

    def _settings(self, config: DecodingConfig) -> dict[str, Any]:
        """What makes an answer: the model and every decoding option (the seed included)."""
        return {"model": self.model_name, "decoding": config.to_dict()}

    def _plan(self, gen_kwargs: dict[str, Any], task: str | None) -> GenerationPlan:
        evaluation = self._current()
        key = json.dumps(gen_kwargs, sort_keys=True, default=str)
        plan = evaluation.plans.get(key)
        if plan is None:
            plan = plan_generation(gen_kwargs, evaluation.raw_options, evaluation.config, self._eos_text())
            evaluation.plans[key] = plan
        if task is not None:
            self._note_decoding(evaluation, task, plan.config)
        return plan

    @staticmethod
    def _note_decoding(evaluation: Evaluation, task: str, config: DecodingConfig) -> None:
        """Record a task's settings as used: ``block_size`` is the longest block the canvas really has."""
        used = config.to_dict()
        lengths = list(config.block_lengths)
        if lengths:
            used["block_size"] = max(lengths)
        evaluation.stats.note_decoding(task, settings_id(used), used)

    def _stats_sidecar(self) -> StatsSidecar | None:
        """The statistics store beside lm-eval's answer cache, when ``--use_cache`` is on."""
        db = getattr(getattr(self, "cache_hook", None), "dbdict", None)
        path = getattr(db, "filename", None)
        if not path:
            return None
        if self._sidecar is None or self._sidecar.path != sidecar_path(path):
            self._sidecar = StatsSidecar(path)
        return self._sidecar

    def _infogain_cache_hits(self, requests: list[Any], received: set[int]) -> None:
        """Called by the CachingLM hook: ``requests`` minus ``received`` were answered from the cache.

        Their statistics come back from the sidecar; answers made under other decoding settings
        are counted and warned about; answers without stored statistics are recorded as missing.
        """
        tracker = RepeatTracker(requests)
        hits = [i for i, r in enumerate(requests) if id(r) not in received and not tracker.padding[i]]
        if not hits:
            return
        evaluation = self._current()
        sidecar = self._stats_sidecar()
        keys = [answer_key(requests[i].args, tracker.repeat[i]) for i in hits]
        stored = sidecar.get(keys) if sidecar is not None else {}
        other: dict[str, int] = {}
        example: dict[str, Any] = {}
        for i, key in zip(hits, keys):
            request = requests[i]
            context, kwargs = request.args[0], request.args[1]
            plan = self._plan(kwargs, request.task_name)
            meta = {"task": request.task_name, "doc_id": request.doc_id, "repeat": tracker.repeat[i],
                    "request_key": request_key(context, kwargs, tracker.repeat[i])}
            entry = stored.get(key)
            if entry is None:
                evaluation.stats.add(meta, None)
                continue
            current = self._settings(plan.config)
            same = entry.settings_id == settings_id(current)
            evaluation.stats.add(meta, entry.stats, "cache" if same else "cache_other_settings")
            if not same:
                other[entry.settings_id] = other.get(entry.settings_id, 0) + 1
                example.setdefault(entry.settings_id, current)
        missing = sum(1 for i, k in zip(hits, keys) if k not in stored)
        if missing:
            log.warning(
                "--use_cache: %d of %d cached answers have no stored statistics (cache written without them); "
                "their statistics are reported as missing", missing, len(hits),
            )
        for sid, count in other.items():
            log.warning(
                "--use_cache: %d cached answers were made with other decoding settings than this run's (%s); "
                "lm-eval's cache ignores model_args, so they are scored under this run's settings. "
                "Use one --use_cache path per configuration.",
                count, describe_difference(sidecar.settings(sid) if sidecar else None, example[sid]),
            )

    @staticmethod
    def _demo_model() -> str:
        if (DEMO_MODEL_DIR / "config.json").is_file():
            return str(DEMO_MODEL_DIR)
        raise ModelArgsError(
            f"no pretrained= given and the bundled demo model is not installed ({DEMO_MODEL_DIR}); "
            "pass --model_args pretrained=<hub id or local folder>"
        )

    # ------------------------------------------------------------------ lm-eval plumbing
    @property
    def accelerator(self) -> Any:
        """For lm-eval <= 0.4.11, which synchronises ranks through ``lm.accelerator``."""
        if self.parallel.accelerator is None:
            raise AttributeError("accelerator")
        return AcceleratorProxy(self.parallel.accelerator, self.barrier)

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.parallel.all_gather(tensor)

    def gather_object(self, obj: Any, dst: int = 0) -> list[Any] | None:
        return self.parallel.gather_object(obj, dst=dst)

    def barrier(self) -> None:
        """lm-eval calls this on every rank after each request type: also gather statistics."""
        if self.world_size > 1:
            self._current().stats.sync(self.parallel.gather_object, self.rank, peak_memory_bytes(self.device))
        self.parallel.barrier()

    @property
    def tokenizer_name(self) -> str:
        return str(self.model_name).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        if chat_template is False or chat_template is None:
            return None
        template = getattr(self.tokenizer, "chat_template", None)
        if isinstance(template, dict):
            name = chat_template if isinstance(chat_template, str) else "default"
            if name not in template:
                raise ValueError(f"chat template {name!r} not found; available: {sorted(template)}")
            return template[name]
        return template

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"the tokenizer of {self.pretrained} has no chat template; drop --apply_chat_template"
            )
        import jinja2

        render = lambda history: self.tokenizer.apply_chat_template(  # noqa: E731
            history, tokenize=False, add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )
        try:
            return render(chat_history)
        except jinja2.exceptions.TemplateError:
            # Some templates (e.g. LLaDA's early ones) reject a system turn: keep the rest, say so.
            log.warning("the chat template rejected the conversation; retrying without system messages")
            return render([message for message in chat_history if message["role"] != "system"])

    # ------------------------------------------------------------------ tokens
    @property
    def max_length(self) -> int | None:
        return self.options.max_length or self.adapter.max_length

    def _bos(self) -> int | None:
        if self.options.add_bos_token is False:
            return None
        for name in ("bos_token_id", "cls_token_id"):
            value = getattr(self.tokenizer, name, None)
            if isinstance(value, int):
                return value
        return None

    def encode_prompt(self, text: str) -> list[int]:
        """Prompt ids: the text without the tokenizer's trailing specials (a separator before the
        masked region would be out of distribution), led by BOS/CLS unless the text has it."""
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        bos = self._bos()
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        return ids

    def _fit_context(self, ids: list[int], room: int) -> list[int]:
        """Left-truncate a prompt to leave ``room`` positions of the model's context."""
        if self.max_length is None:
            return ids
        keep = self.max_length - room
        if keep < 1:
            raise ValueError(f"{room} generated/scored tokens do not fit in max_length={self.max_length}")
        if len(ids) > keep:
            log.warning(
                "prompt of %d tokens + %d does not fit max_length=%d: dropped its first %d tokens",
                len(ids), room, self.max_length, len(ids) - keep,
            )
            ids = ids[len(ids) - keep :]
        return ids

    def _eos_text(self) -> str | None:
        eos = getattr(self.tokenizer, "eos_token", None)
        return eos if isinstance(eos, str) and eos else None

    def _cut(self, tokens: Sequence[int], until: list[str]) -> str:
        eos = set(self.adapter.eos_ids)
        end = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
        text = self.tokenizer.decode(list(tokens[:end]), skip_special_tokens=True)
        return postprocess_generated_text(text, until, None)

    # ------------------------------------------------------------------ generation
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        from ..sampling import generate

        evaluation = self._current()
        if self._infogain_received is not None:
            self._infogain_received.update(id(request) for request in requests)
        if not requests:
            return []
        repeats = RepeatTracker(requests)
        items = [(req.args[0], req.args[1], i) for i, req in enumerate(requests)]
        # Infilling requests (infill_protocol) are checked before any decoding: a malformed or wrapped one fails here.
        gaps = {req.args[0]: infill for req in requests if (infill := decode_request(req.args[0], req.args[1]))}
        encoded: dict[str, list[int]] = {}
        canvases: dict[str, InfillCanvas] = {}

        def sort_key(item: tuple[str, dict, int]) -> tuple[int, str]:
            context = item[0]
            if context not in encoded:
                if context in gaps:
                    canvases[context] = self._infill_canvas(gaps[context])
                    encoded[context] = canvases[context].ids
                else:
                    encoded[context] = self.encode_prompt(context)
            return -len(encoded[context]), context

        collator = Collator(items, sort_fn=sort_key, group_by="gen_kwargs", group_fn=lambda item: item[1])
        batcher = AdaptiveBatcher(self.options.batch_size, self.options.max_batch_size, len(items))
        pbar = tqdm(total=len(items), disable=disable_tqdm or self.rank != 0, desc="infogain_mdm generate_until")
        sidecar = self._stats_sidecar()
        outputs: list[str] = []
        for group in collator.get_batched(n=0):
            plan = self._plan(group[0][1], None)
            settings = self._settings(plan.config)

            def run(batch: Sequence[tuple[str, dict, int]], plan: GenerationPlan = plan, settings: dict = settings) -> list[str]:
                self.threads.recheck()
                prompts = [self._fit_context(encoded[context], plan.config.gen_length) for context, _, _ in batch]
                keys = [request_key(context, kwargs, repeats.repeat[i]) for context, kwargs, i in batch]
                result = generate(self.adapter, prompts, plan.config, request_keys=keys)
                texts, stored = [], []
                for (context, kwargs, i), key, tokens, row, sample in zip(
                    batch, keys, result.tokens, result.canvases, result.stats
                ):
                    texts.append(self._gap_answer(canvases[context], row) if plan.infill else self._cut(tokens, plan.until))
                    if repeats.padding[i]:
                        continue
                    request = requests[i]
                    meta = {"task": request.task_name, "doc_id": request.doc_id,
                            "repeat": repeats.repeat[i], "request_key": key}
                    evaluation.stats.add(meta, sample)
                    stored.append((answer_key((context, kwargs), repeats.repeat[i]), settings, sample.to_dict()))
                for task in {requests[i].task_name for _, _, i in batch if not repeats.padding[i]}:
                    self._note_decoding(evaluation, task, plan.config)
                if sidecar is not None:  # statistics first: a cached answer always has them
                    sidecar.put(stored)
                for (context, kwargs, _), text in zip(batch, texts):
                    self.cache_hook.add_partial("generate_until", (context, kwargs), text)
                pbar.update(len(batch))
                return texts

            outputs.extend(batcher.run(group, run))
        pbar.close()
        return collator.get_original(outputs)

    def _infill_canvas(self, request: InfillRequest) -> InfillCanvas:
        """Prompt ids of an infilling request: prefix, the gap's masks, suffix (``infill_protocol``)."""
        canvas = build_infill_canvas(request, self.tokenizer, self.adapter.mask_id,
                                     add_special_tokens=self.options.add_bos_token is not False)
        fitted = canvas.fit(self.max_length)
        if fitted.dropped:
            log.warning("infilling canvas of %d tokens does not fit max_length=%d: dropped the first %d prefix tokens",
                        len(canvas.ids), self.max_length, fitted.dropped)
        return fitted

    def _gap_answer(self, canvas: InfillCanvas, row: Sequence[int]) -> str:
        """The answer to an infilling request: the gap's text, cut at its first EOS."""
        return gap_text(self.tokenizer, canvas, canvas.gap_ids(row), eos_ids=self.adapter.eos_ids,
                        pad_id=self.adapter.pad_id)

    # ------------------------------------------------------------------ likelihood
    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context/continuation ids as lm-eval's causal models split them (trailing spaces move to
        the continuation; the continuation is what the whole text adds to the context)."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.encode_prompt(context + continuation)
        head = self.encode_prompt(context)
        return head, whole[len(head) :]

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Monte-Carlo ELBO per request (``likelihood.py``); ``batch_size`` counts forwarded rows here
        (each request is ``mc_num + 1`` rows), ``auto`` halving them on out-of-memory."""
        from ..likelihood import ElboRequest, mc_elbo

        pairs = []
        for request in requests:
            context, continuation = self._encode_pair(*request.args)
            pairs.append(ElboRequest(self._fit_context(context, len(continuation)), continuation))
        collator = Collator(list(range(len(pairs))), sort_fn=lambda i: -(len(pairs[i].context) + len(pairs[i].continuation)))
        rows = self.options.batch_size.value or self.options.max_batch_size
        results: list[tuple[float, bool]] = []
        pbar = tqdm(total=len(pairs), disable=disable_tqdm or self.rank != 0, desc="infogain_mdm loglikelihood")
        for chunk in collator.get_batched(n=8):
            while True:
                try:
                    scored = mc_elbo(self.adapter, [pairs[i] for i in chunk], mc_num=self.options.mc_num,
                                     batch_rows=rows, seed=self._current().seed)
                    break
                except Exception as exc:  # noqa: BLE001 - only OOM under batch_size=auto is retried
                    if not (self.options.batch_size.auto and is_out_of_memory(exc)) or rows == 1:
                        raise
                    rows = max(1, rows // 2)
                    log.warning("out of memory in loglikelihood; retrying with %d rows per forward", rows)
            for i, result in zip(chunk, scored):
                self.cache_hook.add_partial("loglikelihood", requests[i].args, result)
            results.extend(scored)
            pbar.update(len(chunk))
        pbar.close()
        return collator.get_original(results)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError(
            "infogain_mdm does not support loglikelihood_rolling (perplexity tasks): lm-eval's rolling "
            "windows sum exact left-to-right token log-probabilities, while a masked diffusion model only "
            "bounds the log-likelihood of a span (the ELBO used for loglikelihood), and a sum of window "
            "bounds would be reported as if it were a perplexity"
        )

    # ------------------------------------------------------------------ statistics
    def _dtype_name(self) -> str:
        model = getattr(self.adapter, "model", None)
        try:
            return str(next(model.parameters()).dtype).removeprefix("torch.")
        except (AttributeError, StopIteration, TypeError):
            return str(self.options.dtype or "unknown")

    def get_model_info(self) -> dict[str, Any]:
        """lm-eval merges this into ``results["config"]`` on rank 0 (schema: ``run_stats.py``).

        It is called once, at the end of ``simple_evaluate``: the next request starts a new
        evaluation even where the ``evaluate`` hook did not announce one.
        """
        evaluation = self._current()
        header = {
            "pretrained": str(self.pretrained),
            "model_name": self.model_name,
            "sampler": evaluation.config.sampler,
            "decoding": evaluation.config.to_dict(),
            "seed": {"value": evaluation.seed, "source": evaluation.seed_source},
            "device": str(self.device),
            "dtype": self._dtype_name(),
            "world_size": int(self.world_size),
            "batch_size": str(self.options.batch_size),
            "max_batch_size": int(self.options.max_batch_size),
            "threads": None if self.threads.choice is None else self.threads.choice.to_dict(),
            "sandbox": _sandbox_report(),
            "versions": versions(),
        }
        info = evaluation.stats.summary(header, peak_memory_bytes(self.device))
        stats_file.publish(evaluation.stats.records)
        explicit = stats_file.resolve_explicit_path(self.options.stats_path)
        if explicit is not None:
            stats_file.write_records(explicit, evaluation.stats.records)
        evaluation.reported = True
        return {"infogain": info}


def _sandbox_report() -> dict[str, Any] | None:
    """The code executor's isolation level, where generated programs ran in this process.

    Read only if the executor module is already loaded (no program ran otherwise) and only where it
    offers ``isolation_report``.
    """
    executor = sys.modules.get("lm_eval_infogain.scoring.executor")
    report = getattr(executor, "isolation_report", None) if executor is not None else None
    return report() if callable(report) else None
