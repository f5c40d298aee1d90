"""Decontamination throughput: rmkit vs the sklearn CountVectorizer reference, same data, one run.

    RMKIT_DATA_DIR=../shared/data .venv/bin/python bench/decontam_throughput.py \
        --sizes 100000 1000000 --workers 2 [--reference-max 1000000]

The training side is the real contamination mix (LLMBar's five sets = RewardBench llmbar-*, LLMBar's
MT-Bench / FairEval / LLMEval² pairs, XSTest completion pairs, the four HH-RLHF test splits and the
UltraFeedback sample) resampled with replacement (seed 0) to each size, written as canonical jsonl;
the benchmark side is RewardBench `filtered` (first user turn). Rule: a pair is flagged when its first
user turn shares a 13-gram with a benchmark prompt.

- rmkit: `decontaminate()` end to end (read, parse, match, write clean + removed + report) with
  `--workers` processes; once with every row parsed and checked (the default, the headline) and once
  with `check_rows=False` (only each row's prompt checked; kept rows written back unchecked). A
  local jsonl of canonical rows takes rmkit's block path: the main process reads blocks of lines,
  workers parse (orjson when installed) and check every row and return only the rows that go, and
  kept rows are copied to the clean file byte for byte from the block.
- reference (the Skywork v0.2 / gist method): `CountVectorizer(ngram_range=(13, 13))` count matrices
  of benchmark and training prompts, flagged when the dot product is above zero. It uses rmkit's
  tokenizer (`tokenizer=rmkit.decontam.ngrams.tokenizer("punct")`, lowercase, punctuation as tokens)
  instead of sklearn's default `\\b\\w\\w+\\b` pattern, so both define the same n-grams; it fits on
  the benchmark prompts only (n-grams absent from the benchmark add nothing to the dot product, and
  fitting 1M training prompts' 13-grams would not fit in memory). It reads the same jsonl file and
  writes nothing. One process (sklearn has no parallel transform).

Each method runs in its own child process; peak memory is the largest sum of RSS over the child's
process tree (sampled every 50 ms; pages the workers share, such as the fork server's imports, count
once per process, so rmkit's figure is an overestimate). Prints `name: value` lines; the last is the headline.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rmkit.data import PreferencePair, load_pairs
from rmkit.data.sources.xstest import load_xstest_pairs

LLMBAR = ["LLMBar_Natural", "LLMBar_Adversarial_Neighbor", "LLMBar_Adversarial_GPTInst",
          "LLMBar_Adversarial_GPTOut", "LLMBar_Adversarial_Manual", "Processed_MT-Bench",
          "Processed_FairEval", "Processed_LLMEval2"]
HH = ["helpful-base", "harmless-base", "helpful-online", "helpful-rejection-sampled"]


def base_mix(data: Path) -> list[PreferencePair]:
    pairs = []
    for name in LLMBAR:
        for i, p in enumerate(load_pairs(data / "llmbar" / f"{name}.json", errors="skip")):
            p.id, p.source = f"{name}:{i}", name
            pairs.append(p)
    pairs += load_xstest_pairs(data / "xstest")
    for split in HH:
        pairs += load_pairs(data / "hh-rlhf" / split / "test.jsonl.gz", errors="skip")
    for split in ("train_clean", "eval_clean"):
        pairs += load_pairs(data / "ultrafeedback-binarized-sample" / f"{split}.jsonl.gz",
                            errors="skip")
    return pairs


def write_resampled(pairs: list[PreferencePair], n: int, path: Path, seed: int = 0) -> None:
    bodies = []
    for p in pairs:
        d = p.to_dict()
        d.pop("id")
        bodies.append(json.dumps(d, ensure_ascii=False)[1:])
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for k in range(n):
            f.write(f'{{"id": "r{k}", {bodies[rng.randrange(len(bodies))]}\n')


def run_rmkit(train: str, out: str, workers: int, check_rows: bool) -> dict:
    from rmkit.decontam import DecontamConfig, decontaminate

    t = time.perf_counter()
    report = decontaminate(DecontamConfig(train=train, against=["rewardbench"],
                                          output=f"{out}/clean.jsonl", removed=f"{out}/removed.jsonl",
                                          workers=workers, chunk_size=2000, check_rows=check_rows))
    seconds = time.perf_counter() - t
    with open(f"{out}/removed.jsonl", encoding="utf-8") as f:
        flagged = sorted(json.loads(line)["id"] for line in f)
    return {"seconds": seconds, "flagged": flagged, "index_seconds": report.index_seconds}


def run_reference(train: str) -> dict:
    from sklearn.feature_extraction.text import CountVectorizer

    from rmkit.decontam.ngrams import pair_texts, tokenizer
    from rmkit.decontam.run import benchmark_pairs

    t = time.perf_counter()
    bench = [pair_texts(p)[0] for p in benchmark_pairs("rewardbench")]
    ids, texts = [], []
    with open(train, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ids.append(row["id"])
            texts.append(pair_texts(row)[0])
    vec = CountVectorizer(tokenizer=tokenizer("punct"), token_pattern=None, lowercase=False,
                          ngram_range=(13, 13))
    xb = vec.fit_transform(bench)
    xt = vec.transform(texts)
    hit = (xt @ xb.T).tocsr().getnnz(axis=1) > 0
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "flagged": sorted(i for i, h in zip(ids, hit) if h)}


def child(args) -> None:
    if args.child == "reference":
        result = run_reference(args.train)
    else:
        result = run_rmkit(args.train, args.out, args.workers, check_rows=args.child == "rmkit")
    Path(args.result).write_text(json.dumps(result))


def measured(method: str, train: Path, out: Path, workers: int) -> dict:
    """Run one method in a child process; add its peak tree RSS (MiB)."""
    import psutil

    result = out / f"{method}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", method, "--train", str(train),
           "--out", str(out), "--workers", str(workers), "--result", str(result)]
    proc = subprocess.Popen(cmd)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(f"{method} failed with status {proc.returncode}")
    data = json.loads(result.read_text())
    data["peak_mib"] = peak / 2**20
    return data


def _print(name: str, n: int, runs: list[dict]) -> dict:
    best = min(runs, key=lambda r: r["seconds"])
    print(f"{name}_{n}_seconds: {best['seconds']:.2f}")
    if len(runs) > 1:
        each = " ".join(f"{r['seconds']:.2f}" for r in runs)
        print(f"{name}_{n}_all_seconds: {each}")
    print(f"{name}_{n}_pairs_per_s: {n / best['seconds']:.0f}")
    print(f"{name}_{n}_peak_mib: {max(r['peak_mib'] for r in runs):.0f}")
    print(f"{name}_{n}_flagged: {len(best['flagged'])}")
    return best


def bench_size(pairs, n: int, args, tmp: Path) -> float | None:
    """Alternating A/B runs (rmkit, reference, rmkit, ...), best of each; then one run of rmkit
    with check_rows=False. rmkit's default mode (rows checked in full) is the headline."""
    train = tmp / f"train_{n}.jsonl"
    write_resampled(pairs, n, train)
    with_ref = n <= args.reference_max
    runs: dict[str, list[dict]] = {"rmkit": [], "reference": []}
    for _ in range(args.repeats):
        runs["rmkit"].append(measured("rmkit", train, tmp, args.workers))
        if with_ref:
            runs["reference"].append(measured("reference", train, tmp, 1))
    fast = measured("rmkit-prompt-only", train, tmp, args.workers)
    ours = _print("rmkit", n, runs["rmkit"])
    _print("rmkit_no_check_rows", n, [fast])
    speedup = None
    if with_ref:
        ref = _print("reference", n, runs["reference"])
        same = all(r["flagged"] == ref["flagged"] for r in [*runs["rmkit"], fast, *runs["reference"]])
        print(f"identical_flagged_sets_{n}: {same}")
        print(f"speedup_no_check_rows_{n}: {ref['seconds'] / fast['seconds']:.1f}")
        speedup = ref["seconds"] / ours["seconds"]
        print(f"speedup_{n}: {speedup:.1f}")
    else:
        print(f"reference_{n}: skipped (--reference-max {args.reference_max})")
    for f in (train, tmp / "clean.jsonl", tmp / "removed.jsonl"):
        f.unlink(missing_ok=True)
    sys.stdout.flush()
    return speedup


def _orjson_version() -> str:
    try:
        import orjson
    except ImportError:
        return "not installed (json)"
    return orjson.__version__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="alternating A/B runs per size")
    ap.add_argument("--reference-max", type=int, default=1_000_000)
    ap.add_argument("--tmp", default=None, help="scratch folder (needs ~3 GB for 1M pairs)")
    ap.add_argument("--child", choices=["rmkit", "rmkit-prompt-only", "reference"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--train", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    data = Path(os.environ.get("RMKIT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
    os.environ["RMKIT_DATA_DIR"] = str(data)
    pairs = base_mix(data)
    print(f"base_pairs: {len(pairs)}")
    print(f"cpus: {len(os.sched_getaffinity(0))}")
    print(f"load_average_at_start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"orjson: {_orjson_version()}")
    speedups = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for n in args.sizes:
            speedups[n] = bench_size(pairs, n, args, Path(tmp))
    n = max((k for k, v in speedups.items() if v is not None), default=None)
    print(f"load_average_at_end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if n is not None:
        print(f"speedup_rmkit_vs_sklearn_reference_at_{n}_pairs: {speedups[n]:.1f}")  # headline


if __name__ == "__main__":
    main()
