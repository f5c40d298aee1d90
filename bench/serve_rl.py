"""OpenRLHF-shaped reward traffic: `rmkit serve` vs an OpenRLHF-`serve_rm`-style server, on loopback.

    nice -n 5 .venv/bin/python bench/serve_rl.py     # 16 prompts x G=8, 2 rounds, fp32: ~3.5 min on 2 idle cores
    nice -n 5 .venv/bin/python bench/serve_rl.py --policy-template none   # same ids: the 1e-4 reward check
    .venv/bin/python bench/serve_rl.py --prompts 16 --max-tokens 512 --dtype bfloat16 --source ultrafeedback

What OpenRLHF 0.11.2 sends (`SingleTurnAgentExecutor._fetch_rewards_via_http`): each finished rollout
POSTs `{"query": [q], "prompts": [p], "labels": [l]}` to /get_reward on a fresh aiohttp ClientSession
and reads `rewards`; `q` is the policy tokenizer's decode of prompt + response ids with special tokens:
the chat template's generation prompt + the reply + eos. Here: P real prompts (HH-RLHF helpful-base
test or the UltraFeedback sample, built as bench/grpo_reward.py builds GRPO groups), G completions each,
all P x G requests shuffled (a GRPO batch's rollouts finishing in mixed order) and sent by 64
closed-loop aiohttp clients. The two servers run as subprocesses (own GIL, own process), same model,
dtype and torch threads:

- **rmkit**: what `rmkit serve` builds (RewardScorer.from_pretrained + ServeConfig + create_app under
  uvicorn, the CLI's defaults), plus GET /bench/stats (the scorer's counters and the tokens submitted),
  from which the share of tokens prefix sharing did not recompute is computed.
- **serve_rm**: bench/serve_rm_baseline.py (one request, one padded forward, inside the async handler).

Rounds alternate which server goes first (A/B), after an untimed warm-up. Every reward of every round
is compared between the servers. Under `--policy-template none` both score the query's own tokens (fp32:
they must agree within 1e-4); under rmkit's default `auto` it re-renders the ChatML query with the RM's
template (which ends `<|im_end|>\n`, the decoded rollout `<|im_end|>`), so the rewards differ by design.
Prints `name: value` lines; the last is the headline ratio (rmkit requests/s over serve_rm's).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from grpo_reward import SOURCES, grpo_batches  # noqa: E402
from serve_load import batch_stats, free_port, pct, start  # noqa: E402

OPENRLHF_TIMEOUT_S = 180.0  # aiohttp.ClientTimeout(total=180) in _fetch_rewards_via_http (then it retries)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-rm")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--source", choices=sorted(SOURCES), default="hh")
    p.add_argument("--prompts", type=int, default=16, help="prompts per round (each with G completions)")
    p.add_argument("--group", type=int, default=8, help="G: completions per prompt")
    p.add_argument("--clients", type=int, default=64, help="concurrent clients")
    p.add_argument("--rounds", type=int, default=2, help="A/B rounds (order alternates)")
    p.add_argument("--max-tokens", type=int, default=256,
                   help="keep prompt + completion up to this (256: the default run fits ~5 min on 2 shared cores)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per server (OMP_NUM_THREADS)")
    p.add_argument("--batch-tokens", type=int, default=8192, help="rmkit serve --batch-tokens (its default)")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="client timeout; latencies over OpenRLHF's own 180 s are counted, not cut")
    p.add_argument("--policy-template", default="auto",
                   help="rmkit serve's: auto (its default) re-renders a ChatML query with the RM's template, "
                        "none scores the query's own tokens, as serve_rm does (the 1e-4 check needs none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=os.environ.get("RMKIT_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--serve-rmkit", type=int, default=None, help=argparse.SUPPRESS)  # internal: server mode
    return p.parse_args()


def serve_rmkit(args) -> None:
    """The rmkit arm's process: `rmkit serve --model M --dtype D --device cpu` plus GET /bench/stats."""
    import uvicorn

    from rmkit.score.scorer import RewardScorer
    from rmkit.serve.app import create_app
    from rmkit.serve.config import ServeConfig

    scorer = RewardScorer.from_pretrained(args.model, dtype=args.dtype, device="cpu",
                                          batch_tokens=args.batch_tokens, max_batch_size=64)
    app = create_app(scorer, ServeConfig(host="127.0.0.1", port=args.serve_rmkit, model_name=args.model,
                                         policy_template=args.policy_template))
    batcher, submitted = app.state.rmkit.batcher, {"tokens": 0}
    score_fn = batcher.score_fn  # shared_score_fn(scorer) where the scorer shares prefixes

    def counted(seqs):
        submitted["tokens"] += sum(len(s) for s in seqs)
        return score_fn(seqs)
    batcher.score_fn = counted

    @app.get("/bench/stats")
    async def stats():
        return {**scorer.stats, "tokens_submitted": submitted["tokens"], "shares": scorer.shares}

    uvicorn.run(app, host="127.0.0.1", port=args.serve_rmkit, log_level="warning")


