#!/bin/bash
# second call: the shared scorer on CUDA after the 4D-mask switch, and the unit tests with CUDA visible
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src RMKIT_DATA_DIR=$PWD/.gpu/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 \
       RMKIT_CACHE=/tmp/rmcache TOKENIZERS_PARALLELISM=false
date +%T
python3 - <<'PY'
import shutil, torch
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
PY
for m in rand-135m rand-1.7b; do
  echo "== score_throughput $m"; date +%T
  timeout 70 python3 bench/score_throughput.py --model /tmp/$m --device cuda --dtype bfloat16 --pairs 600 --blocks 3 \
     --batch-tokens 65536 --rb-batch 64 2>&1 | grep -v -E "Loading weights|Writing model" | tee $OUT/score2_$m.log
done
echo "== unit tests with CUDA visible"; date +%T
timeout 90 python3 -m pytest tests/unit -q -p no:cacheprovider -n 12 --timeout 80 2>&1 | grep -v -E "^\s+warner|PytestBenchmark" | tail -25 | tee $OUT/unit2_cuda.log
date +%T
