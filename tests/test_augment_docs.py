"""The examples in docs/augment.md run as written (on a tiny dataset and generator)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import smooth_images

from translate.io import export_network
from translate.nets import build_generator

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "augment.md"


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def tiny_scenes(root: Path, n: int = 16, size: int = 72) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i, image in enumerate(smooth_images(n, size, seed=3)):
        cv2.imwrite(str(root / "images" / f"{i:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        label = rng.integers(0, 19, (size, size), dtype=np.uint8)
        label[:4] = 255  # ignored pixels, as in the real label maps
        cv2.imwrite(str(root / "labels" / f"{i:05d}.png"), label)
    return root


def test_the_doc_has_two_examples_and_the_speed_table():
    text = DOC.read_text()
    assert len(python_examples()) == 2
    assert "SPEED_TABLE" not in text and "i2i bench augment" in text


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_doc_example_trains_a_segmenter(tmp_path, index):
    spec = {"name": "resnet", "ngf": 4, "n_blocks": 1}
    torch.manual_seed(0)
    checkpoint = export_network(tmp_path / "G_AB.safetensors", build_generator(spec), spec, "generator", {})
    data = tiny_scenes(tmp_path / "scenes")
    code = python_examples()[index]
    code = re.sub(r"^CHECKPOINT = .*$", f'CHECKPOINT = "{checkpoint}"', code, count=1, flags=re.M)
    code = re.sub(r"^DATA = .*$", f'DATA = "{data}"', code, count=1, flags=re.M)
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"epoch 0: loss \d+\.\d+", result.stdout)
