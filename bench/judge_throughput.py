"""Generative-judge throughput: RewardBench judged by SmolLM2-135M-Instruct through vLLM (CPU), rmkit vs
reward-bench's own loops (mirrored from `scripts/run_generative.py` / `run_generative_v2.py`), same model,
same prompts (the MT-Bench pair-v2 and rating prompts, `rmkit.evaluate.judging`), same sampling (greedy:
temperature 0, n=1, --max-tokens), same engine, one run.

    python bench/judge_throughput.py [--pairs 16] [--max-tokens 64] [--concurrency 16] [--modes endpoint ratings]

Pairs: a stratified sample of RewardBench v1 (filtered split, `$RMKIT_DATA_DIR`) among the pairs whose longer
MT-Bench prompt is at most --max-prompt-tokens tokens (the CPU prefills every token).

endpoint (the API path of run_generative.py): ONE vLLM OpenAI-compatible server in a subprocess
  (`python -m vllm.entrypoints.openai.api_server`, fp32, prefix caching on as vLLM's default).
  - reward-bench: `ThreadPoolExecutor(max_workers=10)` (its --num_threads default), `executor.submit` per
    pair; each `get_judgement` draws ONE answer order (its `np.random.rand() > 0.5`; drawn up front here from
    a seeded generator) and makes one blocking `client.chat.completions.create(model, messages, n=1,
    temperature=0, max_tokens)` with a fresh `OpenAI()` client per call, as its `chat_completion_openai`
    does (httpx sync when the openai package is missing), then `process_judgement` → 1 / 0 / 0.5.
  - rmkit: `judge_rewardbench(EndpointJudge(url, concurrency=C, cache=False), pairs)`: BOTH orders of every
    pair (2 requests per pair) on asyncio + httpx, at most C in flight, then the scoring with its intervals.
  items/s = pairs fully judged per second by that side's protocol (one order for reward-bench, two for
  rmkit: rmkit does twice the generation per item); requests/s = chat completions per second.
ratings (run_generative_v2.py --score_w_ratings, the local vLLM path): ONE in-process vLLM `LLM`, shared.
  RewardBench 2 is not under $RMKIT_DATA_DIR here, so the items are the same v1 pairs as best-of-2 items
  (chosen, rejected); each completion rated 1-10 alone with the rating prompt.
  - reward-bench: its `_get_vllm_rating` per completion, sequentially: `apply_chat_template(tokenize=False,
    add_generation_prompt=True)`, `tokenizer(prompt, add_special_tokens=False)`, ONE `llm.generate` of that
    one prompt, `.text.strip()`, the trailing-integer regex; an item scores (0 in winners) / len(winners).
  - rmkit: `judge_rewardbench2(VLLMJudge(...), items)`: every rating prompt in one `generate` call (vLLM's
    scheduler batches), then rewardbench2's scoring with intervals.
  items/s = items (2 ratings each) per second on both sides. score_mean may differ where both ratings
  are unparseable: reward-bench returns its best-of-4 constant 0.25, rmkit 1/k (0.5 for two completions).

Fairness: vLLM's prefix cache is emptied before every timed segment (the server's dev-mode
/reset_prefix_cache, `LLM.reset_prefix_cache()`), so no side reuses the other's prompts; the pairs are split
in two halves timed in the orders rmkit, reward-bench / reward-bench, rmkit, so that a busy machine's noise
hits both alike; one untimed warm-up request first. Neither side caches answers (rmkit: cache=False).
Answers of the two sides for the same prompt are compared and the agreement printed (greedy, same engine:
they should agree unless batching changes the fp32 sums). Prints `name: value` lines.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rmkit.data.schema import BestOfN
from rmkit.evaluate.judging import (
    judge_rewardbench,
    judge_rewardbench2,
    mtbench_messages,
    parse_mtbench,
    rating_messages,
)
from rmkit.evaluate.rewardbench import load_rewardbench, stratified_subsample
from rmkit.models.load import load_tokenizer, resolve_name
from rmkit.score.judge import EndpointJudge, VLLMJudge, _prompt_ids

MODEL = "smollm2-135m-instruct"
SERVED = "smollm2"
MAX_MODEL_LEN = 2048
KV_BYTES = 1 << 30  # ~23K tokens of SmolLM2-135M in fp32 (rmkit's CPU default)
RB_NUM_THREADS = 10  # run_generative.py --num_threads default
RATING_RE = re.compile(r"\b([1-9]|10)\b\s*$")  # run_generative_v2.py get_single_rating


def pick_pairs(n: int, max_prompt_tokens: int, seed: int):
    tok = load_tokenizer(resolve_name(MODEL))
    pairs = load_rewardbench()
    fits = [p for p in pairs if mtbench_messages(p, True) is not None
            and max(len(_prompt_ids(tok, mtbench_messages(p, f))) for f in (True, False)) <= max_prompt_tokens]
    return stratified_subsample(fits, n, seed) if n < len(fits) else fits, len(fits), len(pairs)


def halves(items: list) -> tuple[list, list]:
    return items[: len(items) // 2], items[len(items) // 2:]


# ---- endpoint mode ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path: str, log_path: Path):
    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", path, "--served-model-name",
           SERVED, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len",
           str(MAX_MODEL_LEN), "--kv-cache-memory-bytes", str(KV_BYTES), "--enforce-eager", "--seed", "0",
           "--disable-log-stats", "--uvicorn-log-level", "warning"]
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1"}  # for POST /reset_prefix_cache between segments
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the server is stopped
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    return proc, f"http://127.0.0.1:{port}", log


def wait_healthy(proc, url: str, log_path: Path, guard_s: float = 600.0) -> None:
    import httpx

    deadline = time.monotonic() + guard_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"vLLM's server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"vLLM's server not healthy after {guard_s:.0f} s")


def stop_server(proc, log) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server this script started, and its engine-core child
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    log.close()


def reset_server_cache(url: str) -> None:
    import httpx

    r = httpx.post(f"{url}/reset_prefix_cache", timeout=60)
    r.raise_for_status()


def rb_chat_completion(base_url: str, messages: list[dict], max_tokens: int) -> str:
    """reward-bench `chat_completion_openai`: a fresh client per call, n=1, temperature=0, max_tokens;
    "$ERROR$" when the call fails (its 25 retries never fire here: the local server answers)."""
    try:
        from openai import OpenAI
    except ImportError:
        OpenAI = None
    try:
        if OpenAI is not None:
            client = OpenAI(base_url=base_url + "/v1", api_key="EMPTY")
            response = client.chat.completions.create(model=SERVED, messages=messages, n=1, temperature=0,
                                                      max_tokens=max_tokens)
            return response.choices[0].message.content
        import httpx

        r = httpx.post(base_url + "/v1/chat/completions", timeout=600,
                       json={"model": SERVED, "messages": messages, "n": 1, "temperature": 0, "max_tokens": max_tokens})
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"]
    except Exception as e:  # noqa: BLE001 - reward-bench prints and answers "$ERROR$"
        print(f"reward-bench side: request failed: {e}", file=sys.stderr)
        return "$ERROR$"


def rb_generative_api(base_url: str, pairs, shuffled: list[bool], max_tokens: int):
    """run_generative.py's API path: a thread pool of --num_threads, one get_judgement per pair."""

    def get_judgement(i: int):
        # is_shuffled: the chosen answer shown second ("B" wins); messages as FastChat's "chatgpt" template
        # renders them: system, user (rmkit's mtbench_messages builds the same pair-v2 request)
        messages = mtbench_messages(pairs[i], not shuffled[i])
        winner_text, loser_text = ("B", "A") if shuffled[i] else ("A", "B")
        judgment = rb_chat_completion(base_url, messages, max_tokens)
        winner = parse_mtbench(judgment) or "error"
        return (1 if winner == winner_text else 0 if winner == loser_text else 0.5), judgment

    results = [None] * len(pairs)
    with ThreadPoolExecutor(max_workers=RB_NUM_THREADS) as executor:
        futures = {executor.submit(get_judgement, i): i for i in range(len(pairs))}
        for f, i in futures.items():
            results[i] = f.result()
    return results


