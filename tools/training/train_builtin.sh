#!/usr/bin/env bash
# Reproduces models/builtin.onnx, the Fashion-MNIST classifier that ships with mnet (`builtin`), from scratch:
# MobileNetV2 width 0.5 in small-input mode (28x28x1, 700,202 parameters), trained by MobileNetSharp itself.
#   bash tools/training/train_builtin.sh [OUT_DIR]
# Needs Debian's dataset-fashion-mnist. Every random choice (weights, shuffling, augmentation, dropout, the validation
# split) comes from --seed 0 and the kernels' reductions do not depend on the thread count, so the same commit gives
# the same weights on any machine of the same ISA (the SIMD width changes float rounding). About an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-artifacts/builtin}
mkdir -p "$out"
dotnet build src/MobileNetSharp.Cli -c Release -v quiet
mnet="dotnet src/MobileNetSharp.Cli/bin/Release/net10.0/mnet.dll"
$mnet train --arch mobilenet_v2 --width 0.5 --small-input --data fashion-mnist \
  --epochs 15 --batch 64 --lr 0.05 --weight-decay 5e-4 --label-smoothing 0.1 --validation 0.05 --seed 0 --threads 2 \
  --out "$out/builtin.onnx" 2>&1 | tee "$out/train.log"
$mnet eval --model "$out/builtin.onnx" --data fashion-mnist --plot "$out/confusion.png" | tee "$out/eval.txt"
