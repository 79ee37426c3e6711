"""Self-training rows of the study: class-balanced pseudo-label thresholds on constructed confidence
maps, pseudo-label scores that leave ignored pixels out, labels written with the ignore index,
the concatenated training set, config errors, and the stage cache of the rounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import smooth_images, write_folder
from PIL import Image

from apps.study.config import SelfTraining, load_study_config
from apps.study.plan import Plan
from apps.study.self_training import (
    PseudoLabelScore,
    class_thresholds,
    pseudo_label,
    round_portion,
    write_pseudo_labels,
)
from translate.errors import ConfigError, DataError
from translate.segdata.classes import IGNORE

SMOKE = "configs/study_synth_smoke.yaml"
ROW = "CycleGAN + self-training"


def _two_class_map() -> tuple[np.ndarray, np.ndarray]:
    """A 10×10 confidence map: 90 pixels of a common, confident class 0 (0.90–0.99) and 10 of a
    rare, unsure class 1 (0.20–0.29)."""
    prediction = np.zeros((10, 10), np.uint8)
    prediction[0] = 1
    confidence = np.empty((10, 10), np.float32)
    confidence[1:] = np.linspace(0.90, 0.99, 90).reshape(9, 10)
    confidence[0] = np.linspace(0.20, 0.29, 10)
    return prediction, confidence


def test_thresholds_keep_the_top_portion_of_every_class_so_a_rare_unsure_class_gets_pixels() -> None:
    prediction, confidence = _two_class_map()
    thresholds = class_thresholds(confidence, prediction, portion=0.5)
    label = pseudo_label(prediction, confidence, thresholds)
    assert (label == 0).sum() == 45 and (label == 1).sum() == 5  # half of each class
    assert (label[0, 5:] == 1).all() and (label[0, :5] == IGNORE).all()  # the rare class's confident half
    assert thresholds[2:].tolist() == [1.0] * 17  # classes predicted nowhere: only the cap
    # a single threshold over all pixels (their median) would give the rare class nothing
    naive = pseudo_label(prediction, confidence, np.full(19, np.median(confidence)))
    assert (naive == 1).sum() == 0


def test_keep_above_keeps_every_pixel_that_confident_whatever_its_class() -> None:
    prediction, confidence = _two_class_map()
    label = pseudo_label(prediction, confidence, class_thresholds(confidence, prediction, 0.2, keep_above=0.92))
    assert (label == 0).sum() == (confidence[1:] >= 0.92).sum() == 70
    assert (label == 1).sum() == 2  # the rare class keeps its own top fifth


def test_a_threshold_floor_takes_the_labels_of_a_class_unsure_everywhere() -> None:
    prediction, confidence = _two_class_map()
    thresholds = class_thresholds(confidence, prediction, 0.5, min_threshold=0.5)
    label = pseudo_label(prediction, confidence, thresholds)
    assert (label == 1).sum() == 0 and (label == 0).sum() == 45  # the confident class keeps its half


def test_portion_grows_per_round_up_to_its_maximum() -> None:
    st = SelfTraining(rounds=5, portion=0.5, portion_step=0.1, max_portion=0.75)
    assert [round_portion(st, r) for r in range(1, 6)] == [0.5, 0.6, 0.7, 0.75, 0.75]


def test_pseudo_label_scores_leave_ignored_pixels_out() -> None:
    truth = np.array([[0, 0, 1, 1, IGNORE]], np.uint8)
    prediction = np.array([[0, 1, 1, 0, 1]], np.uint8)
    pseudo = np.array([[0, IGNORE, 1, IGNORE, 1]], np.uint8)  # the two wrong predictions ignored
    score = PseudoLabelScore()
    score.update(prediction, pseudo, truth)
    report = score.report([0, 1])
    assert report["accuracy"] == 1.0 and report["miou"] == 1.0
    assert report["coverage"] == 0.5  # 2 of the 4 pixels with a label (the unlabelled one is not counted)
    assert report["prediction_accuracy"] == 0.5


class _RedIsRoad(torch.nn.Module):
    """A 19-class 'segmenter' whose confidence in class 0 grows with the red channel (class 1 else)."""

    input_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, :1]
        rest = torch.full_like(red, -20.0).expand(-1, 17, -1, -1)
        return torch.cat([self.scale * red, torch.zeros_like(red), rest], 1)


def test_pseudo_labels_are_written_per_image_at_its_file_size_with_the_ignore_index(tmp_path: Path) -> None:
    from apps.study.self_training import predict_confidence
    from translate.segdata import SegmentationSet

    images = write_folder(tmp_path / "images", smooth_images(3, 16, seed=0))
    labels = tmp_path / "labels"
    labels.mkdir()
    for image in images.iterdir():
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(labels / image.name)
    pairs = [(p, labels / p.name) for p in sorted(images.iterdir())]
    dataset = SegmentationSet(pairs, "trainId", size=(8, 8))  # labelled at half the file size
    out = write_pseudo_labels(_RedIsRoad(), dataset, tmp_path / "pseudo", portion=0.5, classes=[0, 1])

    written = sorted((tmp_path / "pseudo").iterdir())
    assert [p.name for p in written] == [p.name for p, _ in pairs] and out["images"] == 3
    resized = np.stack([dataset[i][0] for i in range(3)])
    prediction, confidence = predict_confidence(_RedIsRoad(), resized)
    thresholds = class_thresholds(confidence, prediction, 0.5)
    for path, pred, conf in zip(written, prediction, confidence, strict=True):
        label = np.array(Image.open(path))
        assert label.shape == (16, 16)  # the file's size, not the resized one
        expected = pseudo_label(pred, conf, thresholds)
        assert (label[::2, ::2] == expected).all()
    assert set(np.unique(np.stack([np.array(Image.open(p)) for p in written]))) <= {0, 1, IGNORE}
    assert out["score"]["coverage"] == pytest.approx(0.5, abs=0.05)
    assert (
        out["score"]["accuracy"]
        == (pseudo_label(prediction, confidence, thresholds) == 0).sum()
        / (pseudo_label(prediction, confidence, thresholds) != IGNORE).sum()
    )


def test_concatenated_training_set_draws_each_part_with_the_key_seed(tmp_path: Path) -> None:
    from translate.segdata.datasets import SegmentationConcat, SegmentationPairs

    parts = []
    for name, seed in (("a", 0), ("b", 1)):
        images = write_folder(tmp_path / name / "images", smooth_images(2 + seed, 8, seed=seed))
        (tmp_path / name / "labels").mkdir()
        for image in images.iterdir():
            Image.fromarray(np.full((8, 8), seed, np.uint8)).save(tmp_path / name / "labels" / image.name)
        parts.append({"images": str(images), "labels": str(tmp_path / name / "labels")})
    both = SegmentationConcat(parts)
    assert len(both) == 5
    second = SegmentationPairs(**parts[1])
    assert torch.equal(both[(3, 7)]["image"], second[(1, 7)]["image"])
    assert both[(4, 9)]["label"].unique().tolist() == [1] and both[(1, 9)]["label"].unique().tolist() == [0]
    with pytest.raises(IndexError, match="sample 5 of a segmentation_concat of 5"):
        both[(5, 0)]
    with pytest.raises(DataError, match="at least one part"):
        SegmentationConcat([])


def _labelled_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    write_folder(root / "images", images)
    (root / "labels").mkdir()
    for i, label in enumerate(labels):
        Image.fromarray(label).save(root / "labels" / f"img_{i:03d}.png")
    return {"images": str(root / "images"), "labels": str(root / "labels"), "flip": False}


def test_classmix_pastes_half_the_source_classes_with_their_labels_onto_the_target(tmp_path: Path) -> None:
    from translate.segdata.datasets import SegmentationClassMix, SegmentationConcat, classmix_mask

    # source: 4 vertical stripes of classes 1–4, bright; target: one pseudo-label (class 7), dark,
    # its right half ignored
    source_label = np.repeat(np.repeat(np.arange(1, 5, dtype=np.uint8), 4)[None], 8, axis=0)
    target_label = np.full((8, 16), 7, np.uint8)
    target_label[:, 8:] = IGNORE
    source = _labelled_folder(tmp_path / "s", np.full((3, 8, 16, 3), 250, np.uint8), np.stack([source_label] * 3))
    target = _labelled_folder(tmp_path / "t", np.full((2, 8, 16, 3), 5, np.uint8), np.stack([target_label] * 2))
    mixed = SegmentationClassMix(target=target, source=source)
    assert len(mixed) == 2
    seen = set()
    for seed in range(20):
        sample = mixed[(1, seed)]
        image, label = sample["image"], sample["label"]
        assert image.shape == (3, 8, 16) and image.dtype == torch.float32 and label.dtype == torch.int64
        pasted = label != 7
        pasted &= label != IGNORE
        pasted_classes = set(label[pasted].unique().tolist())
        assert len(pasted_classes) == 2 and pasted_classes <= {1, 2, 3, 4}  # half of the four classes
        assert (image[:, pasted] > 0.9).all() and (image[:, ~pasted] < -0.9).all()  # pixels go with labels
        assert torch.equal(pasted, torch.from_numpy(np.isin(source_label, sorted(pasted_classes))))
        assert (label[~pasted] == torch.from_numpy(target_label)[~pasted]).all()  # the target's elsewhere
        seen.add(tuple(sorted(pasted_classes)))
        assert torch.equal(mixed[(1, seed)]["label"], label)  # a key is replayed exactly
    assert len(seen) > 3  # every seed draws its own classes
    # the ignore index is never a class to paste, and a label of it alone pastes nothing
    rng = np.random.default_rng(0)
    assert not classmix_mask(np.full((4, 4), IGNORE, np.uint8), rng).any()
    # as a part of the round's concatenated set
    both = SegmentationConcat([source, {"name": "segmentation_classmix", "target": target, "source": source}])
    assert len(both) == 5 and torch.equal(both[(4, 3)]["label"], mixed[(1, 3)]["label"])
    other = _labelled_folder(tmp_path / "o", np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(DataError, match="one sample size"):
        SegmentationClassMix(target=target, source=other)[(0, 0)]
    with pytest.raises(DataError, match="segmentation_pairs or segmentation_classmix"):
        SegmentationConcat([{"name": "unpaired_folders"}])


def _conditions(self_training: str) -> str:
    return (
        "conditions=[{name: s, train_on: source}, {name: o, train_on: target}, "
        f"{{name: st, train_on: source, self_training: {self_training}}}]"
    )


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "conditions=[{name: s, train_on: source}, {name: o, train_on: target, self_training: {rounds: 1}}]",
            "condition 'o': self_training needs train_on source or translated",
        ),
        (_conditions("{rounds: 0}"), "condition 'st': self_training.rounds must be >= 1, got 0"),
        (_conditions("{portion: 1.5}"), "condition 'st': self_training.portion must be in (0, 1], got 1.5"),
        (_conditions("{keep_above: 0}"), "condition 'st': self_training.keep_above must be in (0, 1], got 0"),
        (_conditions("{portion_step: -0.1}"), "condition 'st': self_training.portion_step must be >= 0, got -0.1"),
        (
            _conditions("{init: warm}"),
            "condition 'st': self_training.init must be one of scratch, previous, got 'warm'",
        ),
        (_conditions("{steps: -1}"), "condition 'st': self_training.steps and .lr must be >= 0"),
        (_conditions("{min_threshold: 1.0}"), "condition 'st': self_training.min_threshold must be in [0, 1), got 1.0"),
        (_conditions("{mix: cutmix}"), "condition 'st': self_training.mix must be one of none, classmix, got 'cutmix'"),
        (_conditions("{portions: 0.5}"), "portions"),
        (_conditions("{teacher: st}"), "condition 'st': self_training.teacher 'st' must be another condition"),
        (_conditions("{teacher: nobody}"), "self_training.teacher 'nobody' must be another condition (known: s, o)"),
        (
            _conditions("{teacher: o}"),
            "condition 'st': self_training.teacher 'o' is trained on the target labels, which self-training must not",
        ),
        (
            "conditions=[{name: s, train_on: source}, {name: o, train_on: target}, "
            "{name: e, train_on: ensemble, ensemble: [s, o]}, "
            "{name: st, train_on: source, self_training: {teacher: e}}]",
            "self_training.teacher 'e' is trained on the target labels",
        ),
        (
            "conditions=[{name: s, train_on: source, self_training: {teacher: e}}, {name: o, train_on: target}, "
            "{name: st, train_on: source, self_training: {teacher: s}}, "
            "{name: e, train_on: ensemble, ensemble: [s, st]}]",
            "condition 's': self_training.teacher 'e' needs this row's own segmenters (a cycle of teachers)",
        ),
    ],
)
def test_bad_self_training_settings_are_errors_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as error:
        load_study_config(SMOKE, [override])
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1


def _fingerprints(**self_training) -> dict[str, str]:
    """Every stage of the smoke study, with the self-training row's settings changed by ``self_training``."""
    cfg = load_study_config(SMOKE)
    row = next(c for c in cfg.conditions if c.name == ROW)
    for key, value in self_training.items():
        setattr(row.self_training, key, value)
    return {s.name: s.fingerprint for s in Plan(cfg).all_stages()}


