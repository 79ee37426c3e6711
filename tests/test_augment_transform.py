"""GANTranslate: an albumentations transform that leaves masks alone, keeps size and dtype, is
repeatable under a seed, round-trips through serialisation and loads once per DataLoader worker."""

from __future__ import annotations

import multiprocessing
import os

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from helpers import smooth_images
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

from augment import GANTranslate
from translate.data.images import to_image, to_tensor
from translate.errors import CheckpointError, ConfigError, DataError
from translate.io import export_network, load_generator
from translate.nets import build_generator

SPEC = {"name": "resnet", "ngf": 4, "n_blocks": 1}


def export_tiny(path, spec=SPEC, seed=0):
    torch.manual_seed(seed)
    return export_network(path, build_generator(spec), spec, "generator", {"value_range": [-1, 1]})


@pytest.fixture
def checkpoint(tmp_path):
    return str(export_tiny(tmp_path / "g.safetensors"))


def sample(seed=0, size=(40, 48)):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    mask = rng.integers(0, 19, size, dtype=np.uint8)
    return image, mask


def expected(checkpoint, image_uint8):
    """The generator applied directly, through the toolkit's own conversion."""
    with torch.no_grad():
        return to_image(load_generator(checkpoint)(to_tensor(image_uint8)[None]))


def geometric():
    return [A.HorizontalFlip(p=0.5), A.Affine(rotate=(-20, 20), scale=(0.8, 1.2), p=0.8), A.RandomCrop(32, 32)]


def test_mask_bit_identical_and_image_translated_in_compose(checkpoint):
    image, mask = sample()
    keypoints = np.array([[5.0, 6.0], [20.0, 30.0]])
    kw = dict(keypoint_params=A.KeypointParams(format="xy", remove_invisible=False), seed=7)
    for _ in range(4):
        alone = A.Compose(geometric(), **kw)
        with_gan = A.Compose([*geometric(), GANTranslate(checkpoint, blend=(0.2, 1.0), p=0.5)], **kw)
        a = alone(image=image, mask=mask, keypoints=keypoints)
        b = with_gan(image=image, mask=mask, keypoints=keypoints)
        assert np.array_equal(a["mask"], b["mask"]) and a["mask"].dtype == b["mask"].dtype
        np.testing.assert_array_equal(a["keypoints"], b["keypoints"])
        assert b["image"].shape == a["image"].shape == (32, 32, 3) and b["image"].dtype == np.uint8
    # full strength, always: the image is exactly the generator's output of what the others made
    alone = A.Compose(geometric(), seed=3)(image=image, mask=mask)
    full = A.Compose([*geometric(), GANTranslate(checkpoint, p=1.0)], seed=3)(image=image, mask=mask)
    diff = np.abs(full["image"].astype(int) - expected(checkpoint, alone["image"]).astype(int))
    assert diff.max() <= 1 and not np.array_equal(full["image"], alone["image"])


def test_same_seed_same_output_and_blend_drawn_from_seed(checkpoint):
    image, mask = sample(1)

    def run(seed):
        pipe = A.Compose([*geometric(), GANTranslate(checkpoint, blend=(0.0, 1.0), p=0.7)], seed=seed)
        return [pipe(image=image, mask=mask)["image"] for _ in range(3)]

    first, again, other = run(11), run(11), run(12)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=False))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=False))


def test_blend_mixes_original_and_translation(checkpoint):
    image, _ = sample(2)
    half = GANTranslate(checkpoint, blend=0.5, p=1.0)(image=image)["image"].astype(float)
    full = expected(checkpoint, image).astype(float)
    assert np.abs(half - (0.5 * full + 0.5 * image)).max() <= 1.0
    assert np.array_equal(GANTranslate(checkpoint, blend=0.0, p=1.0)(image=image)["image"], image)


