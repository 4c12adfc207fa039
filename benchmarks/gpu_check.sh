#!/usr/bin/env bash
# One command for a machine with a CUDA GPU (< 8 min): the tests marked `gpu`, the tiny pipeline
# on CUDA (every stage, run directly: no dvc needed), and the training benchmark for resnet18 and
# resnet50 at 32 px; then one summary. Installs nothing: PYTHONPATH=src and the torch already
# there (torchvision, numpy, scipy, scikit-learn, pandas, pyyaml, pillow, tqdm as in
# requirements.txt; pytest for the tests, else they are skipped with a message).
#
#     bash benchmarks/gpu_check.sh            # from the repository root
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
LOG=$(mktemp -d /tmp/gpu_check.XXXXXX)
summary=()
note() { summary+=("$1"); echo "== $1"; }

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch sees no CUDA device; nothing to check" >&2
  exit 1
fi
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"

# 1. tests marked gpu
if $PY -c "import pytest" 2>/dev/null; then
  if timeout 300 $PY -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider >"$LOG/tests.txt" 2>&1
  then note "gpu tests: passed ($(tail -1 "$LOG/tests.txt"))"
  else note "gpu tests: FAILED (see $LOG/tests.txt)"; tail -30 "$LOG/tests.txt"; fi
else
  note "gpu tests: skipped (pytest is not installed)"
fi

# 2. the tiny pipeline on CUDA, every stage in order, in a temporary copy
TMP=$(mktemp -d /tmp/gpu_pipeline.XXXXXX)
cp -r params.yaml src "$TMP"/
(
  cd "$TMP" && $PY - <<'PY'
import re
s = open("params.yaml").read()
s = re.sub(r"^device: .*$", "device: cuda", s, flags=re.M)
s = re.sub(r"^selectors: .*$", "selectors: [random, moderate, el2n, forgetting, grand]", s,
           flags=re.M)
s = re.sub(r"^seeds: .*$", "seeds: [0]", s, flags=re.M)
s = re.sub(r"^  epochs: \d+", "  epochs: 3", s, flags=re.M)
open("params.yaml", "w").write(s)
PY
  export PYTHONPATH="$TMP/src"
  set -e
  start=$(date +%s)
  for stage in download attacker corrupt pretrain embed; do
    $PY -m coreset.stages.$stage
  done
  for sel in random moderate el2n forgetting grand; do
    $PY -m coreset.stages.score $sel
    $PY -m coreset.stages.select $sel
    $PY -m coreset.stages.train $sel 0
  done
  $PY -m coreset.stages.train full 0
  $PY -m coreset.stages.evaluate
  echo "pipeline seconds: $(( $(date +%s) - start ))"
) >"$LOG/pipeline.txt" 2>&1
if [ $? -eq 0 ]; then
  note "tiny pipeline on cuda: passed ($(grep 'pipeline seconds' "$LOG/pipeline.txt"))"
  sed -n '/^| selector/,/^$/p' "$LOG/pipeline.txt"
else
  note "tiny pipeline on cuda: FAILED (see $LOG/pipeline.txt)"; tail -30 "$LOG/pipeline.txt"
fi
rm -rf "$TMP"

# 3. the training benchmark: ours vs the reference-style loop vs the limit
if timeout 360 $PY benchmarks/training.py --models resnet18 resnet50 --size 32 --batch 128 \
    --n 25600 --workers 4 --budget-mb 1024 --device cuda >"$LOG/bench.txt" 2>"$LOG/bench.err"
then note "benchmark: done"
else note "benchmark: FAILED or timed out (see $LOG/bench.err)"; tail -20 "$LOG/bench.err"; fi

echo
echo "================ gpu_check summary ================"
printf '%s\n' "${summary[@]}"
echo
cat "$LOG/bench.txt" 2>/dev/null
echo "logs: $LOG"