def _row_stages(kinds: tuple[str, ...], rounds: tuple[int, ...]) -> set[str]:
    return {f"{kind}:{ROW}-seed{seed}-round{r}" for kind in kinds for seed in (0, 1) for r in rounds}


def test_changing_a_self_training_key_reruns_only_that_rows_rounds() -> None:
    before, after = _fingerprints(), _fingerprints(portion=0.6)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == _row_stages(("pseudolabels", "segmenter"), (1, 2)) | {"report"}


def test_a_rounds_steps_rerun_its_segmenters_but_not_the_first_labels() -> None:
    before, after = _fingerprints(), _fingerprints(steps=5)
    changed = {name for name in before if before[name] != after[name]}
    # round 2's labels come from round 1's segmenter, so they change; round 1's from the plain one
    assert changed == _row_stages(("segmenter",), (1, 2)) | _row_stages(("pseudolabels",), (2,)) | {"report"}


def test_another_round_keeps_the_rounds_before_it() -> None:
    before, after = _fingerprints(), _fingerprints(rounds=3)
    assert after.keys() - before.keys() == _row_stages(("pseudolabels", "segmenter"), (3,))
    assert {name for name in before if before[name] != after[name]} == {"report"}


def test_a_teacher_relabels_round_one_and_reruns_what_follows_from_it() -> None:
    before, after = _fingerprints(), _fingerprints(teacher="CycleGAN ensemble")
    changed = {name for name in before if before[name] != after[name]}
    assert changed == _row_stages(("pseudolabels", "segmenter"), (1, 2)) | {"report"}
    plan = Plan(load_study_config(SMOKE))
    row = plan.condition(ROW)
    row.self_training.teacher = "CycleGAN ensemble"
    assert plan.labeller(row, 0, 1).name.startswith("ensemble:")  # round 1: the teacher's row
    assert plan.labeller(row, 0, 2).name == f"segmenter:{ROW}-seed0-round1"  # then the row's own


