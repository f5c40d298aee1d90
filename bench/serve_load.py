"""Load benchmark: `rmkit serve` (dynamic batching) vs an OpenRLHF-serve_rm-style baseline, on loopback.

    .venv/bin/python bench/serve_load.py                        # smollm2-135m, bf16, about 4-6 minutes
    .venv/bin/python bench/serve_load.py --levels 1,8 --requests 16,48 --overload-seconds 10   # quicker

Both servers run as subprocesses on 127.0.0.1 with the same model, dtype and thread count, and get the
same short real texts (RewardBench prompt + reply, rendered with the chat template, POSTed one per
request to /get_reward). At 1, 8 and 32 closed-loop clients the runs alternate rmkit / baseline and
report requests/s, p50 and p99 latency. Then rmkit serve gets an open-loop load of 4x its throughput
at the highest level for 30 s: every request must come back 200 or 503 (none hangs or is lost), and
the server's RSS and queue depth are sampled. Prints `name: value` lines; the last is the headline ratio.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--levels", default="1,8,32", help="concurrent clients")
    p.add_argument("--requests", default="24,64,160", help="requests per level (per server and round)")
    p.add_argument("--rounds", type=int, default=2, help="A/B rounds per level (order alternates)")
    p.add_argument("--max-tokens", type=int, default=160, help="keep texts up to this many tokens")
    p.add_argument("--batch-tokens", type=int, default=2048, help="rmkit serve --batch-tokens")
    p.add_argument("--max-queue", type=int, default=32,
                   help="rmkit serve --max-queue: about 3 s of work on 2 shared CPU cores")
    p.add_argument("--pool-batches", type=int, default=2, help="rmkit serve --pool-batches")
    p.add_argument("--overload-factor", type=float, default=4.0)
    p.add_argument("--overload-seconds", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per server (OMP_NUM_THREADS); 1 is robust on shared CPUs")
    p.add_argument("--timeout", type=float, default=30.0, help="client timeout: longer counts as hung")
    p.add_argument("--data", default=os.environ.get("RMKIT_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    return p.parse_args()


def load_texts(data_dir: str, tokenizer, max_tokens: int, limit: int = 400) -> list[str]:
    """RewardBench prompt + chosen / rejected, as fully formatted chat text, short ones only."""
    texts: list[str] = []
    with gzip.open(Path(data_dir) / "reward-bench" / "filtered.jsonl.gz", "rt") as f:
        for line in f:
            row = json.loads(line)
            for reply in (row["chosen"], row["rejected"]):
                msgs = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": reply}]
                text = tokenizer.apply_chat_template(msgs, tokenize=False)
                if len(tokenizer(text)["input_ids"]) <= max_tokens:
                    texts.append(text)
            if len(texts) >= limit:
                break
    random.Random(0).shuffle(texts)
    return texts


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], url: str, log: Path, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    for _ in range(1200):
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:4]} exited; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{cmd[:4]} did not come up; see {log}")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q / 100 * len(xs) + 0.5)) - 1))] if xs else float("nan")


async def one(url: str, text: str, timeout: float) -> tuple[float, int]:
    """POST /get_reward on a fresh connection with a minimal raw HTTP/1.1 client (Connection: close).

    A hand-written client costs the shared CPUs far less than a pooled HTTP library at hundreds of
    concurrent requests, so the latencies measured are the server's, not the load generator's."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"query": [text]}).encode()
    head = (f"POST /get_reward HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    t = time.perf_counter()

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(head + body)
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
    data = await asyncio.wait_for(exchange(), timeout)
    return time.perf_counter() - t, int(data.split(b" ", 2)[1])


async def closed_loop(url: str, texts: list[str], clients: int, total: int, timeout: float):
    """`clients` clients, each sending its next request as soon as the last one is answered."""
    counter, lats, statuses = iter(range(total)), [], []

    async def worker():
        for i in counter:
            lat, status = await one(url, texts[i % len(texts)], timeout)
            lats.append(lat)
            statuses.append(status)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    assert all(s == 200 for s in statuses), f"non-200 under normal load: {set(statuses)}"
    return total / wall, lats


async def warm_up(url: str, texts: list[str], timeout: float) -> None:
    """Batches of every size the run will see, so one-off kernel set-up is not measured."""
    for n in (1, 4, 16, 32):
        await asyncio.gather(*(one(url, texts[i], timeout) for i in range(n)))


async def sample(url: str, pid: int, stop: asyncio.Event, out: dict) -> None:
    """Every 0.5 s: server RSS, queue depth from /metrics, and /health latency."""
    proc = psutil.Process(pid)
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            out["rss"].append(proc.memory_info().rss / 2**20)
            t = time.perf_counter()
            h = await client.get(f"{url}/health")
            out["health_s"].append(time.perf_counter() - t)
            out["queue"].append(h.json()["queue_depth"])
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass


async def overload(url: str, pid: int, texts: list[str], rate: float, seconds: float, timeout: float) -> dict:
    """Open loop at `rate` req/s for `seconds`: count 200s, 503s, other answers, and hangs / losses."""
    res = {"rss": [], "queue": [], "health_s": [], "codes": [], "lat_ok": [], "failed": 0}
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(url, pid, stop, res))
    async def fire(i: int):
        try:
            lat, code = await one(url, texts[i % len(texts)], timeout)
            res["codes"].append(code)
            if code == 200:
                res["lat_ok"].append(lat)
        except (OSError, asyncio.TimeoutError, IndexError, ValueError):  # hung, dropped or garbled
            res["failed"] += 1
    t0, tasks, i = time.perf_counter(), [], 0
    while (now := time.perf_counter() - t0) < seconds:
        while i < rate * now:
            tasks.append(asyncio.create_task(fire(i)))
            i += 1
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    res["elapsed"] = time.perf_counter() - t0  # until the last answer
    stop.set()
    await sampler
    res["sent"] = i
    return res


