"""Pairwise LLM judge: win rate of one run's writing samples against a baseline run's samples.

Why both orders: a judge shown (A, B) prefers one position more often than chance. Each pair is judged
twice — candidate as A, then candidate as B — and counts as a win (loss) only when both verdicts agree;
disagreement is a tie. Win rate = (wins + ties / 2) / pairs.

The judge is any OpenAI-compatible ``/v1/chat/completions`` endpoint, called with :mod:`urllib` (no SDK):
``LM_EVAL_INFOGAIN_JUDGE_URL`` (base URL such as ``http://host:8000/v1``, or the full
``.../chat/completions`` URL), ``LM_EVAL_INFOGAIN_JUDGE_KEY`` (optional bearer key, never taken from the
command line so it does not show in process lists), ``LM_EVAL_INFOGAIN_JUDGE_MODEL``.

Inputs are lm-eval ``--log_samples`` files (``samples_<task>_<time>.jsonl``) of the two runs, matched by
``doc_id``. CLI::

    python -m lm_eval_infogain.scoring.judge --candidate A.jsonl --baseline B.jsonl -o verdicts.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["JudgeConfig", "JudgeError", "Sample", "read_samples", "judge_pair", "win_rate", "main"]

URL_VAR, KEY_VAR, MODEL_VAR = "LM_EVAL_INFOGAIN_JUDGE_URL", "LM_EVAL_INFOGAIN_JUDGE_KEY", "LM_EVAL_INFOGAIN_JUDGE_MODEL"

SYSTEM_PROMPT = (
    "You are an impartial judge of creative writing. Compare two stories written for the same prompt on "
    "creativity, coherence, fluency and how well they follow the prompt. Ignore their order and length as such. "
    "Reply with a short reason, then the verdict on the last line: [[A]] if story A is better, [[B]] if story B "
    "is better, [[C]] for a tie."
)
_VERDICT = re.compile(r"\[\[([ABC])\]\]")


class JudgeError(RuntimeError):
    """The judge endpoint is not configured, unreachable, or answered something unusable."""


@dataclass(frozen=True)
class JudgeConfig:
    url: str
    model: str
    key: str | None = None
    timeout_s: float = 120.0
    max_tokens: int = 512

    @classmethod
    def from_env(cls, url: str | None = None, model: str | None = None) -> "JudgeConfig":
        url = url or os.environ.get(URL_VAR)
        model = model or os.environ.get(MODEL_VAR)
        if not url or not model:
            raise JudgeError(f"set {URL_VAR} and {MODEL_VAR} (and {KEY_VAR} if the endpoint needs a key)")
        return cls(url=url, model=model, key=os.environ.get(KEY_VAR) or None)

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"


@dataclass(frozen=True)
class Sample:
    doc_id: int
    prompt: str
    response: str


def _response_text(row: dict) -> str:
    filtered = row.get("filtered_resps")
    if filtered:
        value = filtered[0]
        return value[0] if isinstance(value, list) else str(value)
    return str(row["resps"][0][0])


def read_samples(path: str | Path) -> dict[int, Sample]:
    """lm-eval ``--log_samples`` JSONL → {doc_id: Sample}; the first row of a doc_id wins."""
    samples: dict[int, Sample] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            doc_id = int(row["doc_id"])
            if doc_id in samples:
                continue
            doc = row.get("doc") or {}
            prompt = doc.get("prompt") or row["arguments"][0][0]
            samples[doc_id] = Sample(doc_id, str(prompt), _response_text(row))
    return samples


def _ask(config: JudgeConfig, prompt: str, story_a: str, story_b: str) -> str:
    """One judgement: 'A', 'B' or 'C' (tie)."""
    user = f"[Prompt]\n{prompt}\n\n[Story A]\n{story_a}\n\n[Story B]\n{story_b}\n\nWhich story is better?"
    body = json.dumps({
        "model": config.model,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
        "temperature": 0.0,
        "max_tokens": config.max_tokens,
    }).encode()
    headers = {"Content-Type": "application/json"}
    if config.key:
        headers["Authorization"] = f"Bearer {config.key}"
    request = urllib.request.Request(config.endpoint, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=config.timeout_s) as reply:
            payload = json.loads(reply.read().decode())
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise JudgeError(f"judge request to {config.endpoint} failed: {exc}") from exc
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise JudgeError(f"judge reply has no choices[0].message.content: {str(payload)[:200]}") from exc
    verdicts = _VERDICT.findall(content or "")
    return verdicts[-1] if verdicts else "C"


def judge_pair(config: JudgeConfig, prompt: str, candidate: str, baseline: str) -> dict:
    """Judge both orders; 'win' / 'loss' only when they agree, else 'tie'."""
    first = _ask(config, prompt, candidate, baseline)  # candidate is A
    second = _ask(config, prompt, baseline, candidate)  # candidate is B
    if first == "A" and second == "B":
        outcome = "win"
    elif first == "B" and second == "A":
        outcome = "loss"
    else:
        outcome = "tie"
    return {"candidate_first": first, "candidate_second": second, "outcome": outcome}


@dataclass
class WinRate:
    pairs: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    missing_in_baseline: list[int] = field(default_factory=list)
    verdicts: dict[int, dict] = field(default_factory=dict)


def win_rate(candidate: dict[int, Sample], baseline: dict[int, Sample], config: JudgeConfig, *,
             workers: int = 4, limit: int | None = None) -> WinRate:
    """Pairwise win rate of ``candidate`` over ``baseline`` on the doc_ids both runs have."""
    shared = sorted(set(candidate) & set(baseline))
    if limit is not None:
        shared = shared[:limit]
    if not shared:
        raise JudgeError("the two sample files share no doc_id")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(
            lambda d: judge_pair(config, candidate[d].prompt, candidate[d].response, baseline[d].response), shared))
    verdicts = dict(zip(shared, outcomes))
    wins = sum(v["outcome"] == "win" for v in outcomes)
    losses = sum(v["outcome"] == "loss" for v in outcomes)
    ties = len(outcomes) - wins - losses
    return WinRate(len(outcomes), wins, losses, ties, (wins + 0.5 * ties) / len(outcomes),
                   sorted(set(candidate) - set(baseline)), verdicts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lm_eval_infogain.scoring.judge", description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", required=True, help="samples JSONL of the run being judged")
    parser.add_argument("--baseline", required=True, help="samples JSONL of the baseline run")
    parser.add_argument("-o", "--output", required=True, help="JSON file for the summary and per-doc verdicts")
    parser.add_argument("--url", help=f"judge base URL (default ${URL_VAR})")
    parser.add_argument("--model", help=f"judge model name (default ${MODEL_VAR})")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="judge only the first N shared doc_ids")
    args = parser.parse_args(argv)
    try:
        config = JudgeConfig.from_env(args.url, args.model)
        report = win_rate(read_samples(args.candidate), read_samples(args.baseline), config,
                          workers=args.workers, limit=args.limit)
    except (JudgeError, OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Path(args.output).write_text(json.dumps(asdict(report), indent=2))
    print(f"win rate {report.win_rate:.4f} over {report.pairs} pairs "
          f"({report.wins} wins, {report.losses} losses, {report.ties} ties)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
