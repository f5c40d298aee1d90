"""Ray Data batch scoring: `rmkit score SHARDS... -o OUT_DIR --engine ray` (a laptop or a cluster).

    from rmkit.score.ray_engine import score_shards
    score_shards(["data/part-0.jsonl", "data/part-1.jsonl"], "scored/", model="smollm2-135m", actors=2)
    # on a cluster: score_shards(..., address="auto", num_gpus=1, actors=64, backend="vllm")

The input shards (jsonl, jsonl.gz or parquet files, or folders of them) are read by Ray Data
(`read_text` / `read_parquet`), rows go through `map_batches` over a pool of scorer actors (each loads
the model once: rmkit's hf scorer or its vLLM scorer; CPU actors on a laptop, one per GPU with
`num_gpus=1`), and the rewards stream back in input order. Each input shard becomes one output shard,
`OUT_DIR/<index>-<name>.jsonl`, written atomically once all its rows are scored, so a rerun after a
kill skips the shards already written and redoes only the others: no row is lost or written twice.
An actor that dies is restarted by Ray and its batch retried (`max_restarts`, `max_task_retries`).
Rows parse exactly as `rmkit score` parses them (`iter_items`): a `messages` row gets `reward`, a
pair row of any format rmkit reads gets `chosen_reward` / `rejected_reward`.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from rmkit.data.io import write_jsonl_atomic
from rmkit.data.schema import DataError, on_row_error
from rmkit.score.run import _num  # NaN (skipped as over-long) → null, as `rmkit score` writes it

SHARD_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def expand_shards(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given; a folder → its jsonl / jsonl.gz / parquet files, sorted. One kind per run."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.name.endswith(SHARD_SUFFIXES))
        elif p.exists():
            out.append(p)
        else:
            raise DataError("no such file or folder", file=str(p))
    if not out:
        raise DataError("no jsonl / jsonl.gz / parquet shards found", file=", ".join(map(str, inputs)))
    bad = [str(p) for p in out if not p.name.endswith(SHARD_SUFFIXES)]
    if bad:
        raise DataError(f"--engine ray reads {', '.join(SHARD_SUFFIXES)} shards", file=bad[0])
    kinds = {p.suffix == ".parquet" for p in out}
    if len(kinds) > 1:
        raise DataError("mix of parquet and jsonl shards: score them in two runs", file=str(out[0]))
    return out


def output_name(index: int, shard: Path) -> str:
    stem = shard.name
    for suffix in SHARD_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return f"{index:05d}-{stem}.jsonl"


def _shard_plan(shard: Path, format: str) -> dict:
    """What the actors need to parse a shard's rows: "conv" with its key, or "pair" with its format."""
    from rmkit.data.sources import detect_format
    from rmkit.score.run import CONV_KEYS, _first_row

    first = _first_row(str(shard))
    key = next((k for k in CONV_KEYS if k in first), None)
    if key is not None and format == "auto":
        return {"kind": "conv", "key": key}
    return {"kind": "pair", "format": detect_format(first) if format == "auto" else format}


class ScorerActor:
    """One per actor: the scorer, loaded once; `__call__` scores a batch of raw rows."""

    def __init__(self, model: str, options: dict, backend: str, plans: dict, fail_once: str | None = None):
        from rmkit.score.local import local_scorer

        self.scorer = local_scorer(model, backend=backend, **options) if model not in ("length", "random") \
            else local_scorer(baseline=model)
        self.plans, self.fail_once = plans, fail_once

    def _row(self, batch: dict, i: int) -> dict:
        if "text" in batch:
            return json.loads(batch["text"][i])
        return {k: _plain(v[i]) for k, v in batch.items() if k != "path"}

    def _parse(self, row: dict, path: str):
        """A row as its shard's plan reads it: a conversation, or a pair; a DataError naming the problem."""
        from rmkit.data.schema import to_conversation
        from rmkit.data.sources import PARSERS

        plan = self.plans[path]
        if plan["kind"] == "conv":
            if plan["key"] not in row:
                raise DataError("missing", file=path, field=plan["key"])
            return to_conversation(row[plan["key"]], where={"file": path, "field": plan["key"]})
        parser = PARSERS.get(plan["format"])
        if parser is None:
            raise DataError(f"format {plan['format']!r} groups several rows: use the local engine", file=path)
        return parser(row, file=path, index=None)

    def __call__(self, batch: dict) -> dict:
        if self.fail_once:  # tests: this actor process dies once, mid-run, the first time it is called
            marker = Path(self.fail_once)
            if not marker.exists():
                marker.write_text("died")
                import os

                os._exit(1)
        paths = [str(p) for p in batch["path"]]
        n = len(paths)
        convs, pairs, kinds, errors = [], [], [], [""] * n
        for i, path in enumerate(paths):
            try:
                row = self._row(batch, i)
                item = self._parse(row, path)
                (convs if self.plans[path]["kind"] == "conv" else pairs).append((i, item))
                kinds.append(str(row.get("id", "")) if isinstance(row, dict) else "")
            except (DataError, ValueError, KeyError, TypeError) as e:
                errors[i] = f"{getattr(e, 'skip_key', None) or type(e).__name__}\t{e}"
                kinds.append("")
        reward, chosen, rejected = [None] * n, [None] * n, [None] * n
        if convs:
            for (i, _), r in zip(convs, self.scorer.score([c for _, c in convs])):
                reward[i] = _num(r)
        if pairs:
            for (i, p), (c, r) in zip(pairs, self.scorer.score_pairs([p for _, p in pairs])):
                chosen[i], rejected[i] = _num(c), _num(r)
                kinds[i] = kinds[i] or p.id
        return {"path": paths, "id": kinds, "reward": reward, "chosen_reward": chosen,
                "rejected_reward": rejected, "error": errors}