def endpoint_mode(pairs, args) -> dict:
    path = str(resolve_name(MODEL))
    rng = np.random.default_rng(args.seed)
    shuffled = [bool(x) for x in rng.random(len(pairs)) > 0.5]
    log_path = Path(tempfile.mkdtemp(prefix="judge-bench-")) / "server.log"
    t0 = time.perf_counter()
    proc, url, log = start_server(path, log_path)
    try:
        wait_healthy(proc, url, log_path)
        print(f"endpoint.server_start_s: {time.perf_counter() - t0:.1f}")
        rb_chat_completion(url, [{"role": "user", "content": "Hello!"}], 4)  # warm-up, untimed

        times = {"rmkit": 0.0, "reward-bench": 0.0}
        rm_items, rb_results, rm_stats = [], [None] * len(pairs), {"asked": 0}
        (a, b) = halves(list(range(len(pairs))))
        for part, order in ((a, ("rmkit", "reward-bench")), (b, ("reward-bench", "rmkit"))):
            sub = [pairs[i] for i in part]
            for side in order:
                reset_server_cache(url)
                t = time.perf_counter()
                if side == "rmkit":
                    judge = EndpointJudge(url, SERVED, max_tokens=args.max_tokens, concurrency=args.concurrency,
                                          cache=False)
                    res = judge_rewardbench(judge, sub, n_boot=1000)
                    rm_items.extend(res["items"])
                    rm_stats["asked"] += judge.stats.get("asked", 0)
                    rm_stats["failed"] = rm_stats.get("failed", 0) + judge.stats.get("failed", 0)
                else:
                    for i, r in zip(part, rb_generative_api(url, sub, [shuffled[i] for i in part], args.max_tokens)):
                        rb_results[i] = r
                times[side] += time.perf_counter() - t
    finally:
        stop_server(proc, log)

    n = len(pairs)
    rb_errors = sum(j == "$ERROR$" for _, j in rb_results)
    # agreement: reward-bench's verdict on its one order vs rmkit's verdict on that same order
    same = sum(parse_mtbench(j) == (it["verdict_chosen_second"] if s else it["verdict_chosen_first"])
               for (_, j), it, s in zip(rb_results, rm_items, shuffled))
    out = {
        "reward-bench": {"items_per_s": n / times["reward-bench"], "requests_per_s": n / times["reward-bench"],
                         "seconds": times["reward-bench"], "requests": n, "errors": rb_errors,
                         "score_mean": float(np.mean([s for s, _ in rb_results]))},
        "rmkit": {"items_per_s": n / times["rmkit"], "requests_per_s": rm_stats["asked"] / times["rmkit"],
                  "seconds": times["rmkit"], "requests": rm_stats["asked"], "errors": rm_stats.get("failed", 0),
                  "score_mean": float(np.mean([it["correct"] for it in rm_items]))},
        "verdicts_agree": f"{same}/{n}",
    }
    return out