def test_students_can_teach_the_next_generation() -> None:
    overrides = [
        "conditions=[{name: s, train_on: source}, {name: o, train_on: target}, "
        "{name: a, train_on: source, self_training: {rounds: 1}}, "
        "{name: b, train_on: source, photometric: true, self_training: {rounds: 1}}, "
        "{name: ab, train_on: ensemble, ensemble: [a, b]}, "
        "{name: next, train_on: source, self_training: {rounds: 1, teacher: ab}}]"
    ]
    plan = Plan(load_study_config(SMOKE, overrides))
    labels = plan.pseudo_labels(plan.condition("next"), 0, 1)
    teacher = next(k for k in labels.inputs if k.startswith("stage ensemble"))
    assert teacher == "stage ensemble:a-round1+b-round1-seed0"  # the students' last rounds
    # a self-training row teaching alone teaches with its last round too
    one = Plan(load_study_config(SMOKE, [overrides[0].replace("teacher: ab", "teacher: b")]))
    assert one.labeller(one.condition("next"), 1, 1).name == "segmenter:b-seed1-round1"


def test_an_ensemble_holding_a_self_training_row_averages_its_last_round() -> None:
    from apps.study.config import Condition

    cfg = load_study_config(SMOKE)
    cfg.conditions.append(Condition("both", "ensemble", ensemble=["CycleGAN", ROW]))
    stage = Plan(cfg).ensemble(cfg.conditions[-1], 1)
    assert [k for k in stage.inputs if k.startswith("stage segmenter")] == [
        "stage segmenter:translated-cyclegan-seed1",
        f"stage segmenter:{ROW}-seed1-round2",
    ]


