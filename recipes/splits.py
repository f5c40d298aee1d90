"""The default reward model's data files: the training pool and the 600 held-out pairs, then the validation
split carved from the decontaminated pool (`make default-rm` runs both; `rmkit.train.splits` defines the split).

    python recipes/splits.py pool runs/rm/data           # pool.jsonl (training pool) + heldout.jsonl
    python recipes/splits.py validation runs/rm/data/clean.jsonl runs/rm/data --per-source hh-rlhf=300,ultrafeedback=150
                                                         # train.jsonl + validation.jsonl, by whole prompts

Each writes `<command>_split.json` beside its files (pairs per file and per source) and prints it.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from rmkit.data import load_pairs
from rmkit.data.io import write_json_atomic, write_jsonl_atomic
from rmkit.train.splits import SEED, quality_split, validation_split


def _per_source(text: str) -> dict[str, int]:
    out = {}
    for part in filter(None, (x.strip() for x in text.split(","))):
        name, _, n = part.partition("=")
        if not n.isdigit():
            raise ValueError(f"--per-source: {part!r} is not NAME=COUNT")
        out[name] = int(n)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python recipes/splits.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pool", help="write the training pool and the 600 held-out pairs")
    a.add_argument("out")
    b = sub.add_parser("validation", help="carve a validation split from a (decontaminated) pool")
    b.add_argument("pairs")
    b.add_argument("out")
    b.add_argument("--per-source", default="hh-rlhf=300,ultrafeedback=150")
    b.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.cmd == "pool":
        train, held = quality_split()
        files = {"pool.jsonl": train, "heldout.jsonl": held}
    else:
        pairs = load_pairs(args.pairs, errors="raise")
        train, val = validation_split(pairs, _per_source(args.per_source), args.seed)
        files = {"train.jsonl": train, "validation.jsonl": val}
    counts = {}
    for name, rows in files.items():
        write_jsonl_atomic(out / name, (p.to_dict() for p in rows))
        counts[name] = {"pairs": len(rows), "by_source": dict(sorted(Counter(p.source for p in rows).items()))}
    write_json_atomic(out / f"{args.cmd}_split.json", counts)
    print(json.dumps(counts, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