def rollouts(args, tok) -> tuple[list[tuple[str, str]], dict[str, float]]:
    """(query, prompt) per rollout, prompt-major (request i belongs to prompt i // G), and token counts."""
    from rmkit.data import load_pairs

    pairs = load_pairs(str(Path(args.data) / SOURCES[args.source]), errors="skip")
    [(prompts, completions)] = grpo_batches(pairs, tok, batches=1, per_batch=args.prompts, group=args.group,
                                            max_tokens=args.max_tokens, seed=args.seed)
    out, lengths, repeated = [], [], 0
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        assert len(completion) == 1 and completion[0]["role"] == "assistant"
        head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        query = head + completion[0]["content"] + tok.eos_token  # decode(prompt_ids + response_ids)
        out.append((query, head))
        lengths.append(len(tok(query, add_special_tokens=False)["input_ids"]))
        if i % args.group:  # a sibling's repeat of the prompt (template header included)
            repeated += len(tok(head, add_special_tokens=False)["input_ids"])
    return out, {"total": sum(lengths), "mean": sum(lengths) / len(lengths), "max": max(lengths),
                 "repeat_share": repeated / sum(lengths)}


async def post(url: str, query: str, prompt: str, timeout: float) -> float:
    """One rollout's reward, as OpenRLHF fetches it: a new aiohttp ClientSession per request."""
    import aiohttp

    payload = {"query": [query], "prompts": [prompt], "labels": [""]}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(f"{url}/get_reward", json=payload) as response:
            response.raise_for_status()
            return (await response.json())["rewards"][0]


async def load(url: str, reqs, order: list[int], clients: int, timeout: float):
    """`clients` closed-loop clients over `order`: (wall seconds, latencies, {request index: reward})."""
    todo, lats, rewards = iter(order), [], {}

    async def client():
        for i in todo:
            t = time.perf_counter()
            rewards[i] = await post(url, *reqs[i], timeout)
            lats.append(time.perf_counter() - t)
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - t0, lats, rewards


def stats(url: str) -> dict:
    return httpx.get(f"{url}/bench/stats", timeout=30).json()


def saved_share(before: dict, after: dict) -> float:
    """Tokens prefix sharing did not recompute, over all tokens submitted to the scorer."""
    d = {k: after.get(k, 0) - before.get(k, 0) for k in ("tokens_unshared", "tokens_shared", "tokens_submitted")}
    return (d["tokens_unshared"] - d["tokens_shared"]) / max(d["tokens_submitted"], 1)


def run_rounds(args, urls: dict[str, str], reqs) -> dict[str, dict]:
    res = {name: {"wall": [], "lats": [], "rewards": [], "saved": []} for name in urls}
    for rnd in range(args.rounds):
        order = list(range(len(reqs)))
        random.Random(args.seed + 1 + rnd).shuffle(order)  # the same mixed arrival order for both arms
        for name in (("rmkit", "serve_rm") if rnd % 2 == 0 else ("serve_rm", "rmkit")):
            before = stats(urls[name]) if name == "rmkit" else None
            wall, lats, rewards = asyncio.run(load(urls[name], reqs, order, args.clients, args.timeout))
            r = res[name]
            r["wall"].append(wall), r["lats"].extend(lats), r["rewards"].append(rewards)
            if before is not None:
                r["saved"].append(saved_share(before, stats(urls[name])))
            print(f"round{rnd}_{name}_rps: {len(order) / wall:.2f}", flush=True)
    return res