def test_an_ensemble_labels_by_its_averaged_softmax(tmp_path: Path) -> None:
    from apps.study.self_training import predict_confidence

    sure, unsure = _RedIsRoad(), _RedIsRoad()
    with torch.no_grad():
        unsure.scale.fill_(-1.0)  # disagrees: more red, less road
    images = smooth_images(2, 8, seed=1)
    prediction, confidence = predict_confidence([sure, unsure], images)
    from translate.data.images import to_tensor

    x = to_tensor(images)
    expected = (sure(x).softmax(1) + unsure(x).softmax(1)) / 2
    top, index = expected.max(1)
    assert np.allclose(confidence, top.detach().numpy(), atol=1e-6)
    assert (prediction == index.numpy()).all() and len(np.unique(prediction)) == 2
    # averaging lowers the confidence wherever the members disagree
    assert (confidence <= predict_confidence(sure, images)[1] + 1e-6).all()


class _LeftIsRoad(torch.nn.Module):
    """A 'segmenter' sure of class 0 on the left of every image, of class 1 on the right."""

    input_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # scoring reads the device off a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(4.0, -4.0, x.shape[-1]).expand(x.shape[0], 1, x.shape[-2], -1)
        return torch.cat([ramp, torch.zeros_like(ramp), torch.full_like(ramp, -20.0).expand(-1, 17, -1, -1)], 1)


