"""`i2i sample` and the sampling API: files written, reproducible seeds, and one-line errors for
labels outside the trained classes, codes of the wrong size and files of the wrong family."""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image

from translate import io
from translate.cli import main
from translate.nets import GENERATORS, SAMPLERS
from translate.registry import resolved_spec
from translate.sampling import load_sampler


def export_sampler(path, classes=0, code_dim=0, info=None):
    spec = resolved_spec(
        SAMPLERS, {"name": "dcgan", "noise_dim": 8, "width": 4, "classes": classes, "code_dim": code_dim}
    )
    torch.manual_seed(0)
    net = SAMPLERS.build(spec).eval()
    return io.export_network(path, net, spec, "sampler", {"model": "gan", "classes": classes, **(info or {})})


def test_sample_writes_pngs_and_grids_reproducibly(tmp_path, capsys):
    ckpt = export_sampler(tmp_path / "G.safetensors", classes=3)
    for out in ("a", "b"):
        assert (
            main(
                [
                    "sample",
                    "--checkpoint",
                    str(ckpt),
                    "--n",
                    "5",
                    "--label",
                    "2",
                    "--seed",
                    "7",
                    "--output",
                    str(tmp_path / out),
                ]
            )
            == 0
        )
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["classes.png", "grid.png", "interpolation.png", *[f"sample_{i:05d}.png" for i in range(5)]]
    first = Image.open(tmp_path / "a/sample_00000.png")
    assert first.size == (32, 32)
    for i in range(5):
        assert (tmp_path / f"a/sample_{i:05d}.png").read_bytes() == (tmp_path / f"b/sample_{i:05d}.png").read_bytes()
    # class grid: 3 classes × 8 per class, 32 px tiles with 2 px padding
    assert Image.open(tmp_path / "a/classes.png").size == (8 * 34 + 2, 3 * 34 + 2)


def test_api_labels_fix_the_class_input(tmp_path):
    sampler = load_sampler(export_sampler(tmp_path / "G.safetensors", classes=3))
    a = sampler.sample(4, label=0, seed=1)
    b = sampler.sample(4, label=1, seed=1)
    assert a.shape == (4, 1, 32, 32) and not torch.equal(a, b)  # same noise, other label
    assert torch.equal(sampler.sample(3, label=[0, 1, 2], seed=1)[1], sampler.sample(3, label=1, seed=1)[1])
    assert sampler.interpolate(2, 5).shape == (10, 1, 32, 32)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--label", "3"], r"label\(s\) \[3\] outside the trained classes 0..2"),
        (["--label", "-1"], r"label\(s\) \[-1\] outside the trained classes 0..2"),
        (["--code", "1,0"], "takes no code"),
    ],
)
def test_sample_rejects_bad_labels_and_codes(tmp_path, capsys, argv, message):
    ckpt = export_sampler(tmp_path / "G.safetensors", classes=3)
    assert main(["sample", "--checkpoint", str(ckpt), "--output", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("i2i sample: error:") and "Traceback" not in err
    assert re.search(message, err), err


def test_codes_of_the_wrong_size_are_an_error(tmp_path, capsys):
    ckpt = export_sampler(tmp_path / "G.safetensors", code_dim=4, info={"cat_codes": [3], "cont_codes": 1})
    assert main(["sample", "--checkpoint", str(ckpt), "--code", "1,0,0", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "code has 3 values; this sampler takes 4 (categorical one-hot [3] then 1 continuous)" in err
    assert (
        main(["sample", "--checkpoint", str(ckpt), "--code", "0,1,0,0.5", "--n", "2", "--output", str(tmp_path / "o")])
        == 0
    )
    sampler = load_sampler(ckpt)
    one = sampler.sample(2, code=[0, 1, 0, 0.5], seed=0)
    other = sampler.sample(2, code=[1, 0, 0, 0.5], seed=0)
    assert not torch.equal(one, other)


def test_translator_given_to_sample_and_sampler_given_to_translate(tmp_path, capsys):
    spec = resolved_spec(GENERATORS, {"name": "resnet", "ngf": 4, "n_blocks": 1})
    translator = io.export_network(
        tmp_path / "T.safetensors", GENERATORS.build(spec), spec, "generator", {"model": "cyclegan"}
    )
    assert main(["sample", "--checkpoint", str(translator), "--output", str(tmp_path / "o")]) == 2
    assert "holds a generator (from 'cyclegan'), not a sampler" in capsys.readouterr().err
    sampler = export_sampler(tmp_path / "G.safetensors")
    image = tmp_path / "in.png"
    Image.new("RGB", (16, 16)).save(image)
    assert (
        main(["translate", "--checkpoint", str(sampler), "--input", str(image), "--output", str(tmp_path / "t")]) == 2
    )
    assert "holds a sampler (from 'gan'), not an image-to-image generator" in capsys.readouterr().err