def report_overload(res: dict, rate: float, seconds: float, max_queue: int) -> None:
    codes = res["codes"]
    ok, refused = codes.count(200), codes.count(503)
    print(f"overload_offered_rps: {rate:.1f}")
    print(f"overload_sent: {res['sent']}")
    print(f"overload_200: {ok}")
    print(f"overload_503: {refused}")
    print(f"overload_other_status: {len(codes) - ok - refused}")
    print(f"overload_hung_or_lost: {res['sent'] - len(codes)}")  # timed out or connection dropped
    print(f"overload_goodput_rps: {ok / res['elapsed']:.1f} (200s over {res['elapsed']:.1f} s, to the last answer)")
    print(f"overload_p50_ms_of_200s: {pct(res['lat_ok'], 50) * 1000:.0f}")
    print(f"overload_p99_ms_of_200s: {pct(res['lat_ok'], 99) * 1000:.0f}")
    print(f"overload_health_max_ms: {max(res['health_s']) * 1000:.0f}")
    print(f"overload_queue_depth_max: {max(res['queue'])} (max_queue={max_queue})")
    rss = res["rss"]
    print(f"overload_rss_mb_start_peak_end: {rss[0]:.0f} / {max(rss):.0f} / {rss[-1]:.0f}")


def servers(args, model_path: str, ports: tuple[int, int]) -> dict[str, list[str]]:
    py = sys.executable
    rmkit = [py, "-m", "rmkit.cli", "serve", "--model", args.model, "--port", str(ports[0]),
             "--dtype", args.dtype, "--device", "cpu", "--batch-tokens", str(args.batch_tokens),
             "--max-batch-size", "64", "--max-queue", str(args.max_queue),
             "--max-conversations", str(min(256, args.max_queue)), "--pool-batches", str(args.pool_batches),
             "--log-level", "warning"]
    base = [py, str(ROOT / "bench" / "serve_rm_baseline.py"), "--model", model_path, "--port", str(ports[1])]
    return {"rmkit": rmkit, "baseline": base + (["--bf16"] if args.dtype == "bfloat16" else [])}


