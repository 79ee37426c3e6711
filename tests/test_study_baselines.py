"""The study's training-free translators (FDA, histogram matching, pixel-distribution adaptation)
and its ensemble rows (FDA's multi-band average of segmenters): what the transforms do to pixels,
that a reference is a function of (image index, seed), the files the translation stage writes,
the keys each kind's stage reads, and the averaged softmax of an ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from apps.study.baselines import ReferenceTranslator, translate_arrays, translate_folder
from apps.study.config import TranslatorSection, load_study_config
from apps.study.plan import Plan
from translate.data.images import read_image, write_image

SMOKE = "configs/study_synth_smoke.yaml"


def _image(seed: int, h: int = 32, w: int = 48, low: int = 0, high: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, (h, w, 3), dtype=np.uint8)


def _references(folder: Path, n: int = 5) -> list[Path]:
    paths = []
    for i in range(n):
        # each reference a different flat-ish colour, so a result tells which one was used
        ref = np.clip(_image(100 + i, low=0, high=40).astype(int) + 40 * i, 0, 255).astype(np.uint8)
        paths.append(write_image(folder / f"{i:06d}.png", ref))
    return paths


def test_a_reference_is_a_function_of_the_image_index_and_the_seed(tmp_path: Path) -> None:
    refs = _references(tmp_path)
    first = ReferenceTranslator(TranslatorSection(kind="fda", beta=0.1), refs)
    again = ReferenceTranslator(TranslatorSection(kind="fda", beta=0.1), refs)
    other_seed = ReferenceTranslator(TranslatorSection(kind="fda", beta=0.1, reference_seed=7), refs)
    quality = ReferenceTranslator(TranslatorSection(kind="fda", beta=0.1), refs, stream="quality")
    drawn = [first.reference_index(i) for i in range(40)]
    assert drawn == [again.reference_index(i) for i in range(40)]  # another instance, the same draws
    assert drawn[::-1] == [again.reference_index(i) for i in reversed(range(40))]  # in any order
    assert drawn != [other_seed.reference_index(i) for i in range(40)]
    assert drawn != [quality.reference_index(i) for i in range(40)]
    assert set(drawn) == set(range(len(refs)))  # every reference is used
    image = _image(0)
    assert np.array_equal(first.translate(image, 3), again.translate(image, 3))


def test_fda_keeps_the_source_phase_and_takes_the_low_frequency_amplitude_of_the_reference(tmp_path: Path) -> None:
    refs = _references(tmp_path)
    image = _image(0, 64, 64, low=40, high=100)  # mid-grey detail: nothing clips at the new mean
    fda = ReferenceTranslator(TranslatorSection(kind="fda", beta=0.05), refs)
    index = next(i for i in range(100) if fda.reference(i).mean() > 150)  # a reference far brighter
    out = fda.translate(image, index)
    reference = fda.reference(index).astype(np.float32)
    assert out.dtype == np.uint8 and out.shape == image.shape
    # the zero frequency (each channel's mean) is the reference's; the image's fine detail stays
    assert np.allclose(out.reshape(-1, 3).mean(0), reference.reshape(-1, 3).mean(0), atol=3.0)
    assert abs(image.reshape(-1, 3).mean(0) - reference.reshape(-1, 3).mean(0)).min() > 50
    detail = np.corrcoef((out.astype(float) - out.mean()).ravel(), (image.astype(float) - image.mean()).ravel())[0, 1]
    assert detail > 0.8


def test_histogram_matching_gives_the_source_the_reference_histogram(tmp_path: Path) -> None:
    refs = _references(tmp_path)
    image = _image(1)
    hist = ReferenceTranslator(TranslatorSection(kind="histogram"), refs)
    out, reference = hist.translate(image, 2), hist.reference(2)
    for c in range(3):  # the same value quantiles per channel, and the same ordering of pixels
        assert np.abs(np.sort(out[..., c].ravel()).astype(int) - np.sort(reference[..., c].ravel())).max() <= 2
    assert np.corrcoef(out[..., 0].ravel(), image[..., 0].ravel())[0, 1] > 0.95
    half = ReferenceTranslator(TranslatorSection(kind="histogram", blend=0.5), refs).translate(image, 2)
    assert np.abs(half.astype(float) - (image / 2 + out / 2)).max() <= 1.5


def test_pixel_distribution_adaptation_takes_the_reference_statistics_and_is_not_black(tmp_path: Path) -> None:
    refs = _references(tmp_path)
    image = _image(2, low=100, high=250)
    for transform_type in ("pca", "standard", "minmax"):
        pda = ReferenceTranslator(TranslatorSection(kind="pixel_distribution", transform_type=transform_type), refs)
        index = next(i for i in range(100) if pda.reference(i).mean() > 100)
        out, reference = pda.translate(image, index), pda.reference(index).astype(np.float32)
        assert out.dtype == np.uint8
        # albumentations 2.0.8 alone returns these pixels on the [0, 1] scale cast to uint8: black
        assert np.allclose(out.reshape(-1, 3).mean(0), reference.reshape(-1, 3).mean(0), atol=4.0), transform_type


def test_the_translation_stage_writes_one_png_per_source_image_by_stem(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _references(data / "target_train" / "images", 3)
    sources = [write_image(data / "source_train" / "images" / f"frame_{i}.jpg", _image(i)) for i in range(4)]
    section = TranslatorSection(kind="histogram")
    out = tmp_path / "translated"
    assert translate_folder(section, data, out) == 4
    written = sorted(out.iterdir())
    assert [p.name for p in written] == [f"frame_{i}.png" for i in range(4)]
    translator = ReferenceTranslator(section, sorted((data / "target_train" / "images").iterdir()))
    for i, source in enumerate(sources):
        assert np.array_equal(read_image(out / f"frame_{i}.png"), translator.translate(read_image(source), i))
    # a rerun keeps finished files; the quality set draws its references from its own stream
    before = {p: p.stat().st_mtime_ns for p in written}
    assert translate_folder(section, data, out) == 4
    assert {p: p.stat().st_mtime_ns for p in written} == before
    quality = translate_arrays(section, data, np.stack([read_image(s) for s in sources]))
    assert quality.shape == (4, 32, 48, 3)


def _fingerprints(*overrides: str) -> dict[str, str]:
    return {s.name: s.fingerprint for s in Plan(load_study_config(SMOKE, list(overrides))).all_stages()}


def test_a_training_free_translator_fingerprints_exactly_the_keys_it_reads() -> None:
    base = _fingerprints()
    assert base["translator:fda05"] != base["translator:fda09"]
    # the GAN keys of its section, and the device, change nothing it computes
    for ignored in (
        "translators.fda05.steps=9",
        "translators.fda05.lr=0.1",
        "translators.fda05.blend=0.5",
        "device=cuda",
    ):
        after = _fingerprints(ignored)
        assert after["translator:fda05"] == base["translator:fda05"], ignored
        assert after["translation:fda05"] == base["translation:fda05"], ignored
    # its own keys redo its translation, the rows trained on it and the ensemble holding them
    after = _fingerprints("translators.fda05.beta=0.02")
    changed = {name for name in base if base[name] != after[name]}
    assert changed == {
        "translator:fda05",
        "translation:fda05",
        "quality:fda05",
        "segmenter:translated-fda05-seed0",
        "segmenter:translated-fda05-seed1",
        "segmenter:translated-fda05-photometric-p0.5-seed0",
        "segmenter:translated-fda05-photometric-p0.5-seed1",
        "ensemble:translated-fda05+translated-fda09-seed0",
        "ensemble:translated-fda05+translated-fda09-seed1",
        "report",
    }
    for key in ("reference_seed=3",):
        assert _fingerprints(f"translators.histogram.{key}")["translator:histogram"] != base["translator:histogram"]
    assert (
        _fingerprints("translators.pixel_distribution.transform_type=minmax")["translator:pixel_distribution"]
        != (base["translator:pixel_distribution"])
    )
    # a GAN's stage ignores the options of the training-free kinds
    assert _fingerprints("translators.cyclegan.beta=0.2")["translator:cyclegan"] == base["translator:cyclegan"]


def test_an_ensemble_row_reads_the_segmenters_of_its_members_of_the_same_seed() -> None:
    plan = Plan(load_study_config(SMOKE))
    row = next(c for c in plan.cfg.conditions if c.name == "FDA multi-band")
    stage = plan.row(row, 1)
    assert stage.name == "ensemble:translated-fda05+translated-fda09-seed1"
    read = {k.removeprefix("stage ") for k in stage.inputs if k.startswith("stage ")}
    assert read == {"data", "segmenter:translated-fda05-seed1", "segmenter:translated-fda09-seed1"}


class _Fixed(torch.nn.Module):
    """A segmenter whose logits are the same at every pixel."""

    input_multiple = 1

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[None, :, None, None].expand(x.shape[0], -1, *x.shape[2:])


def test_an_ensemble_predicts_the_arg_max_of_the_averaged_softmax() -> None:
    from apps.study.evaluation import predict_at

    images = _image(0, 4, 4)[None]
    # class 1 wins the averaged logits (3.5 against 3.0), class 0 the averaged softmax (0.5 against 0.5 − ε)
    confident, unsure = _Fixed([0.0, 7.0, 6.0]), _Fixed([6.0, 0.0, 0.0])
    probabilities = (torch.tensor([0.0, 7.0, 6.0]).softmax(0) + torch.tensor([6.0, 0.0, 0.0]).softmax(0)) / 2
    assert int(probabilities.argmax()) == 0
    assert (predict_at([confident, unsure], images) == 0).all()
    assert (predict_at(confident, images) == 1).all()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["translators.fda05.kind=fourier"], "translators.fda05.kind must be one of gan, fda, histogram, "),
        (["translators.fda05.beta=0.7"], "translators.fda05.beta must be in (0, 0.5], got 0.7"),
        (["translators.fda05.beta=0"], "translators.fda05.beta must be in (0, 0.5], got 0"),
        (["translators.histogram.blend=1.5"], "translators.histogram.blend must be in [0, 1], got 1.5"),
        (
            ["translators.pixel_distribution.transform_type=ica"],
            "translators.pixel_distribution.transform_type must be one of pca, standard, minmax, got 'ica'",
        ),
        (
            ["translators.fda05.init_from=cyclegan"],
            "translators.fda05: kind 'fda' is not trained, so it takes neither init_from nor lambda_semantic",
        ),
        (
            ["translators.cycada.init_from=fda05"],
            "translators.cycada.init_from: 'fda05' is of kind 'fda', which has no weights to start from",
        ),
    ],
)
def test_bad_translator_kind_options_are_one_clear_line(overrides: list[str], message: str, capsys) -> None:
    from translate.cli import main

    assert main(["study", SMOKE, "out_dir=/nonexistent/never", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "rows,message",
    [
        (
            "{name: e, train_on: ensemble, ensemble: [s, nowhere]}",
            "condition 'e': ensemble names 'nowhere', which is not a condition that trains segmenters (known: s, o)",
        ),
        ("{name: e, train_on: ensemble, ensemble: [s, s]}", "condition 'e': ensemble must name at least two different"),
        ("{name: e, train_on: ensemble}", "condition 'e': ensemble must name at least two different conditions"),
        (
            "{name: e, train_on: source, ensemble: [s, o]}",
            "condition 'e': ensemble is for train_on: ensemble, got train_on 'source'",
        ),
    ],
)
def test_bad_ensemble_rows_are_one_clear_line(rows: str, message: str, capsys) -> None:
    from translate.cli import main

    conditions = f"conditions=[{{name: s, train_on: source}}, {{name: o, train_on: target}}, {rows}]"
    assert main(["study", SMOKE, "out_dir=/nonexistent/never", conditions]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
