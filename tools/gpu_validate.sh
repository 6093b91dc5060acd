#!/usr/bin/env bash
# GPU validation (issue 9): one command on a single-GPU machine, from the repository root.
#   bash tools/gpu_validate.sh [OUT_DIR]
# 1. demo shards with 512-pixel tiles (the loader's 256 crops come from whole tiles);
# 2. tools/bench_train.py: MaskDCPT vs dense step for NAFNet (paper config) and Restormer at batch 16,
#    256 x 256, bf16, with peak memory; then the same MaskDCPT step fed by the streaming loader from
#    the demo shards (share of the step spent waiting for data) at WORKERS workers (default 8);
# 3. a single-GPU torchrun of `uir-train pretrain` (nafnet_w32, bf16) for 300 steps, then --resume to 400.
# Every step's output lands in OUT_DIR (default runs/gpu_validate); a failing step does not stop the rest.
# DATA (an existing dataset folder) and RUN (the pretraining folder) may be set in the environment.
set -u
OUT_DIR=${1:-runs/gpu_validate}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT_DIR/gpu.txt"
python -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0], 'cuda', torch.version.cuda)" | tee -a "$OUT_DIR/gpu.txt"
DATA=${DATA:-$OUT_DIR/demo-512}
[ -f "$DATA/manifests/samples.parquet" ] || \
  python -m uir25m.cli demo --out "$DATA" --per-type 16 --size 512 --workers 16 2>&1 | tail -3 | tee "$OUT_DIR/demo.txt"
timeout 150 python tools/bench_train.py --archs nafnet_w64 restormer_base --batch 16 --crop 256 --steps 5 --warmup 2 \
  --data "$DATA" --workers ${WORKERS:-8} --fed-steps 20 2>&1 | tee "$OUT_DIR/bench_train.txt"
RUN=${RUN:-$OUT_DIR/pretrain}
rm -rf "$RUN"
COMMON=(--config demo --data "$DATA" --out "$RUN" --quiet model.arch=nafnet_w32 model.classifier_blocks=2
        data.crop=128 data.batch_size=8 data.num_workers=8 log_every=25 ckpt_every=100)
timeout 70 torchrun --standalone --nproc_per_node 1 -m training.cli pretrain "${COMMON[@]}" --max-steps 300 \
  2>&1 | grep -v "% of draws" | tail -4 | tee "$OUT_DIR/pretrain.txt"
timeout 40 torchrun --standalone --nproc_per_node 1 -m training.cli pretrain "${COMMON[@]}" --max-steps 400 --resume \
  2>&1 | grep -v "% of draws" | tail -3 | tee -a "$OUT_DIR/pretrain.txt"
cp "$RUN/log-rank0.jsonl" "$OUT_DIR/pretrain-log.jsonl" 2>/dev/null
ls "$RUN" | tee -a "$OUT_DIR/pretrain.txt"