def main() -> None:
    args = parse_args()
    if args.serve_rmkit is not None:
        return serve_rmkit(args)
    import torch
    from transformers import AutoTokenizer

    from rmkit.models.load import resolve_name

    model_path = resolve_name(args.model)
    reqs, tokens = rollouts(args, AutoTokenizer.from_pretrained(model_path))
    print(f"machine: {os.cpu_count()} CPUs (shared), torch {torch.__version__}, {args.threads} torch "
          f"thread(s) per server, loopback, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"model: {args.model} ({args.dtype})")
    print(f"traffic: {args.source}, {args.prompts} prompts x G={args.group} = {len(reqs)} requests per arm "
          f"per round, 1 query each, {args.clients} aiohttp clients, {args.rounds} rounds (A/B alternating)")
    print(f"query_tokens_mean_max: {tokens['mean']:.0f} / {tokens['max']}")
    print(f"prompt_repeat_share_of_tokens: {tokens['repeat_share']:.3f} (upper bound on prefix sharing)")
    ports = {"rmkit": free_port(), "serve_rm": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    py, here, logs = sys.executable, str(Path(__file__).resolve()), Path(os.environ.get("TMPDIR", "/tmp"))
    cmds = {"rmkit": [py, here, "--serve-rmkit", str(ports["rmkit"]), "--model", args.model, "--dtype",
                      args.dtype, "--batch-tokens", str(args.batch_tokens), "--policy-template",
                      args.policy_template],
            "serve_rm": [py, str(ROOT / "bench" / "serve_rm_baseline.py"), "--model", model_path, "--port",
                         str(ports["serve_rm"])] + (["--bf16"] if args.dtype == "bfloat16" else [])}
    procs = {}
    try:
        for name, cmd in cmds.items():
            procs[name] = start(cmd, urls[name], logs / f"serve_rl_{name}.log", args.threads)
        print(f"rmkit_shares_prefixes: {stats(urls['rmkit'])['shares']}")
        for url in urls.values():  # untimed warm-up: one request alone, then 8 at once
            asyncio.run(load(url, reqs, [0], 1, args.timeout))
            asyncio.run(load(url, reqs, list(range(min(8, len(reqs)))), 8, args.timeout))
        res = run_rounds(args, urls, reqs)
        report(args, res, len(reqs), batch_stats(urls["rmkit"]))
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(60)


def report(args, res: dict, n: int, mean_batch: str) -> None:
    rps = {name: n * args.rounds / sum(r["wall"]) for name, r in res.items()}
    p99 = {name: pct(r["lats"], 99) for name, r in res.items()}
    for name, r in res.items():
        print(f"{name}_requests_per_s: {rps[name]:.2f} (rounds: {', '.join(f'{n / w:.2f}' for w in r['wall'])})")
        print(f"{name}_p50_ms: {pct(r['lats'], 50) * 1000:.0f}")
        print(f"{name}_p99_ms: {p99[name] * 1000:.0f}")
        print(f"{name}_over_openrlhf_180s_timeout: {sum(x > OPENRLHF_TIMEOUT_S for x in r['lats'])}")
    print(f"rmkit_mean_batch_size: {mean_batch} (warm-up included)")
    saved = res["rmkit"]["saved"]
    print(f"rmkit_prefix_tokens_saved: {sum(saved) / len(saved):.3f} (rounds: {', '.join(f'{s:.3f}' for s in saved)})")
    diffs = [abs(a[i] - b[i]) for a, b in zip(res["rmkit"]["rewards"], res["serve_rm"]["rewards"]) for i in a]
    verdict = ("yes" if max(diffs) <= 1e-4 else "NO") if args.dtype == "float32" else "n/a (bf16)"
    if args.policy_template != "none":
        verdict = (f"n/a (policy_template={args.policy_template}: rmkit scores the RM's own rendering, "
                   "serve_rm the query as sent; --policy-template none compares the same ids)")
    print(f"max_abs_reward_diff: {max(diffs):.2e} over {len(diffs)} rewards; within 1e-4: {verdict}")
    print(f"p99_ratio_serve_rm/rmkit: {p99['serve_rm'] / p99['rmkit']:.2f}")
    ratios = ", ".join(f"{b / a:.2f}" for a, b in zip(res["rmkit"]["wall"], res["serve_rm"]["wall"]))
    print(f"throughput ratio rmkit/serve_rm: {rps['rmkit'] / rps['serve_rm']:.2f} (rounds: {ratios})")


if __name__ == "__main__":
    main()
