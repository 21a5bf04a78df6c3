#!/bin/bash
# One GPU check of the fused op: the Triton kernels' self-check verdicts, the CUDA/Triton tests and the GPU benchmark.
# Meant for a GPU machine that has torch + triton but no snntorch and no internet:
#   first, with internet: pip download --no-deps snntorch==1.0.0 -d .whl      (.whl/ is git-ignored)
#   on the GPU machine, with .whl/ copied along: bash benchmarks/gpu_check.sh; results land in $OUT
set -o pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/env.txt"
python3 -c "import torch, triton, sys; print(sys.version.split()[0], torch.__version__, triton.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/env.txt"
# the first-use self-check (mdn_snntorch/fused/selfcheck.py): Triton vs the exact PyTorch loop, per neuron type and dtype
timeout 300 python3 -m mdn_snntorch.fused.selfcheck --kernel triton 2>&1 | tee "$OUT/selfcheck.log"
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/fused/test_fused_ops.py tests/fused/test_selfcheck.py \
    -k "gpu or triton or compile" 2>&1 | tee "$OUT/tests_gpu.log"
timeout 220 python3 benchmarks/bench_neuron.py --skip-cpu --rounds 15 --json "$OUT/gpu.json" 2>&1 | tee "$OUT/bench_gpu.log"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/fused/test_fused_ops.py 2>&1 | tail -5 | tee "$OUT/tests_all.log"
