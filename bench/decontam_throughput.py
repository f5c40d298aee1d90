"""Decontamination throughput: rmkit vs the sklearn CountVectorizer reference, same data, one run.

    RMKIT_DATA_DIR=../shared/data .venv/bin/python bench/decontam_throughput.py \
        --sizes 100000 1000000 --workers 2 [--reference-max 1000000] [--before REF]

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

- `--before REF`: rmkit as it was at git REF beside rmkit as it is, on the same generated data: REF is
  checked out in a git worktree (/tmp/decontam-before-<commit>) and its `src` goes first on the child's
  sys.path (and PYTHONPATH, for the workers). `--repeats` pairs of runs with rows checked in full, then
  `--repeats // 3` pairs with `check_rows=False`; within a pair the two take turns going first. Prints
  both throughputs (best of each), the ratio of the best runs, each pair's ratio and their median, and
  whether the two wrote the same clean file, removed file and report counts.

Each method runs in its own child process; peak memory is the largest sum of RSS over the child's
process tree (sampled every 50 ms; pages the workers share, such as the fork server's imports, count
once per process, so rmkit's figure is an overestimate). Prints `name: value` lines; the last is the headline.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LLMBAR = ["LLMBar_Natural", "LLMBar_Adversarial_Neighbor", "LLMBar_Adversarial_GPTInst",
          "LLMBar_Adversarial_GPTOut", "LLMBar_Adversarial_Manual", "Processed_MT-Bench",
          "Processed_FairEval", "Processed_LLMEval2"]
HH = ["helpful-base", "harmless-base", "helpful-online", "helpful-rejection-sampled"]


def base_mix(data: Path) -> list:
    from rmkit.data import load_pairs  # here: a child given --src imports rmkit from there
    from rmkit.data.sources.xstest import load_xstest_pairs

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


def write_resampled(pairs: list, n: int, path: Path, seed: int = 0) -> None:
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
    digest = hashlib.sha256()
    for name in ("clean.jsonl", "removed.jsonl"):
        with open(f"{out}/{name}", "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    counts = sorted([*map(str, report.counts.items()), *map(str, report.subsets.items()),
                     *map(str, report.skipped.items())])
    return {"seconds": seconds, "flagged": flagged, "index_seconds": report.index_seconds,
            "outputs": digest.hexdigest(), "counts": counts}


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
    if args.src:
        sys.path.insert(0, args.src)
        import rmkit

        assert rmkit.__file__.startswith(args.src), f"rmkit imported from {rmkit.__file__}"
    if args.child == "reference":
        result = run_reference(args.train)
    else:
        result = run_rmkit(args.train, args.out, args.workers, check_rows=args.child == "rmkit")
    Path(args.result).write_text(json.dumps(result))


def measured(method: str, train: Path, out: Path, workers: int, src: str | None = None) -> dict:
    """Run one method in a child process (rmkit from `src` when given); add its peak tree RSS (MiB)."""
    import psutil

    result = out / f"{method}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", method, "--train", str(train),
           "--out", str(out), "--workers", str(workers), "--result", str(result)]
    env = dict(os.environ)
    if src:
        cmd += ["--src", src]
        env["PYTHONPATH"] = os.pathsep.join(x for x in (src, env.get("PYTHONPATH")) if x)
    proc = subprocess.Popen(cmd, env=env)
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


def _pairs(args, train: Path, tmp: Path, method: str, repeats: int) -> dict[str, list[dict]]:
    """`repeats` pairs of runs of `method`, rmkit now ("after") and at --before, the order swapped
    from one pair to the next (after-before, before-after, ...) so neither always goes first."""
    runs: dict[str, list[dict]] = {"after": [], "before": []}
    both = [("after", None), ("before", args.before_src)]
    for k in range(repeats):
        for name, src in both if k % 2 == 0 else both[::-1]:
            (tmp / name).mkdir(exist_ok=True)
            runs[name].append(measured(method, train, tmp / name, args.workers, src))
    return runs


def _ratios(label: str, n: int, runs: dict[str, list[dict]]) -> None:
    """Throughput after over before: of the best runs (the headline), and each pair's, with their median."""
    after, before = (min(r["seconds"] for r in runs[k]) for k in ("after", "before"))
    print(f"ratio_after_over_before{label}_{n}: {before / after:.2f}")
    each = sorted(b["seconds"] / a["seconds"] for a, b in zip(runs["after"], runs["before"]))
    if len(each) > 1:
        print(f"ratio_after_over_before{label}_{n}_each_pair: {' '.join(f'{x:.2f}' for x in each)}")
        mid = len(each) // 2
        median = each[mid] if len(each) % 2 else (each[mid - 1] + each[mid]) / 2
        print(f"ratio_after_over_before{label}_{n}_median_pair: {median:.2f}")


