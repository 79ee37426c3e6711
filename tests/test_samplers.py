"""Sampler networks, models, tricks and measures: shapes, training through the real engine,
measures on inputs whose answer is known, export and reload."""

from __future__ import annotations

import pytest
import torch

from translate import io
from translate.config import load_config
from translate.data.sampling_sets import Digits, GaussianRing, ring_centres
from translate.distributed import DistEnv
from translate.engine import build_runtime, train, train_step
from translate.errors import CheckpointError, ConfigError
from translate.measures import best_code_accuracy, ring_coverage
from translate.models.tricks import HistoricalAverage, instance_noise_std
from translate.nets.samplers import SAMPLER_CRITICS, SAMPLERS, minibatch_stddev
from translate.objectives import gradient_penalty
from translate.sampling import load_sampler

# --- networks -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_dcgan_generator_shapes_and_range(size, channels, upsample):
    g = SAMPLERS.build(
        {
            "name": "dcgan",
            "noise_dim": 8,
            "image_size": size,
            "channels": channels,
            "width": 4,
            "classes": 3,
            "code_dim": 2,
            "upsample": upsample,
        }
    ).eval()
    out = g(torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1]), torch.zeros(5, 2))
    assert out.shape == (5, channels, size, size) and out.dtype == torch.float32
    assert out.abs().max() <= 1.0
    feats = g.forward_features(g.latent(torch.randn(2, 8), torch.tensor([0, 1]), torch.zeros(2, 2)), ["up0"])
    assert feats["up0"].shape[2] == 8


@pytest.mark.parametrize("conditioning", ["none", "concat", "projection", "auxiliary"])
@pytest.mark.parametrize("stddev", [False, True])
def test_discriminator_variants(conditioning, stddev):
    classes = 0 if conditioning == "none" else 4
    label = torch.tensor([0, 3, 1]) if classes else None
    for spec, x in (
        ({"name": "dcgan", "image_size": 32, "channels": 2, "width": 4}, torch.randn(3, 2, 32, 32)),
        ({"name": "mlp", "in_shape": [2], "width": 8}, torch.randn(3, 2)),
    ):
        d = SAMPLER_CRITICS.build(
            {**spec, "classes": classes, "conditioning": conditioning, "minibatch_stddev": stddev}
        )
        judged = d(x, label)
        assert judged.logit.shape == (3, 1) and judged.features.ndim == 2
        assert (judged.class_logits is not None) == (conditioning == "auxiliary")
        if conditioning == "auxiliary":
            assert judged.class_logits.shape == (3, 4)


def test_projection_logit_depends_on_label():
    d = SAMPLER_CRITICS.build({"name": "mlp", "in_shape": [2], "width": 8, "classes": 4, "conditioning": "projection"})
    x = torch.randn(1, 2).expand(4, 2)
    assert d(x, torch.arange(4)).logit.unique().numel() == 4


def test_minibatch_stddev_sees_collapse():
    varied, collapsed = torch.randn(8, 3, 4, 4), torch.randn(1, 3, 4, 4).expand(8, -1, -1, -1)
    assert minibatch_stddev(varied).shape == (8, 4, 4, 4)
    assert minibatch_stddev(collapsed)[:, 3].abs().max() == 0
    assert minibatch_stddev(varied)[:, 3].min() > 0.5


def test_bad_sampler_options_are_clear_errors():
    with pytest.raises(ConfigError, match="32 or 64"):
        SAMPLERS.build({"name": "dcgan", "image_size": 48})
    with pytest.raises(ConfigError, match="upsample must be one of"):
        SAMPLERS.build({"name": "dcgan", "upsample": "pixelshuffle"})
    g = SAMPLERS.build({"name": "mlp", "classes": 3})
    with pytest.raises(ConfigError, match="give a label"):
        g(torch.randn(2, 2))


# --- tricks ---------------------------------------------------------------------------------


def test_instance_noise_anneals_to_zero():
    assert instance_noise_std(0.1, 100, 0) == pytest.approx(0.1)
    assert instance_noise_std(0.1, 100, 50) == pytest.approx(0.05)
    assert instance_noise_std(0.1, 100, 200) == 0.0
    assert instance_noise_std(0.1, 0, 10_000) == pytest.approx(0.1)