# ---- ratings mode ----

def as_best_of_2(pairs) -> list[BestOfN]:
    return [BestOfN(id=p.id, source="rewardbench", prompt=p.prompt, completions=[p.chosen, p.rejected],
                    correct=[True, False], subset=p.category, meta={"num_correct": 1}) for p in pairs]


def rb_vllm_ratings(llm, tokenizer, items: list[BestOfN], max_tokens: int):
    """run_generative_v2.py --score_w_ratings on vLLM: per item, per completion, one generate."""
    from vllm import SamplingParams

    sampling_params = SamplingParams(n=1, temperature=0, top_p=1, max_tokens=max_tokens)
    scores, texts = [], []
    for it in items:
        ratings = []
        for k in range(len(it.completions)):
            messages = rating_messages(it, k, ties=False)  # user only: its system prompt is ""
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            out = llm.generate([{"prompt_token_ids": prompt_ids}], sampling_params=sampling_params, use_tqdm=False)
            raw = out[0].outputs[0].text.strip()
            texts.append(raw)
            m = RATING_RE.search(raw.strip()) if raw else None
            ratings.append(int(m.group(1)) if m else -1)
        valid = [r for r in ratings if r != -1]
        if not valid:
            scores.append(0.25)  # "all failed": effectively a tie (its 4-way constant)
            continue
        winners = [i for i, r in enumerate(ratings) if r == max(valid)]
        scores.append((0 in winners) / len(winners))
    return scores, texts