def test_to_dict_from_dict_and_save_load_round_trips(checkpoint, tmp_path):
    image, mask = sample(3)
    pipe = A.Compose([*geometric(), GANTranslate(checkpoint, blend=(0.3, 0.9), p=0.8, tile=64)], seed=5)
    serialised = A.to_dict(pipe)
    gan = serialised["transform"]["transforms"][-1]
    assert gan["__class_fullname__"] == "augment.transforms.GANTranslate" and gan["checkpoint"] == checkpoint
    A.save(pipe, str(tmp_path / "pipe.json"))
    A.save(pipe, str(tmp_path / "pipe.yaml"), data_format="yaml")
    copies = [
        A.from_dict(serialised),
        A.load(str(tmp_path / "pipe.json")),
        A.load(str(tmp_path / "pipe.yaml"), data_format="yaml"),
    ]
    reference = [pipe(image=image, mask=mask) for _ in range(2)]
    for copy in copies:
        copy.set_random_seed(5)
        pipe.set_random_seed(5)
        reference = [pipe(image=image, mask=mask) for _ in range(2)]
        for ref, out in zip(reference, (copy(image=image, mask=mask) for _ in range(2)), strict=False):
            assert np.array_equal(ref["image"], out["image"]) and np.array_equal(ref["mask"], out["mask"])


def test_images_stack_is_one_batched_call(checkpoint):
    t = GANTranslate(checkpoint, p=1.0)
    stack = np.stack([sample(s, (24, 24))[0] for s in range(4)])
    net, _ = t._generator.get()
    calls = []
    handle = net.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    out = t(images=stack)["images"]
    handle.remove()
    assert calls == [4]
    assert out.shape == stack.shape and out.dtype == np.uint8
    for translated, image in zip(out, stack, strict=False):
        assert np.abs(translated.astype(int) - expected(checkpoint, image).astype(int)).max() <= 1


def test_image_larger_than_tile_goes_through_tiles(checkpoint):
    image = cv2.resize(smooth_images(1, 24, seed=4)[0], (90, 70), interpolation=cv2.INTER_CUBIC)
    t = GANTranslate(checkpoint, p=1.0, tile=64)
    net, _ = t._generator.get()
    shapes = []
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    handle = first_conv.register_forward_hook(lambda module, inputs, output: shapes.append(tuple(output.shape[-2:])))
    out = t(image=image)["image"]
    handle.remove()
    assert out.shape == image.shape and out.dtype == np.uint8
    assert shapes and all(max(s) <= 64 for s in shapes)  # never the whole 70×90 image at once
    # tiled inference shares whole-image norm statistics: close to the one-pass result
    diff = np.abs(out.astype(int) - expected(checkpoint, image).astype(int))
    assert diff.mean() < 0.5 and diff.max() <= 4


class Pairs(Dataset):
    """Samples through a pipeline with GANTranslate and, in lockstep, the same pipeline without it;
    each also reports which process made it and how that process loaded the generator."""

    def __init__(self, checkpoint: str, n: int = 8) -> None:
        self.n = n
        self.transform = GANTranslate(checkpoint, p=1.0, blend=(0.5, 1.0))
        self.pipe = A.Compose([*geometric(), self.transform], seed=0)
        self.alone = A.Compose(geometric(), seed=0)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        image, mask = sample(index, (40, 40))
        out, plain = self.pipe(image=image, mask=mask), self.alone(image=image, mask=mask)
        loaded_here = self.transform.loaded_pid == os.getpid()
        return out["image"], out["mask"], plain["mask"], os.getpid(), self.transform.loads_in_process, loaded_here


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_dataloader_two_workers_load_once_each_and_keep_masks(checkpoint, context):
    dataset = Pairs(checkpoint)
    dataset.transform(
        image=sample()[0], force_apply=True
    )  # the parent loads first: forked workers must not reuse its model
    assert dataset.transform.loads_in_process == 1
    loader = DataLoader(
        dataset, batch_size=2, num_workers=2, multiprocessing_context=multiprocessing.get_context(context)
    )
    images, masks, plain_masks, pids, loads, loaded_here = (torch.cat(column) for column in zip(*loader, strict=False))
    assert len(set(pids.tolist())) == 2 and os.getpid() not in pids.tolist()
    assert loads.tolist() == [1] * len(dataset)
    assert loaded_here.all()  # each worker's own model, never the parent's
    assert torch.equal(masks, plain_masks) and masks.dtype == torch.uint8
    assert images.shape == (8, 32, 32, 3) and images.dtype == torch.uint8


