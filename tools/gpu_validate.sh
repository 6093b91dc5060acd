#!/usr/bin/env bash
# GPU validation II: one command on a single-GPU machine, from the repository root, ~4 minutes.
#   bash tools/gpu_validate.sh [OUT_DIR]
# 1. demo shards with 512-pixel tiles (the loader's 256 crops come from whole tiles);
# 2. tools/bench_train.py: the MaskDCPT step against the dense step of NAFNet-w64 and Restormer at
#    batch 16, 256 x 256, bf16, with peak memory (the classifier in channels-last with fused LayerNorms);
# 3. the same for NAFNet-w64 with the classifier through torch.compile;
# 4. the NAFNet-w64 MaskDCPT step fed by the streaming loader (persistent workers) from the demo shards:
#    the share of the step spent waiting for data at WORKERS workers (default 8).
# Every step's output lands in OUT_DIR (default runs/gpu_validate); each is bounded by `timeout`, and a
# failing step does not stop the rest. DATA (an existing dataset folder) may be set in the environment.
set -u
OUT_DIR=${1:-runs/gpu_validate}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT_DIR/gpu.txt"
python -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0], 'cuda', torch.version.cuda)" | tee -a "$OUT_DIR/gpu.txt"
DATA=${DATA:-$OUT_DIR/demo-512}
[ -f "$DATA/manifests/samples.parquet" ] || \
  timeout 60 python -m uir25m.cli demo --out "$DATA" --per-type 16 --size 512 --workers 16 2>&1 | tail -3 | tee "$OUT_DIR/demo.txt"
timeout 90 python tools/bench_train.py --archs nafnet_w64 restormer_base --batch 16 --crop 256 --steps 5 --warmup 2 \
  --json 2>&1 | tee "$OUT_DIR/bench_train.json"
timeout 50 python tools/bench_train.py --archs nafnet_w64 --batch 16 --crop 256 --steps 5 --warmup 3 --compile-classifier \
  --json 2>&1 | tee "$OUT_DIR/bench_train_compiled.json"
timeout 50 python tools/bench_train.py --archs nafnet_w64 --batch 16 --crop 256 --steps 2 --warmup 1 \
  --data "$DATA" --workers ${WORKERS:-8} --fed-steps 40 --json 2>&1 | tee "$OUT_DIR/bench_fed.json"
