"""`dtype` / `mixed_precision` "auto": bf16 only where this CPU's bf16 matmul is measured faster (probe faked)."""
import json

import pytest
import torch

from rmkit.models import precision


@pytest.fixture
def fake_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("RMKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU branch, also on a GPU machine
    timed = []

    def setup(flags, rates):
        monkeypatch.setattr(precision, "cpu_flags", lambda: ("Test CPU", set(flags)))
        monkeypatch.setattr(precision, "matmul_gflops", lambda dtype, *a, **k: timed.append(dtype) or rates[dtype])
        return timed
    return setup


def test_fast_bf16_is_chosen(fake_cpu):
    fake_cpu({"avx2", "avx512_bf16"}, {torch.float32: 200.0, torch.bfloat16: 900.0})
    got = precision.measure()
    assert got["chosen"] == "bfloat16" and got["ratio"] == 4.5 and got["bf16_flags"] == ["avx512_bf16"]


def test_slow_bf16_keeps_fp32(fake_cpu):
    fake_cpu({"amx_bf16"}, {torch.float32: 200.0, torch.bfloat16: 210.0})  # under FASTER x fp32
    assert precision.measure()["chosen"] == "float32"


def test_without_the_flags_bf16_is_not_even_timed(fake_cpu):
    timed = fake_cpu({"avx2", "fma"}, {torch.float32: 100.0})  # an AVX2-only CPU: bf16 ~380x slower
    got = precision.measure()
    assert got["chosen"] == "float32" and got["bf16_gflops"] is None and timed == [torch.float32]


def test_the_probe_runs_once_per_machine_and_auto_follows_it(fake_cpu, tmp_path, monkeypatch):
    timed = fake_cpu({"avx512_bf16"}, {torch.float32: 200.0, torch.bfloat16: 900.0})
    assert precision.auto_dtype("cpu") == torch.bfloat16
    assert precision.auto_dtype("cpu") == torch.bfloat16
    assert len(timed) == 2  # fp32 and bf16 once; the second call read the cache
    saved = json.loads((tmp_path / "hardware.json").read_text())
    assert [v["chosen"] for v in saved.values()] == ["bfloat16"]

    from rmkit.models.load import resolve_dtype
    from rmkit.train.precision import resolve_precision

    assert resolve_dtype("auto", "cpu") == torch.bfloat16
    assert resolve_precision("auto")[0] == "bf16" and resolve_precision("no")[0] == "no"
    monkeypatch.setattr(precision, "probe", lambda refresh=False: {"chosen": "float32", "why": "faked"})
    assert resolve_precision("auto") == ("no", {"requested": "auto", "chosen": "no",
                                                "probe": {"chosen": "float32", "why": "faked"}})
    assert resolve_dtype("auto", "cpu") == torch.float32


def test_a_capped_instruction_set_is_another_machine(fake_cpu, monkeypatch):
    fake_cpu({"avx512_bf16"}, {torch.float32: 200.0, torch.bfloat16: 900.0})
    for var in precision.KERNEL_ENV:
        monkeypatch.delenv(var, raising=False)
    plain = precision.machine_key()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert precision.machine_key() != plain
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert precision.machine_key() == plain  # the key of an uncapped machine is the one it always had


def test_a_bf16_flag_the_cpuid_denies_is_dropped(monkeypatch):
    """Under an emulator (qemu-x86_64 -cpu Haswell) /proc/cpuinfo is the host's: torch's CPUID check decides."""
    import torch.cpu as tc

    monkeypatch.setattr(tc, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(tc, "_is_amx_tile_supported", lambda: False)
    assert precision.cpuid_lacks() == {"avx512_bf16", "amx_bf16"}
    denied = precision.cpu_flags()[1]
    assert not denied & set(precision.BF16_FLAGS)
    monkeypatch.setattr(tc, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(tc, "_is_amx_tile_supported", lambda: True)
    assert precision.cpuid_lacks() == set()
    listed = precision.cpu_flags()[1]  # /proc/cpuinfo as it stands (bf16 flags or none, by machine)
    assert denied == listed - set(precision.BF16_FLAGS)