def bench_before(n: int, args, train: Path, tmp: Path) -> None:
    """rmkit at --before beside rmkit now: --repeats pairs of runs, rows checked in full (the
    headline), then --repeats // 3 pairs (at least one) with check_rows=False; the two take turns
    going first. Same data, same outputs expected."""
    runs = _pairs(args, train, tmp, "rmkit", args.repeats)
    fast = _pairs(args, train, tmp, "rmkit-prompt-only", max(1, args.repeats // 3))
    _print("after", n, runs["after"])
    _print("before", n, runs["before"])
    _print("after_no_check_rows", n, fast["after"])
    _print("before_no_check_rows", n, fast["before"])
    every = [*runs["after"], *runs["before"]]
    same = all((r["outputs"], r["counts"]) == (every[0]["outputs"], every[0]["counts"]) for r in every)
    every_fast = [*fast["after"], *fast["before"]]
    same_fast = all(r["outputs"] == every_fast[0]["outputs"] for r in every_fast)
    print(f"identical_outputs_before_after_{n}: {same and same_fast}")
    _ratios("", n, runs)
    _ratios("_no_check_rows", n, fast)


def bench_size(pairs, n: int, args, tmp: Path) -> float | None:
    """Alternating A/B runs (rmkit, reference, rmkit, ...), best of each; then one run of rmkit
    with check_rows=False. rmkit's default mode (rows checked in full) is the headline. With
    --before, rmkit before and after instead (bench_before), and the reference only within
    --reference-max."""
    train = tmp / f"train_{n}.jsonl"
    write_resampled(pairs, n, train)
    if args.before_src:
        bench_before(n, args, train, tmp)
        if n <= args.reference_max:
            _print("reference", n, [measured("reference", train, tmp, 1)])
        train.unlink()
        return None
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
    import orjson

    return orjson.__version__


@contextmanager
def before_tree(ref: str | None) -> Iterator[str | None]:
    """The `src` folder of a git worktree at `ref` (None without one); a worktree made here is
    removed after."""
    if ref is None:
        yield None
        return
    repo = Path(__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    tree = Path(f"/tmp/decontam-before-{commit[:12]}")
    made = not tree.exists()
    if made:
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), commit],
                       check=True, capture_output=True)
    print(f"before: {commit} ({tree / 'src'})")
    try:
        yield str(tree / "src")
    finally:
        if made:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                           check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="alternating A/B runs per size")
    ap.add_argument("--reference-max", type=int, default=1_000_000)
    ap.add_argument("--tmp", default=None, help="scratch folder (needs ~3 GB for 1M pairs)")
    ap.add_argument("--before", metavar="REF", help="also run rmkit as it was at git REF, side by side")
    ap.add_argument("--src", help=argparse.SUPPRESS)
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
    with before_tree(args.before) as args.before_src, \
            tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for n in args.sizes:
            speedups[n] = bench_size(pairs, n, args, Path(tmp))
    n = max((k for k, v in speedups.items() if v is not None), default=None)
    print(f"load_average_at_end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if n is not None:
        print(f"speedup_rmkit_vs_sklearn_reference_at_{n}_pairs: {speedups[n]:.1f}")  # headline


if __name__ == "__main__":
    main()