def test_gradient_penalty_is_zero_for_unit_slope_and_rank_agnostic():
    w = torch.tensor([[0.6], [0.8]])  # ‖w‖ = 1: a linear critic with unit gradient everywhere
    assert gradient_penalty(lambda x: x @ w, torch.randn(6, 2), torch.randn(6, 2)) == pytest.approx(0.0, abs=1e-10)
    penalty = gradient_penalty(
        lambda x: 3 * x.flatten(1).sum(1, keepdim=True), torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)
    )
    assert penalty == pytest.approx((3 * 2 - 1) ** 2)  # ‖∇‖ = 3·sqrt(4) = 6


def test_historical_average_is_the_mean_of_past_weights():
    net = torch.nn.Linear(1, 1, bias=False)
    hist = HistoricalAverage(net)
    values = [net.weight.item()]
    for v in (1.0, 2.0, 6.0):
        net.weight.data.fill_(v)
        hist.update(net)
        values.append(v)
    assert hist.means()[0].item() == pytest.approx(sum(values) / len(values))
    assert hist.penalty(net).item() == pytest.approx((6.0 - sum(values) / len(values)) ** 2)


# --- measures -------------------------------------------------------------------------------


def test_ring_coverage_known_inputs():
    centres = ring_centres()
    exact = centres.repeat(100, 1)
    assert ring_coverage(exact).modes_covered == 8 and ring_coverage(exact).high_quality == 1.0
    one = centres[:1].repeat(800, 1)
    assert ring_coverage(one).modes_covered == 1
    origin = torch.zeros(800, 2)  # the mean of the ring, far from every mode
    assert ring_coverage(origin).modes_covered == 0 and ring_coverage(origin).high_quality == 0.0
    half = torch.cat([exact, torch.zeros(800, 2)])
    assert ring_coverage(half).high_quality == pytest.approx(0.5)


def test_best_code_accuracy_finds_the_permutation():
    codes = torch.arange(10).repeat(5)
    acc, mapping = best_code_accuracy(codes, (codes + 3) % 10)
    assert acc == 1.0 and mapping == [(k + 3) % 10 for k in range(10)]
    acc, _ = best_code_accuracy(codes, torch.zeros_like(codes))
    assert acc == pytest.approx(0.1)


def test_datasets_items_and_fixed_split():
    ring = GaussianRing(size=64)
    assert ring[(3, 99)]["point"].shape == (2,)
    assert torch.equal(ring[3]["point"], GaussianRing(size=64)[3]["point"])
    train_set, test_set = Digits("train"), Digits("test")
    assert len(train_set) + len(test_set) == 1797
    item = train_set[0]
    assert item["image"].shape == (1, 32, 32) and item["label"].dtype == torch.int64
    assert -1 <= item["image"].min() and item["image"].max() <= 1
    assert len(Digits("train", fraction=0.1)) == pytest.approx(144, abs=2)
    assert torch.equal(Digits("train").images, train_set.images)


# --- training through the real engine -------------------------------------------------------

RING = [
    "model.name=gan",
    "model.data_key=point",
    "model.generator={name: mlp, noise_dim: 2, width: 16, depth: 2}",
    "model.discriminator={name: mlp, width: 16, depth: 2}",
    "data.dataset={name: ring8, size: 256}",
    "data.batch_size=32",
    "optim.lr_g=0.001",
    "optim.lr_d=0.001",
    "optim.schedule=constant",
    "engine.device=cpu",
    "engine.log_every=2",
    "engine.sample_every=1000",
    "engine.save_every=1000",
    "engine.progress=false",
    "engine.tensorboard=false",
]


def ring_cfg(out_dir, steps, *extra):
    return load_config(None, [*RING, f"out_dir={out_dir}", f"optim.max_steps={steps}", *extra])