def test_flipped_labels_average_each_pixel_with_its_mirror_image() -> None:
    from apps.study.evaluation import class_probabilities
    from apps.study.self_training import predict_confidence

    images = smooth_images(2, 8, seed=2)
    # per pixel, mirroring changes nothing
    assert np.allclose(
        predict_confidence(_RedIsRoad(), images, flip=True)[1], predict_confidence(_RedIsRoad(), images)[1]
    )
    # by position, the mirror disagrees everywhere, and most where the plain pass was surest
    plain = class_probabilities(_LeftIsRoad(), images)
    flipped = class_probabilities(_LeftIsRoad(), images, flip=True)
    assert torch.allclose(flipped, (plain + plain.flip(-1)) / 2, atol=1e-6)
    assert torch.allclose(flipped[:, 0], torch.full_like(flipped[:, 0], 0.5), atol=1e-6)


def test_a_flip_relabels_and_retrains_only_that_rows_rounds() -> None:
    before, after = _fingerprints(), _fingerprints(flip=True)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == _row_stages(("pseudolabels", "segmenter"), (1, 2)) | {"report"}


def test_classmix_reruns_only_the_rounds_segmenters() -> None:
    before, after = _fingerprints(), _fingerprints(mix="classmix")
    changed = {name for name in before if before[name] != after[name]}
    # the labels of round 1 come from the plain segmenter; round 2's from round 1's, which changed
    assert changed == _row_stages(("segmenter",), (1, 2)) | _row_stages(("pseudolabels",), (2,)) | {"report"}