def measure_levels(args, urls: dict[str, str], texts: list[str]) -> dict[tuple[str, int], tuple]:
    levels = [int(x) for x in args.levels.split(",")]
    totals = [int(x) for x in args.requests.split(",")]
    results: dict[tuple[str, int], tuple] = {}
    for clients, total in zip(levels, totals):
        for rnd in range(args.rounds):
            order = ("rmkit", "baseline") if rnd % 2 == 0 else ("baseline", "rmkit")
            for name in order:
                rps, lats = asyncio.run(closed_loop(urls[name], texts, clients, total, args.timeout))
                prev = results.get((name, clients), (0.0, []))
                results[(name, clients)] = (prev[0] + rps / args.rounds, prev[1] + lats)
        for name in ("rmkit", "baseline"):
            rps, lats = results[(name, clients)]
            print(f"{name}_c{clients}_rps: {rps:.2f}")
            print(f"{name}_c{clients}_p50_ms: {pct(lats, 50) * 1000:.0f}")
            print(f"{name}_c{clients}_p99_ms: {pct(lats, 99) * 1000:.0f}")
        sys.stdout.flush()
    return results


def batch_stats(url: str) -> str:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("rmkit_batch_size_"))
    vals = {k: float(v) for k, v in pairs if k in ("rmkit_batch_size_sum", "rmkit_batch_size_count")}
    return f"{vals['rmkit_batch_size_sum'] / max(vals['rmkit_batch_size_count'], 1):.1f}"


def main() -> None:
    args = parse_args()
    import torch
    from transformers import AutoTokenizer

    from rmkit.models.load import resolve_name

    model_path = resolve_name(args.model)
    texts = load_texts(args.data, AutoTokenizer.from_pretrained(model_path), args.max_tokens)
    lengths = [len(t) for t in texts]
    print(f"machine: {os.cpu_count()} CPUs (shared), torch {torch.__version__}, {args.dtype}, "
          f"{args.threads} torch thread(s) per server, loopback")
    print(f"texts: {len(texts)} RewardBench prompt+reply, <= {args.max_tokens} tokens, "
          f"mean {sum(lengths) / len(lengths):.0f} chars")
    ports = (free_port(), free_port())
    urls = {"rmkit": f"http://127.0.0.1:{ports[0]}", "baseline": f"http://127.0.0.1:{ports[1]}"}
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    procs = {name: start(cmd, urls[name], logs / f"serve_load_{name}.log", args.threads)
             for name, cmd in servers(args, model_path, ports).items()}
    try:
        for url in urls.values():
            asyncio.run(warm_up(url, texts, args.timeout))
        results = measure_levels(args, urls, texts)
        top = max(int(x) for x in args.levels.split(","))
        print(f"rmkit_mean_batch_size: {batch_stats(urls['rmkit'])}")
        rate = args.overload_factor * results[("rmkit", top)][0]
        res = asyncio.run(overload(urls["rmkit"], procs["rmkit"].pid, texts, rate, args.overload_seconds,
                                   args.timeout))
        report_overload(res, rate, args.overload_seconds, args.max_queue)
        after = httpx.post(f"{urls['rmkit']}/get_reward", json={"query": texts[:1]}, timeout=30)
        print(f"after_overload_status: {after.status_code}")
        (r_rps, r_lat), (b_rps, b_lat) = results[("rmkit", top)], results[("baseline", top)]
        print(f"p99_ratio_baseline_over_rmkit_c{top}: {pct(b_lat, 99) / pct(r_lat, 99):.2f}")
        print(f"throughput_ratio_rmkit_over_baseline_c{top}: {r_rps / b_rps:.2f}")
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
