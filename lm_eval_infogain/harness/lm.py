"""``infogain_mdm``: masked diffusion LMs as an lm-eval backend. Glue only.

Requests become token ids here; decoding is the engine's job (``sampling``), model families the
loader's (``models``), log-likelihoods ``likelihood.py``'s. The rules for how task generation
kwargs meet model_args are in ``requests.py``; batching in ``batching.py``; data parallelism in
``distributed.py``; statistics in ``run_stats.py`` / ``stats_file.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from lm_eval.api.model import LM
from lm_eval.models.utils import Collator, postprocess_generated_text
from tqdm import tqdm

from ..sampling.config import DecodingConfig
from . import stats_file
from .batching import AdaptiveBatcher, is_out_of_memory
from .distributed import AcceleratorProxy, Parallel
from .options import HarnessOptions, ModelArgsError, parse_model_args
from .requests import GenerationPlan, RepeatTracker, plan_generation, request_key
from .run_stats import RunStats, peak_memory_bytes, versions

__all__ = ["InfoGainLM", "DEMO_MODEL_DIR"]

log = logging.getLogger(__name__)
DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "demo" / "model"
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "auto": "auto"}


def _resolve_device(requested: str | None) -> torch.device:
    """lm-eval's CLI passes ``cuda:0`` even on machines without CUDA: fall back to CPU, loudly."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        log.warning("device=%s requested but CUDA is not available; running on CPU", requested)
        return torch.device("cpu")
    return device


class InfoGainLM(LM):
    """lm-eval model ``infogain_mdm`` (see the README's model_args table)."""

    def __init__(self, **model_args: Any) -> None:
        super().__init__()
        # Everything is validated before any weight is read.
        self.options, self.config = parse_model_args(model_args)
        self.parallel = Parallel()
        self._rank, self._world_size = self.parallel.rank, self.parallel.world_size
        if self.parallel.device is not None:
            if self.options.device not in (None, str(self.parallel.device)):
                log.warning("data parallel run: device=%s replaced by %s", self.options.device, self.parallel.device)
            self._device = self.parallel.device
        else:
            self._device = _resolve_device(self.options.device)
        self.pretrained = self.options.pretrained or self._demo_model()
        from ..models.loader import load_mdm

        self.adapter = load_mdm(
            self.pretrained,
            device=str(self._device),
            dtype=_TORCH_DTYPES.get(self.options.dtype) if self.options.dtype else None,
            trust_remote_code=self.options.trust_remote_code,
        )
        self.tokenizer = self.adapter.tokenizer
        self.stats = RunStats()
        if self.config.cache not in self.adapter.cache_modes:
            raise ModelArgsError(
                f"cache={self.config.cache!r} is not supported by this model (supported: {', '.join(self.adapter.cache_modes)})"
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
            self.stats.sync(self.parallel.gather_object, self.rank, peak_memory_bytes(self.device))
        self.parallel.barrier()

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", self.pretrained)).replace("/", "__")

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

        if not requests:
            return []
        repeats = RepeatTracker(requests)
        items = [(req.args[0], req.args[1], i) for i, req in enumerate(requests)]
        encoded = {}

        def sort_key(item: tuple[str, dict, int]) -> tuple[int, str]:
            if item[0] not in encoded:
                encoded[item[0]] = self.encode_prompt(item[0])
            return -len(encoded[item[0]]), item[0]

        collator = Collator(items, sort_fn=sort_key, group_by="gen_kwargs", group_fn=lambda item: item[1])
        batcher = AdaptiveBatcher(self.options.batch_size, self.options.max_batch_size, len(items))
        pbar = tqdm(total=len(items), disable=disable_tqdm or self.rank != 0, desc="infogain_mdm generate_until")
        eos_text = self._eos_text()
        outputs: list[str] = []
        for group in collator.get_batched(n=0):
            plan = plan_generation(group[0][1], self.options.decoding_options, self.config, eos_text)

            def run(batch: Sequence[tuple[str, dict, int]], plan: GenerationPlan = plan) -> list[str]:
                prompts = [self._fit_context(encoded[context], plan.config.gen_length) for context, _, _ in batch]
                keys = [request_key(context, kwargs, repeats.repeat[i]) for context, kwargs, i in batch]
                result = generate(self.adapter, prompts, plan.config, request_keys=keys)
                texts = []
                for (context, kwargs, i), key, tokens, sample in zip(batch, keys, result.tokens, result.stats):
                    text = self._cut(tokens, plan.until)
                    texts.append(text)
                    if not repeats.padding[i]:
                        request = requests[i]
                        meta = {"task": request.task_name, "doc_id": request.doc_id,
                                "repeat": repeats.repeat[i], "request_key": key}
                        self.stats.add(meta, sample)
                    self.cache_hook.add_partial("generate_until", (context, kwargs), text)
                pbar.update(len(batch))
                return texts

            outputs.extend(batcher.run(group, run))
        pbar.close()
        return collator.get_original(outputs)

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
                                     batch_rows=rows, seed=self.config.seed)
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
        """lm-eval merges this into ``results["config"]`` on rank 0 (schema: ``run_stats.py``)."""
        header = {
            "pretrained": str(self.pretrained),
            "sampler": self.config.sampler,
            "decoding": self.config.to_dict(),
            "device": str(self.device),
            "dtype": self._dtype_name(),
            "world_size": int(self.world_size),
            "versions": versions(),
        }
        info = self.stats.summary(header, peak_memory_bytes(self.device))
        stats_file.publish(self.stats.records)
        explicit = stats_file.resolve_explicit_path(self.options.stats_path)
        if explicit is not None:
            stats_file.write_records(explicit, self.stats.records)
        return {"infogain": info}
