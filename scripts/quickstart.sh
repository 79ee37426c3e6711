#!/usr/bin/env bash
# The main job on the embedded default data: render synthetic source/target street scenes,
# train a small CycleGAN between them, and translate held-out source scenes. CPU, about ten minutes.
# Re-running it resumes training where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 GRADIO_ANALYTICS_ENABLED=False

DATA=data/quickstart
[ -f $DATA/source/manifest.json ] || i2i data synth --out $DATA/source --domain source --n 300 --size 64x128 --seed 1
[ -f $DATA/target/manifest.json ] || i2i data synth --out $DATA/target --domain target --n 300 --size 64x128 --seed 2
[ -f $DATA/test/manifest.json ]   || i2i data synth --out $DATA/test --domain source --n 8 --size 64x128 --seed 3
i2i data preview --out runs/quickstart/preview.png

i2i train configs/quickstart.yaml "$@"
i2i translate --checkpoint runs/quickstart/export/G_AB.safetensors --input $DATA/test/images \
    --output runs/quickstart/translated
echo "samples during training: runs/quickstart/samples/   translated test scenes: runs/quickstart/translated/"
