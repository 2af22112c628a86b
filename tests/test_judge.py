"""Pairwise judge against a deterministic local OpenAI-compatible server (both A/B orders)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lm_eval_infogain.scoring import judge


class _FakeJudge(BaseHTTPRequestHandler):
    """Prefers the story with more words ([[A]]/[[B]]); in 'biased' mode always answers [[A]]."""

    mode = "fair"
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        user = body["messages"][-1]["content"]
        a = re.search(r"\[Story A\]\n(.*?)\n\n\[Story B\]", user, re.S).group(1)
        b = re.search(r"\[Story B\]\n(.*?)\n\nWhich story", user, re.S).group(1)
        if type(self).mode == "biased":
            verdict = "A"
        else:
            verdict = "A" if len(a.split()) > len(b.split()) else "B" if len(b.split()) > len(a.split()) else "C"
        reply = {"choices": [{"message": {"role": "assistant", "content": f"Reason.\n[[{verdict}]]"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture()
def server():
    _FakeJudge.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _FakeJudge)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _write_samples(path, responses: dict[int, str]) -> None:
    rows = [{"doc_id": i, "doc": {"prompt": f"Prompt {i}"}, "arguments": [[f"Prompt {i}", {}]],
             "resps": [[text]], "filtered_resps": [text], "filter": "none"} for i, text in responses.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _runs(tmp_path):
    cand = {i: ("long story " * 5 if i < 6 else "short") for i in range(10)}
    cand[10] = "only in the candidate run"
    base = {i: ("long story " * 3 if i < 6 else "a longer baseline story") for i in range(10)}
    _write_samples(tmp_path / "cand.jsonl", cand)
    _write_samples(tmp_path / "base.jsonl", base)
    return tmp_path / "cand.jsonl", tmp_path / "base.jsonl"


def test_cli_win_rate_both_orders(server, tmp_path, monkeypatch):
    cand, base = _runs(tmp_path)
    monkeypatch.setenv(judge.URL_VAR, server)
    monkeypatch.setenv(judge.KEY_VAR, "test-key")
    monkeypatch.setenv(judge.MODEL_VAR, "judge-model")
    out = tmp_path / "verdicts.json"
    assert judge.main(["--candidate", str(cand), "--baseline", str(base), "-o", str(out), "--workers", "2"]) == 0
    report = json.loads(out.read_text())
    assert (report["pairs"], report["wins"], report["losses"], report["ties"]) == (10, 6, 4, 0)
    assert report["win_rate"] == pytest.approx(0.6)
    assert report["missing_in_baseline"] == [10]
    assert len(_FakeJudge.seen) == 20  # every pair judged in both orders
    assert all(s["path"] == "/v1/chat/completions" and s["auth"] == "Bearer test-key" for s in _FakeJudge.seen)
    assert {s["body"]["model"] for s in _FakeJudge.seen} == {"judge-model"}
    assert report["verdicts"]["0"] == {"candidate_first": "A", "candidate_second": "B", "outcome": "win"}


def test_position_bias_becomes_ties(server, tmp_path, monkeypatch):
    cand, base = _runs(tmp_path)
    monkeypatch.setattr(_FakeJudge, "mode", "biased")
    config = judge.JudgeConfig(url=server + "/chat/completions", model="m")
    report = judge.win_rate(judge.read_samples(cand), judge.read_samples(base), config, workers=2)
    assert (report.wins, report.losses, report.ties, report.win_rate) == (0, 0, 10, 0.5)


def test_missing_configuration_and_unreachable_endpoint(tmp_path, monkeypatch):
    cand, base = _runs(tmp_path)
    for var in (judge.URL_VAR, judge.MODEL_VAR, judge.KEY_VAR):
        monkeypatch.delenv(var, raising=False)
    assert judge.main(["--candidate", str(cand), "--baseline", str(base), "-o", str(tmp_path / "o.json")]) == 2
    dead = judge.JudgeConfig(url="http://127.0.0.1:9/v1", model="m", timeout_s=2)
    with pytest.raises(judge.JudgeError, match="failed"):
        judge.win_rate(judge.read_samples(cand), judge.read_samples(base), dead, limit=1)