@pytest.mark.parametrize(
    "loss", ["nsgan", "minimax", "lsgan", "wgan", "wgan-gp", "hinge", "{name: nsgan, real_label: 0.9}"]
)
def test_every_objective_trains_a_ring_gan(tmp_path, loss):
    extra = [f"model.gan_loss={loss}"]
    if loss.startswith("wgan"):
        extra.append("model.n_critic=4")
    rt = build_runtime(ring_cfg(tmp_path, 4, *extra), DistEnv(), steps_per_epoch=8)
    batch = {"point": GaussianRing(size=32).points}
    before = {k: v.clone() for k, v in rt.model.state_dict().items()}
    for _ in range(2):
        logs = train_step(rt, batch)
    assert all(torch.isfinite(v) for v in logs.values())
    for prefix in ("G.", "D."):
        assert any(not torch.equal(before[k], v) for k, v in rt.model.state_dict().items() if k.startswith(prefix))
    if loss == "wgan":  # clipping applied after every critic step
        assert max(p.abs().max() for p in rt.model.D.parameters()) <= 0.01 + 1e-7
        assert int(next(iter(rt.optimizers["D"].state.values()))["step"]) == 8  # n_critic steps per step
    if loss == "wgan-gp":
        assert "gp" in logs


def test_all_tricks_together_train_and_export_a_reloadable_sampler(tmp_path):
    result = train(
        ring_cfg(
            tmp_path / "run",
            6,
            "model.minibatch_stddev=true",
            "model.instance_noise=0.1",
            "model.instance_noise_steps=4",
            "model.historical_averaging=0.01",
            "model.feature_matching=1.0",
            "engine.ema_decay=0.9",
            "data.batch_size=16",
            "model.n_critic=2",
        )
    )
    assert {"G_fm", "G_hist", "D_hist"} <= set(result.last_logs)
    sampler = load_sampler(result.exports["G"])
    ema = io.load_checkpoint(tmp_path / "run/checkpoints/ckpt_00000006.pt")["ema"]["G"]
    for key, value in sampler.net.state_dict().items():
        assert torch.equal(value, ema[key]), key
    a, b = sampler.sample(10, seed=3), sampler.sample(10, seed=3)
    assert a.shape == (10, 2) and torch.equal(a, b)
    assert not torch.equal(a, sampler.sample(10, seed=4))
    with pytest.raises(CheckpointError, match="holds a sampler .*not an image-to-image generator"):
        io.load_generator(result.exports["G"])


def test_conditioning_and_classes_must_agree(tmp_path):
    with pytest.raises(ConfigError, match="disagree"):
        build_runtime(ring_cfg(tmp_path, 2, "model.classes=10"), DistEnv(), 8)


@pytest.mark.parametrize(
    "model,extra",
    [
        ("gan", ["model.classes=10", "model.conditioning=auxiliary"]),
        ("gan", ["model.classes=10", "model.conditioning=projection"]),
        ("infogan", ["model.cat_codes=[3]", "model.cont_codes=1"]),
    ],
)
def test_digit_models_take_a_step_and_export(tmp_path, model, extra):
    cfg = load_config(
        None,
        [
            f"model.name={model}",
            "model.data_key=image",
            "model.init=normal",
            "model.generator={name: dcgan, noise_dim: 8, width: 4}",
            "model.discriminator={name: dcgan, width: 4}",
            "data.dataset={name: digits, split: test}",
            "data.batch_size=8",
            "optim.max_steps=2",
            "engine.device=cpu",
            "engine.progress=false",
            "engine.tensorboard=false",
            f"out_dir={tmp_path}",
            *extra,
        ],
    )
    result = train(cfg)
    sampler = load_sampler(result.exports["G"])
    assert (tmp_path / "samples/step_00000002.png").is_file()
    if model == "infogan":
        assert set(result.last_logs) >= {"info_cat", "info_cont", "D_info_cat"} and sampler.code_dim == 4
        # Q is stepped in D's step and in G's step: 2 steps per training step
        state = io.load_checkpoint(tmp_path / "checkpoints/ckpt_00000002.pt")["optimizers"]
        assert {int(s["step"]) for s in state["Q"]["state"].values()} == {4}
        assert {int(s["step"]) for s in state["G"]["state"].values()} == {2}
        assert sampler.sample(3).shape == (3, 1, 32, 32)
    else:
        assert sampler.classes == 10 and sampler.class_grid(2).shape == (20, 1, 32, 32)


# --- label map -> image ---------------------------------------------------------------------