def test_transform_pickles_without_its_model(checkpoint):
    import pickle

    t = GANTranslate(checkpoint, p=1.0)
    t(image=sample()[0])
    blob = pickle.dumps(t)
    assert len(blob) < 20_000  # the weights (about 40 kB here) are not in it
    assert pickle.loads(blob).loads_in_process == 0


# --- documented conversions ---------------------------------------------------------------------


def test_grayscale_is_translated_as_rgb_and_returned_as_luma(checkpoint):
    image, _ = sample(5)
    gray = image[..., 1].copy()
    for shaped in (gray, gray[..., None]):
        out = GANTranslate(checkpoint, p=1.0)(image=shaped)["image"]
        assert out.shape == shaped.shape and out.dtype == np.uint8
        rgb = expected(checkpoint, np.repeat(gray[..., None], 3, axis=2)).astype(float)
        luma = rgb @ np.array([0.299, 0.587, 0.114])
        assert np.abs(out.reshape(gray.shape) - luma).max() <= 1.0


def test_rgba_keeps_alpha_byte_for_byte(checkpoint):
    image, mask = sample(6)
    rgba = np.dstack([image, (mask * 13).astype(np.uint8)])
    out = GANTranslate(checkpoint, p=1.0)(image=rgba)["image"]
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])
    assert np.abs(out[..., :3].astype(int) - expected(checkpoint, image).astype(int)).max() <= 1


def test_uint16_and_float_images_keep_their_dtype_and_scale(checkpoint):
    image, _ = sample(7)
    reference = expected(checkpoint, image).astype(float)
    deep = GANTranslate(checkpoint, p=1.0)(image=image.astype(np.uint16) * 257)["image"]
    assert deep.dtype == np.uint16 and np.abs(deep / 257.0 - reference).max() <= 1.0
    unit = GANTranslate(checkpoint, p=1.0)(image=image.astype(np.float32) / 255)["image"]
    assert unit.dtype == np.float32 and 0.0 <= unit.min() and unit.max() <= 1.0
    assert np.abs(unit * 255 - reference).max() <= 1.0


# --- bad input: clear errors --------------------------------------------------------------------


def test_bad_arguments_fail_at_construction(checkpoint):
    for bad, field in [
        ({"p": 1.5}, "p"),
        ({"p": -0.1}, "p"),
        ({"blend": 1.2}, "blend"),
        ({"blend": (0.6, 0.4)}, "blend"),
        ({"blend": (-0.1, 0.5)}, "blend"),
        ({"device": "gpu"}, "device"),
        ({"amp": "fp8"}, "amp"),
        ({"tile": 4}, "tile"),
    ]:
        with pytest.raises(ValueError, match=field):
            GANTranslate(checkpoint, **bad)


def test_missing_and_foreign_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        GANTranslate(tmp_path / "missing.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an exported i2i network"):
        GANTranslate(plain)
    other = tmp_path / "sampler.safetensors"
    save_file(
        {"w": torch.zeros(2)},
        str(other),
        metadata={"format": "i2i-network", "family": "sampler", "architecture": "{}", "info": "{}"},
    )
    with pytest.raises(CheckpointError, match="not a generator"):
        GANTranslate(other)


def test_channel_mismatches_are_named(tmp_path):
    gray_net = export_tiny(tmp_path / "gray.safetensors", {**SPEC, "in_channels": 1, "out_channels": 1})
    with pytest.raises(DataError, match="3 channel.*generator takes 1"):
        GANTranslate(gray_net, p=1.0)(image=sample()[0])
    # a one-channel generator takes grayscale as it is
    gray = sample()[0][..., 0]
    assert GANTranslate(gray_net, p=1.0)(image=gray)["image"].shape == gray.shape
    with pytest.raises(CheckpointError, match="3 to 1 channels"):
        GANTranslate(export_tiny(tmp_path / "odd.safetensors", {**SPEC, "out_channels": 1}))
    with pytest.raises(DataError, match="2 channel"):
        GANTranslate(tmp_path / "gray.safetensors", p=1.0)(image=np.zeros((16, 16, 2), np.uint8))