def _plain(value: Any) -> Any:
    """numpy / arrow values of a parquet row → plain Python (what rmkit's parsers expect)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _init_ray(address: str | None, actors: int, num_cpus: float, progress_bars: bool) -> None:
    import ray

    if not ray.is_initialized():
        # local: the actors hold actors*num_cpus logical CPUs; two more for the read tasks, or they never run.
        # address=None also joins the cluster that RAY_ADDRESS names, as ray.init does.
        import os

        local = address is None and not os.environ.get("RAY_ADDRESS")
        ray.init(address=address, num_cpus=int(actors * num_cpus) + 2 if local else None,
                 include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows come back in input order
    ctx.enable_progress_bars = progress_bars


def _scored(ds, actor_kwargs: dict, *, actors: int, batch_size: int, num_cpus: float, num_gpus: float,
            max_restarts: int):
    """`ds` through a pool of `actors` ScorerActors (restarted and their batch retried if one dies). The restart
    options still go as Ray remote args: Ray 2.60 has no other way to give them (it warns that the way goes in
    2.64)."""
    from ray.data import ActorPoolStrategy

    return ds.map_batches(ScorerActor, batch_size=batch_size, compute=ActorPoolStrategy(size=actors),
                          num_cpus=num_cpus, num_gpus=num_gpus, batch_format="numpy",
                          fn_constructor_kwargs=actor_kwargs, max_restarts=max_restarts,
                          max_task_retries=max_restarts)


class RayScorer:
    """The Scorer protocol (`score`, `score_pairs`) over a Ray actor pool: what `rmkit eval ... --engine ray`
    and curate's RM-consistency filter (`rm_filter.options.engine: ray`) use on large sets. The items are
    handed to Ray Data in memory (`from_items`), scored by `actors` ScorerActors (each one a full hf or
    vLLM scorer, loaded once per call), and the rewards come back in input order, so the official scoring
    code downstream is the one the local scorer feeds."""

    IN_PAIRS, IN_CONVS = "<pairs>", "<conversations>"

    def __init__(self, model: str, options: dict | None = None, *, backend: str = "hf", actors: int = 2,
                 batch_size: int = 64, num_cpus: float = 1, num_gpus: float = 0, address: str | None = None,
                 max_restarts: int = 3):
        self.model, self.options, self.backend = model, dict(options or {}), backend
        self.actors, self.batch_size, self.num_cpus, self.num_gpus = actors, batch_size, num_cpus, num_gpus
        self.address, self.max_restarts = address, max_restarts
        self.name = str(model)
        self.stats: Counter = Counter()

    def _run(self, source: str, plan: dict, rows: list[dict]) -> list[dict]:
        import ray

        if not rows:
            return []
        _init_ray(self.address, self.actors, self.num_cpus, bool(self.options.get("show_progress")))
        ds = ray.data.from_items([{"path": source, "text": json.dumps(r)} for r in rows])
        ds = _scored(ds, dict(model=self.model, options=self.options, backend=self.backend,
                              plans={source: plan}),
                     actors=self.actors, batch_size=self.batch_size, num_cpus=self.num_cpus,
                     num_gpus=self.num_gpus, max_restarts=self.max_restarts)
        out = []
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i in range(len(batch["path"])):
                if isinstance(batch["error"][i], str) and batch["error"][i]:
                    raise DataError(str(batch["error"][i]).split("\t", 1)[-1], file=source, row=len(out))
                out.append({k: _value(batch[k][i]) for k in ("reward", "chosen_reward", "rejected_reward")})
        if len(out) != len(rows):
            raise RuntimeError(f"Ray returned {len(out)} results for {len(rows)} items")
        self.stats["scored"] += len(rows)
        return out

    def score(self, conversations) -> list[float]:
        from rmkit.data.schema import conversation_to_dicts, to_conversation

        rows = [{"messages": conversation_to_dicts(to_conversation(c))} for c in conversations]
        return [_nan(r["reward"]) for r in self._run(self.IN_CONVS, {"kind": "conv", "key": "messages"}, rows)]

    def score_pairs(self, pairs) -> list[tuple[float, float]]:
        res = self._run(self.IN_PAIRS, {"kind": "pair", "format": "pairs"}, [p.to_dict() for p in pairs])
        return [(_nan(r["chosen_reward"]), _nan(r["rejected_reward"])) for r in res]


def _nan(x: float | None) -> float:
    return float("nan") if x is None else x


def score_shards(inputs: Sequence[str | Path], out_dir: str | Path, *, model: str, options: dict | None = None,
                 backend: str = "hf", actors: int = 2, batch_size: int = 64, num_cpus: float = 1,
                 num_gpus: float = 0, address: str | None = None, format: str = "auto", errors: str = "raise",
                 max_restarts: int = 3, progress=None, fail_once: str | None = None) -> dict:
    """Score every shard not yet in `out_dir`; returns counts (shards done / skipped, rows, seconds)."""
    from rmkit.data.schema import check_errors

    check_errors(errors)
    shards = expand_shards(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {str(s): out_dir / output_name(i, s) for i, s in enumerate(shards)}
    pending = [s for s in shards if not targets[str(s)].exists()]
    stats = {"shards": len(shards), "shards_resumed": len(shards) - len(pending), "shards_written": 0,
             "rows": 0, "skipped_rows": {}, "actors": actors, "backend": backend}
    if not pending:
        return stats
    plans = {str(s): _shard_plan(s, format) for s in pending}
    _init_ray(address, actors, num_cpus, progress is None)
    ds = _scored(_read_shards(pending), dict(model=model, options=options or {}, backend=backend, plans=plans,
                                             fail_once=fail_once),
                 actors=actors, batch_size=batch_size, num_cpus=num_cpus, num_gpus=num_gpus,
                 max_restarts=max_restarts)
    started = time.monotonic()
    skipped = _write_shards(ds, targets, plans, errors, stats, progress)
    stats["seconds"] = round(time.monotonic() - started, 2)
    stats["skipped_rows"] = dict(sorted(skipped.items()))
    return stats


def _read_shards(pending: Sequence[Path]):
    """A Ray dataset of the shards' rows, each with its shard's path (parquet rows, or jsonl lines)."""
    import ray

    paths = [str(s) for s in pending]
    if pending[0].suffix == ".parquet":
        return ray.data.read_parquet(paths, include_paths=True)
    return ray.data.read_text(paths, include_paths=True, drop_empty_lines=True,
                              **({"arrow_open_stream_args": {"compression": "gzip"}}
                                 if pending[0].name.endswith(".gz") else {}))


def _write_shards(ds, targets: dict, plans: dict, errors: str, stats: dict, progress) -> Counter:
    """Write each shard's scored rows to its target, atomically, as its rows arrive (Ray keeps a shard's rows
    together and in order); malformed rows under the row-error rule. Returns the skipped-row counts."""
    skipped: Counter = Counter()
    current, rows, index = None, [], 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for i, path in enumerate(batch["path"]):
            path = str(path)
            if path != current:
                _flush(targets, current, rows, stats)
                current, rows, index = path, [], 0
            index += 1
            err = batch["error"][i]
            if isinstance(err, str) and err:  # "" = parsed
                key, message = str(err).split("\t", 1)
                on_row_error(DataError(f"{message} (non-empty row {index - 1} of the shard)", file=path),
                             errors, skipped, key=key)
                continue
            rows.append(_scored_row(batch, i, index - 1, plans[path]["kind"]))
            stats["rows"] += 1
        if progress is not None:
            progress(len(batch["path"]))
    _flush(targets, current, rows, stats)
    return skipped


def _flush(targets: dict, current: str | None, rows: list, stats: dict) -> None:
    if current is not None:
        write_jsonl_atomic(targets[current], rows)
        stats["shards_written"] += 1


def _scored_row(batch, i: int, row: int, kind: str) -> dict:
    out = {"row": row, "id": str(batch["id"][i]) or str(row)}
    if kind == "conv":
        out["reward"] = _value(batch["reward"][i])
    else:
        out.update(chosen_reward=_value(batch["chosen_reward"][i]), rejected_reward=_value(batch["rejected_reward"][i]))
    return out


def _value(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if x != x else x