def write_label_pairs(root, n=3, h=16, w=32):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = torch.Generator().manual_seed(0)
    for i in range(n):
        label = torch.zeros(h, w, dtype=torch.uint8)
        label[h // 2 :] = 1  # road below, sky above, one car
        label[h // 2 - 2 : h // 2 + 2, 4 + i : 10 + i] = 13
        label[0, 0] = 255  # unlabelled
        image = torch.randint(0, 255, (h, w, 3), generator=rng, dtype=torch.uint8)
        Image.fromarray(label.numpy()).save(root / f"labels/{i:05d}.png")
        Image.fromarray(image.numpy()).save(root / f"images/{i:05d}.png")


def test_spade_trains_from_label_folders_and_samples_new_images_per_label_map(tmp_path):
    write_label_pairs(tmp_path / "pairs")
    cfg = load_config(
        None,
        [
            "model.name=spade",
            "model.generator={name: spade, width: 4, ups: 2, hidden: 4, noise_dim: 3}",
            "model.discriminator={name: patchgan, ndf: 4, n_layers: 1}",
            f"data.dataset={{name: label_folders, root: {tmp_path / 'pairs'}}}",
            "data.batch_size=2",
            "optim.max_steps=2",
            "engine.device=cpu",
            "engine.progress=false",
            "engine.tensorboard=false",
            "engine.grad_checkpointing=true",
            f"out_dir={tmp_path / 'run'}",
        ],
    )
    result = train(cfg)
    assert {"D", "G_adv", "G_feat"} <= set(result.last_logs)
    sampler = load_sampler(result.exports["G"])
    labels = torch.stack([torch.zeros(16, 32, dtype=torch.long), torch.ones(16, 32, dtype=torch.long)])
    a, b = sampler.from_label_maps(labels, seed=0), sampler.from_label_maps(labels, seed=1)
    assert a.shape == (2, 3, 16, 32) and a.abs().max() <= 1
    assert torch.equal(a, sampler.from_label_maps(labels, seed=0)) and not torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # the label map steers the image
    with pytest.raises(ConfigError, match="label maps: use from_label_maps"):
        sampler.sample(2)
    with pytest.raises(ConfigError, match="multiples of 4"):
        sampler.from_label_maps(torch.zeros(1, 10, 32, dtype=torch.long))


def test_spade_gradient_checkpointing_gives_the_same_gradients():
    g = SAMPLERS.build({"name": "spade", "classes": 3, "width": 4, "ups": 2, "hidden": 4, "noise_dim": 2})
    labels, noise = torch.randint(0, 4, (2, 8, 8)), torch.randn(2, 2)
    grads = []
    for flag in (False, True):
        g.zero_grad()
        g.set_grad_checkpointing(flag)
        g(labels, noise).square().sum().backward()
        grads.append([p.grad.clone() for p in g.parameters()])
    for x, y in zip(*grads, strict=False):
        assert torch.allclose(x, y, atol=1e-6)


def test_fid_kid_are_labelled_and_separate_same_from_different_data():
    from translate.measures import DigitClassifier, fid_kid

    torch.manual_seed(0)
    extractor = DigitClassifier().eval()  # untrained features still tell digits from noise
    digits = Digits("test").images[:120]
    same = fid_kid(digits, digits, extractor, kid_subset=50)
    halves = fid_kid(digits[:60], digits[60:], extractor, kid_subset=50)
    noise = fid_kid(digits, torch.rand(120, 1, 32, 32) * 2 - 1, extractor, kid_subset=50)
    assert same["fid"] == pytest.approx(0.0, abs=1e-9)
    assert noise["fid"] > 20 * halves["fid"] > 0  # measured: 0.021 vs 0.00022
    assert noise["kid"] > 100 * abs(halves["kid"])
    assert "not Inception" in same["features"]
    with pytest.raises(ConfigError, match="Inception weights not found"):
        fid_kid(digits, digits, inception_weights="missing.pth")


def test_infogan_code_vector_layout():
    from translate.models.infogan import make_code

    code = make_code([torch.tensor([2, 0])], torch.tensor([[0.5], [-1.0]]), [3])
    assert code.tolist() == [[0, 0, 1, 0.5], [1, 0, 0, -1.0]]