def test_bad_images_are_refused(checkpoint):
    t = GANTranslate(checkpoint, p=1.0)
    image, _ = sample()
    with pytest.raises(DataError, match="smaller than the generator takes"):
        t(image=image[:3, :3])
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        t(image=image.astype(np.float32))
    nan = image.astype(np.float32) / 255
    nan[0, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        t(image=nan)
    with pytest.raises(DataError, match="int32"):
        t(image=image.astype(np.int32))


# --- workers and devices ------------------------------------------------------------------------


class Decisions(Dataset):
    """The transform's own decision for every sample: the blend it drew, or -1 where it skipped."""

    def __init__(self, checkpoint: str, n: int = 12) -> None:
        self.n = n
        self.pipe = A.Compose([GANTranslate(checkpoint, p=0.5, blend=(0.0, 1.0))], seed=0)
        self.image = sample(0, (16, 16))[0]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        self.pipe(image=self.image)
        drawn = self.pipe.transforms[0].get_applied_params().get("blend", -1.0)
        return float(drawn), torch.utils.data.get_worker_info().id


def decisions_by_worker(dataset: Dataset, torch_seed: int, context: str = "fork") -> dict[int, list[float]]:
    torch.manual_seed(torch_seed)
    start = multiprocessing.get_context(context)
    loader = DataLoader(dataset, batch_size=1, num_workers=2, multiprocessing_context=start)
    by_worker: dict[int, list[float]] = {0: [], 1: []}
    for drawn, worker in loader:
        by_worker[int(worker)].append(float(drawn))
    return by_worker


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_workers_draw_their_own_repeatable_streams_without_worker_init_fn(checkpoint, context):
    dataset = Decisions(checkpoint)
    first = decisions_by_worker(dataset, 3, context)
    assert len(first[0]) == len(first[1]) == 6
    assert first[0] != first[1]  # a copy of one stream (forked or pickled) would repeat its sibling's choices
    assert first == decisions_by_worker(dataset, 3, context)  # the same torch seed, the same run
    assert first != decisions_by_worker(dataset, 4, context)


def test_a_seed_set_in_the_worker_is_kept(checkpoint):
    dataset = Decisions(checkpoint)

    def same_seed_everywhere(worker_id: int) -> None:
        torch.utils.data.get_worker_info().dataset.pipe.set_random_seed(7)

    loader = DataLoader(
        dataset,
        batch_size=1,
        num_workers=2,
        worker_init_fn=same_seed_everywhere,
        multiprocessing_context=multiprocessing.get_context("fork"),
    )
    by_worker: dict[int, list[float]] = {0: [], 1: []}
    for drawn, worker in loader:
        by_worker[int(worker)].append(float(drawn))
    assert by_worker[0] == by_worker[1]  # what the user asked for, not overridden


def test_cuda_in_a_fork_of_a_cuda_process_is_refused_with_the_fix(checkpoint, monkeypatch):
    import augment.transforms

    # a worker forked after its parent initialised CUDA, simulated: torch's own flag says so
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    monkeypatch.setattr(augment.transforms, "resolve_device", torch.device)  # no GPU needed to name one
    t = GANTranslate(checkpoint, device="cuda", p=1.0)
    with pytest.raises(ConfigError, match=r"device 'cuda'.*forked.*multiprocessing_context='spawn'.*TranslateBatch"):
        t(image=sample()[0])
    assert t.loads_in_process == 0
    # the CPU is fine in such a worker
    assert GANTranslate(checkpoint, device="cpu", p=1.0)(image=sample()[0])["image"].shape == (40, 48, 3)
