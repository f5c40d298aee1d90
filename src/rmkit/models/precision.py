"""The compute dtype from the hardware, measured: bf16 where this CPU's bf16 matmul beats its fp32.

    from rmkit.models.precision import auto_dtype, probe
    auto_dtype("cpu")     # torch.bfloat16 on a CPU with fast bf16 (AVX-512 bf16 / AMX), else torch.float32
    probe()               # {"fp32_gflops": 203.1, "bf16_gflops": 930.4, "ratio": 4.58, "chosen": "bfloat16", ...}

CPUs differ: with `avx512_bf16` a bf16 matmul runs ~4.5x fp32; on an AVX2-only CPU it runs ~380x slower.
So the choice is measured, not assumed: a matmul at a small reward model's shapes (4096 x 576 x 1536) is
timed in both dtypes (about a second), and bf16 is chosen when it is at least `FASTER` times fp32. The CPU
flags are the hint that decides whether bf16 is timed at all (without `avx512_bf16` / `amx_bf16` it is not:
that would take seconds and lose); a flag counts only where torch's CPUID check agrees (not under an
emulated CPU). The result is cached per machine (CPU model, flags, torch version, threads) in
`$RMKIT_CACHE/hardware.json`, so the probe runs once. CUDA: bf16 where supported, else fp16.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from pathlib import Path

log = logging.getLogger("rmkit")
SHAPE = (4096, 576, 1536)
FASTER = 1.2
"""bf16 is chosen when its measured matmul rate is at least this many times fp32's."""
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> tuple[str, set[str]]:
    """(CPU model name, flags) from /proc/cpuinfo, less the bf16 flags the CPU this process runs on does
    not report (`cpuid_lacks`); ("", empty) where there is no /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor(), set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, flags - cpuid_lacks()


def cpuid_lacks() -> set[str]:
    """The BF16_FLAGS that torch's own CPUID check says this CPU lacks. /proc/cpuinfo is the host
    kernel's view: under an emulator (`qemu-x86_64 -cpu Haswell`) it lists the host's avx512_bf16 while
    the CPU the code runs on has none. Empty where torch has no such check."""
    try:
        import torch.cpu as tc

        checks = {"avx512_bf16": tc._is_avx512_bf16_supported, "amx_bf16": tc._is_amx_tile_supported}
        return {flag for flag, supported in checks.items() if not supported()}
    except (AttributeError, RuntimeError):
        return set()


KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
"""Variables that cap the instruction set torch's kernels use (`ATEN_CPU_CAPABILITY=avx2` with
`ONEDNN_MAX_CPU_ISA=AVX2` runs an AVX-512 CPU like an AVX2-only one): they change the rates, so they are
part of the machine's key."""


def machine_key() -> str:
    import torch

    model, flags = cpu_flags()
    capped = {k: os.environ[k] for k in KERNEL_ENV if os.environ.get(k)}
    raw = json.dumps([model, sorted(flags), torch.__version__, torch.get_num_threads()]
                     + ([capped] if capped else []))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def matmul_gflops(dtype, shape: tuple[int, int, int] = SHAPE, seconds: float = 0.3) -> float:
    """GFLOP/s of an (m x k) @ (k x n) matmul in `dtype` on the CPU, best of a few timed runs."""
    import torch

    m, k, n = shape
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    torch.mm(a, b)  # warm-up (kernel selection, page faults)
    best, spent = float("inf"), 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return 2 * m * k * n / best / 1e9


def measure() -> dict:
    """A fresh probe of this CPU (no cache)."""
    import torch

    model, flags = cpu_flags()
    hinted = sorted(f for f in BF16_FLAGS if f in flags)
    fp32 = matmul_gflops(torch.float32)
    bf16 = matmul_gflops(torch.bfloat16) if hinted else None
    ratio = bf16 / fp32 if bf16 is not None else None
    chosen = "bfloat16" if ratio is not None and ratio >= FASTER else "float32"
    why = (f"bf16 matmul {ratio:.2f}x fp32" if ratio is not None else
           "no avx512_bf16 / amx_bf16 flag: bf16 not timed")
    return {"cpu": model, "bf16_flags": hinted, "threads": torch.get_num_threads(), "shape": list(SHAPE),
            "fp32_gflops": round(fp32, 1), "bf16_gflops": None if bf16 is None else round(bf16, 1),
            "ratio": None if ratio is None else round(ratio, 2), "chosen": chosen, "why": why}


def probe(refresh: bool = False) -> dict:
    """This machine's probe, from the cache when it holds one for this machine."""
    from rmkit.data.io import write_json_atomic
    from rmkit.models.paths import cache_dir

    path, key = cache_dir() / "hardware.json", machine_key()
    known = json.loads(path.read_text()) if path.exists() else {}
    if not refresh and key in known:
        return known[key]
    result = measure()
    known[key] = result
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, known)
    except OSError as exc:  # a read-only cache: the probe just runs again next time
        log.warning("could not cache the hardware probe in %s: %s", path, exc)
    log.info("compute dtype: %s (%s; fp32 %.0f GFLOP/s)", result["chosen"], result["why"], result["fp32_gflops"])
    return result


def auto_dtype(device: str = "cpu"):
    """The compute dtype "auto" means on `device`: measured on CPU, bf16 (else fp16) on CUDA."""
    import torch

    if str(device).startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, probe()["chosen"])
