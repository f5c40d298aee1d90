#!/bin/bash
# rmkit's CUDA checks on the device machine (one call): wheels, gpu_check, scoring throughput, unit tests
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src RMKIT_DATA_DIR=$PWD/.gpu/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 \
       RMKIT_CACHE=/tmp/rmcache TOKENIZERS_PARALLELISM=false
nvidia-smi -L; python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
lscpu | grep -E "^Model name|^CPU\(s\)"; grep -o -w -E "avx512_bf16|amx_bf16|avx512f" /proc/cpuinfo | sort | uniq -c
echo "== gpu_check"; date +%T
timeout 150 python3 bench/gpu_check.py --out $OUT/gpu_check.json 2>&1 | grep -v -E "Loading weights|Writing model|trunk store \(" | tee $OUT/gpu_check.log
echo "== random models"; date +%T
python3 - <<'PY'
import json, shutil, torch
from transformers import AutoConfig, AutoModelForSequenceClassification
for name, over in (("rand-135m", {}), ("rand-1.7b", dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                                                         num_attention_heads=32, num_key_value_heads=32))):
    c = AutoConfig.from_pretrained(".gpu/smollm2")
    for k, v in over.items(): setattr(c, k, v)
    c.rmkit_untrained_head = False
    torch.manual_seed(0)
    with torch.device("cuda"):
        m = AutoModelForSequenceClassification.from_config(c, dtype=torch.bfloat16)
    m.save_pretrained("/tmp/" + name)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(".gpu/smollm2/" + f, "/tmp/" + name)
    print(name, sum(p.numel() for p in m.parameters()) / 1e6, "M params")
PY
for m in rand-135m rand-1.7b; do
  echo "== score_throughput $m"; date +%T
  timeout 100 python3 bench/score_throughput.py --model /tmp/$m --device cuda --dtype bfloat16 --pairs 600 --blocks 3 \
     --batch-tokens 65536 --rb-batch 64 2>&1 | grep -v -E "Loading weights|Writing model" | tee $OUT/score_$m.log
done
echo "== unit tests with CUDA visible"; date +%T
timeout 120 python3 -m pytest tests/unit -q -p no:cacheprovider -n 8 -x --timeout 120 2>&1 | tail -40 | tee $OUT/unit_cuda.log
date +%T
