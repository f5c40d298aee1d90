"""The shape of `train(cfg)`: how often following the config through it comes back to trainer.py.

    RMKIT_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 nice python bench/train_shape.py
    PYTHONPATH=/tmp/train-before/src nice python bench/train_shape.py     # the same on another checkout's rmkit

Two tiny runs (a 2-layer llama built by tests/tiny.py, 48 toy pairs, 4 steps of 4 pairs, CPU) walk every path
`train` has on CPU: (a) evaluation every 2 steps, checkpoints, `save_best` and `average_last: 2`; (b) layer 0
frozen and trained from the trunk store. Each runs under `sys.setprofile`, and the script counts:

- returns to trainer.py (the headline, aim <= 15): distinct (call site in trainer.py, callee) pairs where a
  function defined in another module of the rmkit package returns to a frame of trainer.py. A call site is a
  line of trainer.py, so a helper called from two lines counts twice and one called in a loop counts once;
  methods, properties and constructors count like any function, a dataclass's generated `__init__` too (as a
  function of the module that defines the class).
- dynamic returns: the same returns counted every time they happen (grows with steps and evaluations).
- functions passed / files: distinct rmkit functions (code objects) entered while `train` ran, and the files
  they are in.
- callees: distinct rmkit functions outside trainer.py that trainer.py calls directly.
- functions taking the whole run: functions in rmkit/train/ with a parameter named `run` (a static count).
- sizes (static, an ast pass over rmkit/train/*.py and rmkit/models/trained.py): the longest module, and every
  function over 40 lines (def to last line, docstring included) with its length (`--sizes`: only these).

Prints `name: value` lines, then the call sites; `--json FILE` also writes them.
"""
from __future__ import annotations

import argparse
import ast
import json
import logging
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def write_toy(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            q = f"question {rng.randint(0, 999)}: how many apples?"
            good = f"Sure, here is {rng.choice(['a poem', 'the answer', 'some help'])}."
            bad = f"The quick brown fox {rng.choice(['jumps', 'dog', 'lazy'])}."
            f.write(json.dumps({"id": str(i), "source": "toy", "prompt": q, "chosen": good, "rejected": bad}) + "\n")
    return path


def configs(tmp: Path) -> dict[str, dict]:
    from tiny import save_tiny_model

    model = save_tiny_model(tmp / "tiny", "llama", template="llama3")
    data = write_toy(tmp / "toy.jsonl", 48)
    base = dict(model=str(model), data=[str(data)], eval_size=8, batch_size=4, max_steps=4, learning_rate=1e-3,
                lr_scheduler="constant", seed=0, n_boot=50)
    return {"best-and-average": dict(base, output_dir=str(tmp / "a"), eval_steps=2, save_steps=2, save_best=True,
                                     average_last=2),
            "trunk-store": dict(base, output_dir=str(tmp / "b"), freeze_layers=1, trunk_cache="on")}


class Tracer:
    def __init__(self, package: Path):
        self.package = str(package)
        self.trainer = str(package / "train" / "trainer.py")
        self.sites: Counter = Counter()
        self.entered: set = set()

    def name(self, code) -> str:
        return f"{Path(code.co_filename).relative_to(self.package)}:{code.co_name}:{code.co_firstlineno}"

    def generated_init(self, frame) -> str | None:
        """`module.py:Class.__init__` for a dataclass's generated __init__ of an rmkit class, else None."""
        cls = type(frame.f_locals.get("self"))
        file = getattr(sys.modules.get(cls.__module__), "__file__", None) or ""
        if not file.startswith(self.package) or file == self.trainer:
            return None
        return f"{Path(file).relative_to(self.package)}:{cls.__name__}.__init__ (generated)"

    def __call__(self, frame, event, arg):
        code = frame.f_code
        if code.co_filename == "<string>" and code.co_name == "__init__" and event == "return":
            back, name = frame.f_back, self.generated_init(frame)
            if name and back is not None and back.f_code.co_filename == self.trainer:
                self.sites[(f"trainer.py:{back.f_lineno} {back.f_code.co_name}", name)] += 1
            return
        if not code.co_filename.startswith(self.package):
            return
        if event == "call":
            self.entered.add(self.name(code))
        elif event == "return" and code.co_filename != self.trainer:
            back = frame.f_back
            if back is not None and back.f_code.co_filename == self.trainer:
                self.sites[(f"trainer.py:{back.f_lineno} {back.f_code.co_name}", self.name(code))] += 1


def run_params(package: Path) -> list[str]:
    out = []
    for f in sorted((package / "train").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if any(a.arg == "run" for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)):
                    out.append(f"{f.name}:{node.name}")
    return out


def sizes(package: Path, limit: int = 40) -> tuple[dict[str, int], list[str]]:
    """({module: lines}, ["module:function lines" for each function over `limit` lines])."""
    files = [*sorted((package / "train").glob("*.py")), package / "models" / "trained.py"]
    lines, long = {}, []
    for f in files:
        name = str(f.relative_to(package))
        text = f.read_text(encoding="utf-8")
        lines[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    long.append(f"{name}:{node.name} {n}")
    return lines, long


def print_sizes(package: Path) -> dict:
    lines, long = sizes(package)
    top = max(lines, key=lines.get)
    print(f"longest module: {top} {lines[top]} lines; over 400: {[m for m, n in lines.items() if n > 400]}")
    print(f"functions over 40 lines: {len(long)}" + "".join(f"\n  {x}" for x in long))
    return {"module lines": lines, "functions over 40 lines": long}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="also write the counts and call sites here")
    ap.add_argument("--sizes", action="store_true", help="only the static sizes (no training)")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    import rmkit

    if args.sizes:
        print_sizes(Path(rmkit.__file__).parent)
        return 0
    from rmkit.train.config import TrainConfig
    from rmkit.train.trainer import train

    package = Path(rmkit.__file__).parent
    tracer = Tracer(package)
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in configs(Path(tmp)).items():
            cfg = TrainConfig(**kw)
            sys.setprofile(tracer)
            try:
                summary = train(cfg)
            finally:
                sys.setprofile(None)
            assert summary["complete"] and summary["steps"] == 4, (name, summary["steps"])
    callees = {callee for _, callee in tracer.sites}
    files = {n.split(":")[0] for n in tracer.entered}
    taking_run = run_params(package)
    counts = {"rmkit": str(package), "returns to trainer.py (distinct call sites)": len(tracer.sites),
              "dynamic returns to trainer.py": sum(tracer.sites.values()),
              "callees of trainer.py": len(callees), "functions passed": len(tracer.entered),
              "files": len(files), "functions taking the whole run": len(taking_run)}
    for k, v in counts.items():
        print(f"{k}: {v}")
    print("call sites (trainer.py line -> callee, times):")
    for (site, callee), n in sorted(tracer.sites.items(), key=lambda x: int(x[0][0].split(":")[1].split()[0])):
        print(f"  {site:<40} -> {callee}  x{n}")
    print("functions taking the whole run: " + ", ".join(taking_run))
    static = print_sizes(package)
    if args.json:
        Path(args.json).write_text(json.dumps({**counts, "sites": [[s, c, n] for (s, c), n in tracer.sites.items()],
                                               "taking_run": taking_run, **static}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
