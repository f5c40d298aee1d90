"""rmkit's verl reward function in `url=` mode: the calls verl's thread pool makes at once reach `rmkit serve`
as one request per gathered batch, and the rewards are the server model's offline rewards.

    .venv/bin/python -m pytest tests/integration/test_rl_remote.py -q
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import needs

needs("uvicorn", "serve")

from rmkit.integrations import verl  # noqa: E402
from rmkit.score.scorer import RewardScorer  # noqa: E402
from rmkit.serve.app import create_app  # noqa: E402
from rmkit.serve.config import ServeConfig  # noqa: E402
from test_serve_http import running  # noqa: E402

PROMPTS = [[{"role": "user", "content": "Jane has 12 apples. She gives 4 to Mark. How many now?"}],
           [{"role": "user", "content": "Hello! How can I help you today?"}]]
REPLIES = ["8", "Each gets 3 apples.", "The quick brown fox.", "Sure, here is a poem about the sea."]


def test_verl_url_mode_gathers_a_steps_concurrent_calls(tiny_llama, monkeypatch):
    scorer = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")
    monkeypatch.setattr(verl, "_CACHE", {})
    jobs = [(p, r) for p in PROMPTS for r in REPLIES]
    with running(create_app(scorer, ServeConfig(api_key="verl-key"))) as (url, _server, _thread):
        kw = {"url": url, "api_key": "verl-key", "batch_window_ms": 50}
        call = lambda j: verl.compute_score(data_source="d", solution_str=jobs[j][1], ground_truth=None,  # noqa: E731
                                            extra_info={"prompt": jobs[j][0]}, **kw)
        with ThreadPoolExecutor(6) as pool:  # verl's loop executor on a 2-core machine: min(32, cpus + 4)
            got = list(pool.map(call, range(len(jobs))))
        (gather, _), = verl._CACHE.values()
        requests = gather.source.requests
    want = [scorer.score([p + [{"role": "assistant", "content": r}]])[0] for p, r in jobs]
    assert [g["score"] for g in got] == pytest.approx(want, abs=1e-5)
    assert requests == gather.calls < len(jobs)  # one HTTP request per gathered batch, not one per rollout