def ratings_mode(pairs, args) -> dict:
    items = as_best_of_2(pairs)
    t0 = time.perf_counter()
    judge = VLLMJudge(MODEL, max_tokens=args.max_tokens, dtype="float32", max_length=MAX_MODEL_LEN, cache=False,
                      kv_cache_memory_bytes=KV_BYTES)
    print(f"ratings.engine_start_s: {time.perf_counter() - t0:.1f}")
    try:
        judge.llm.generate([{"prompt_token_ids": [1, 2, 3]}], use_tqdm=False)  # warm-up, untimed
        times = {"rmkit": 0.0, "reward-bench": 0.0}
        rm_ratings, rb_scores, rb_texts, rm_credit = [], [], [], []
        a, b = halves(items)
        for part, order in ((a, ("rmkit", "reward-bench")), (b, ("reward-bench", "rmkit"))):
            for side in order:
                judge.llm.reset_prefix_cache()
                t = time.perf_counter()
                if side == "rmkit":
                    res = judge_rewardbench2(judge, part, n_boot=1000)
                    rm_ratings.extend(r for rec in res["items"] for r in rec["rewards"])
                    rm_credit.extend(rec["credit"] for rec in res["items"])
                else:
                    s, texts = rb_vllm_ratings(judge.llm, judge.tokenizer, part, args.max_tokens)
                    rb_scores.extend(s)
                    rb_texts.extend(texts)
                times[side] += time.perf_counter() - t
    finally:
        judge.close()
    rb_ratings = [float(int(m.group(1))) if (m := RATING_RE.search(x)) else -1.0 for x in rb_texts]
    n = len(items)
    return {
        "reward-bench": {"items_per_s": n / times["reward-bench"], "seconds": times["reward-bench"],
                         "generate_calls": 2 * n, "score_mean": float(np.mean(rb_scores))},
        "rmkit": {"items_per_s": n / times["rmkit"], "seconds": times["rmkit"], "generate_calls": 2,
                  "score_mean": float(np.mean(rm_credit))},
        "ratings_agree": f"{sum(x == y for x, y in zip(rb_ratings, rm_ratings))}/{2 * n}",
        "unparseable_ratings": f"{sum(r == -1 for r in rm_ratings)}/{2 * n}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-prompt-tokens", type=int, default=1024)
    ap.add_argument("--concurrency", type=int, default=16, help="rmkit EndpointJudge's requests in flight")
    ap.add_argument("--modes", nargs="+", default=["endpoint", "ratings"], choices=["endpoint", "ratings"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.max_prompt_tokens + args.max_tokens > MAX_MODEL_LEN:
        sys.exit(f"--max-prompt-tokens + --max-tokens must be <= {MAX_MODEL_LEN}")

    data = os.environ.get("RMKIT_DATA_DIR")
    if not data or not any((Path(data) / "reward-bench-2").glob("test.*")):
        print("ratings.note: RewardBench 2 is not under $RMKIT_DATA_DIR: the ratings mode rates the v1 pairs' "
              "two completions as best-of-2 items")
    pairs, fit, total = pick_pairs(args.pairs, args.max_prompt_tokens, args.seed)
    subsets = len({p.category for p in pairs})
    print(f"pairs: {len(pairs)} (stratified over {subsets} subsets; {fit} of {total} have MT-Bench prompts "
          f"<= {args.max_prompt_tokens} tokens)")
    print(f"max_tokens: {args.max_tokens}")
    for mode in args.modes:
        res = endpoint_mode(pairs, args) if mode == "endpoint" else ratings_mode(pairs, args)
        for side in ("reward-bench", "rmkit"):
            for k, v in res[side].items():
                print(f"{mode}.{side}.{k}: {v:.3f}" if isinstance(v, float) else f"{mode}.{side}.{k}: {v}")
        for k, v in res.items():
            if k not in ("reward-bench", "rmkit"):
                print(f"{mode}.{k}: {v}")
        print(f"{mode}.items_per_s_ratio (rmkit / reward-bench): "
              f"{res['rmkit']['items_per_s'] / res['reward-bench']['items_per_s']:.2f}x")


if __name__ == "__main__":
    main()
