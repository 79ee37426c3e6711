#!/usr/bin/env bash
# The GPU check: on one CUDA GPU, in at most 10 minutes, times the CycleGAN training step (256²
# in fp32, bf16, bf16 + compile, bf16 + checkpointing; 1024×512 and 2048×1024 with and without
# checkpointing), tiled inference of a 4096² image and TranslateBatch, runs the CUDA-only tests and
# the quick study, and writes one Markdown report (docs/benchmarks.md, "GPU check").
#   bash scripts/gpu_check.sh                        report: runs/gpu_check/report.md
#   bash scripts/gpu_check.sh --out PATH/report.md   the report elsewhere (the study's run folder beside it)
#   bash scripts/gpu_check.sh --dry-run              every part at tiny sizes on the CPU
# Any other option of `i2i bench gpu` (--budget, --parts, --device) is passed on; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 GRADIO_ANALYTICS_ENABLED=False
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, installed or not
exec "${PYTHON:-python3}" -m translate.cli bench gpu "$@"
