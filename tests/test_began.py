"""BEGAN: the equilibrium update and M_global on known values, the autoencoder discriminator,
training through the real engine (M_global logged every step, k_t restored exactly on resume, a
measurable decrease of M_global), export as a sampler drawn by `i2i sample`, and SyntheticMix."""

from __future__ import annotations

import csv

import pytest
import torch

from augment.mixing import SyntheticMix
from translate import io
from translate.cli import main
from translate.config import load_config
from translate.data.sampling_sets import Digits
from translate.engine import train
from translate.errors import ConfigError
from translate.models import build_model
from translate.models.began import convergence_measure, next_k
from translate.nets.began import AUTOENCODER_CRITICS
from translate.nets.samplers import SAMPLERS
from translate.sampling import load_sampler

TINY = [
    "model.name=began",
    "model.generator={name: began, noise_dim: 8, width: 4}",
    "model.discriminator={name: began, width: 4, hidden: 8}",
    "data.dataset={name: digits, split: test}",
    "data.batch_size=16",
    "optim.lr_g=0.001",
    "optim.lr_d=0.001",
    "optim.schedule=constant",
    "engine.device=cpu",
    "engine.deterministic=true",
    "engine.log_every=1",
    "engine.sample_every=1000",
    "engine.save_every=1000",
    "engine.progress=false",
    "engine.tensorboard=false",
]


def began_cfg(out_dir, steps: int, *extra: str):
    return load_config(None, [*TINY, f"out_dir={out_dir}", f"optim.max_steps={steps}", *extra])


def metrics(run) -> list[dict[str, float]]:
    with open(run / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


# --- the equilibrium and the convergence measure --------------------------------------------


def test_k_moves_towards_equilibrium_and_stays_in_0_1():
    # k + λ_k (γ L(x) − L(G(z))): 0.5 + 0.1 · (0.5 · 1.0 − 0.2) = 0.53
    assert next_k(0.5, gamma=0.5, lambda_k=0.1, loss_real=1.0, loss_fake=0.2) == pytest.approx(0.53)
    # generated images reconstructed worse than γ L(x): D attends less to them
    assert next_k(0.5, gamma=0.5, lambda_k=0.1, loss_real=1.0, loss_fake=0.9) == pytest.approx(0.46)
    assert next_k(0.99, gamma=1.0, lambda_k=1.0, loss_real=1.0, loss_fake=0.0) == 1.0
    assert next_k(0.01, gamma=0.1, lambda_k=1.0, loss_real=0.0, loss_fake=1.0) == 0.0


def test_m_global_is_the_papers_measure():
    real, fake = torch.tensor(0.4), torch.tensor(0.1)
    assert float(convergence_measure(0.5, real, fake)) == pytest.approx(0.4 + abs(0.2 - 0.1))
    assert float(convergence_measure(0.5, real, torch.tensor(0.2))) == pytest.approx(0.4)  # at equilibrium: L(x)


# --- networks -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_began_nets_shapes_range_and_per_sample_independence(size):
    g = SAMPLERS.build({"name": "began", "noise_dim": 6, "image_size": size, "channels": 3, "width": 4}).eval()
    fake = g(torch.randn(5, 6))
    assert fake.shape == (5, 3, size, size) and fake.abs().max() <= 1
    d = AUTOENCODER_CRITICS.build({"name": "began", "image_size": size, "channels": 3, "width": 4, "hidden": 5})
    assert d.encode(fake).shape == (5, 5) and d(fake).shape == fake.shape
    # no batch statistics: a sample's reconstruction is the same alone and in a batch
    assert torch.allclose(d(fake)[2:3], d(fake[2:3]), atol=1e-6)
    conditional = AUTOENCODER_CRITICS.build({"name": "began", "width": 4, "hidden": 5, "classes": 3})
    x = torch.randn(1, 1, 32, 32).expand(3, -1, -1, -1)
    rec = conditional(x, torch.arange(3))
    assert not torch.allclose(rec[0], rec[1])  # the label steers the reconstruction


def test_bad_began_options_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="BEGAN nets take 32 or 64 pixel images, got image_size=48"):
        SAMPLERS.build({"name": "began", "image_size": 48})
    with pytest.raises(ConfigError, match=r"unknown option\(s\) 'hiddden' for BEGAN discriminator 'began'"):
        AUTOENCODER_CRITICS.build({"name": "began", "hiddden": 8})
    with pytest.raises(ConfigError, match="conditioned on 3 classes: give a label"):
        AUTOENCODER_CRITICS.build({"name": "began", "width": 4, "classes": 3})(torch.zeros(1, 1, 32, 32))
    for option, message in (
        ({"gamma": 0}, r"model.gamma \(BEGAN's diversity ratio\) must be in \(0, 1\], got 0"),
        ({"gamma": 1.5}, r"must be in \(0, 1\], got 1.5"),
        ({"lambda_k": -0.1}, "model.lambda_k must be >= 0, got -0.1"),
        ({"k_init": 2}, r"model.k_init must be in \[0, 1\], got 2"),
        ({"classes": 1}, "model.classes must be 0 .unconditional. or >= 2, got 1"),
        ({"gama": 0.5}, "gama"),
    ):
        with pytest.raises(ConfigError, match=message):
            build_model({"name": "began", **option})
    with pytest.raises(ConfigError, match="got 1.5"):  # through `i2i train`'s path: refused before writing
        train(began_cfg(tmp_path / "run", 1, "model.gamma=1.5"))
    assert not (tmp_path / "run").exists()


# --- through the engine ---------------------------------------------------------------------


def test_began_logs_m_global_every_step_and_resumes_k_exactly(tmp_path):
    # a large λ_k and k_0 = 0.3: k_t moves at every step, so a resume that lost it would show
    extra = ("model.k_init=0.3", "model.lambda_k=0.05", "model.gamma=0.9")
    straight = train(began_cfg(tmp_path / "straight", 6, *extra))
    rows = metrics(tmp_path / "straight")
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    for r in rows:  # logged every step, and equal to the paper's formula of the logged losses
        assert r["M_global"] == pytest.approx(r["L_real"] + abs(0.9 * r["L_real"] - r["L_fake"]), rel=1e-5)
    ks = [r["k"] for r in rows]
    assert len(set(ks)) == 6 and all(0 <= k <= 1 for k in ks)

    first = train(began_cfg(tmp_path / "split", 6, *extra, "engine.stop_at_step=3"))
    assert first.step == 3
    assert train(began_cfg(tmp_path / "split", 6, *extra)).step == 6
    ref = io.load_checkpoint(tmp_path / "straight/checkpoints/ckpt_00000006.pt")
    got = io.load_checkpoint(tmp_path / "split/checkpoints/ckpt_00000006.pt")
    assert float(ref["model"]["k"]) == pytest.approx(ks[-1])
    for key, value in ref["model"].items():
        assert torch.equal(value, got["model"][key]), key
    assert [r["k"] for r in metrics(tmp_path / "split")] == ks
    assert straight.last_logs["k"] == pytest.approx(ks[-1])


def test_began_exports_a_sampler_that_i2i_sample_draws(tmp_path, capsys):
    result = train(began_cfg(tmp_path / "run", 2))
    assert (tmp_path / "run/samples/step_00000002.png").is_file()
    sampler = load_sampler(result.exports["G"])
    assert sampler.info["model"] == "began" and sampler.info["gamma"] == 0.5
    a = sampler.sample(4, seed=1)
    assert a.shape == (4, 1, 32, 32) and torch.equal(a, sampler.sample(4, seed=1))
    out = tmp_path / "drawn"
    assert main(["sample", "--checkpoint", str(result.exports["G"]), "--n", "3", "--output", str(out)]) == 0
    assert {"grid.png", "interpolation.png", "sample_00002.png"} <= {p.name for p in out.iterdir()}
    assert main(["sample", "--checkpoint", str(result.exports["G"]), "--label", "3", "--output", str(out)]) == 2
    assert "unconditional: it takes no label" in capsys.readouterr().err


def test_conditional_began_mixes_into_a_dataset_through_synthetic_mix(tmp_path):
    result = train(began_cfg(tmp_path / "run", 2, "model.classes=10"))
    sampler = load_sampler(result.exports["G"])
    assert sampler.classes == 10
    real = Digits("test")
    mix = SyntheticMix(real, sampler, ratio=0.5, seed=0)
    assert len(mix) == 2 * len(real) and mix.is_synthetic(len(real))
    item = mix[len(real) + 3]
    assert set(item) == {"image", "label"} and item["image"].shape == (1, 32, 32)
    assert -1 <= item["image"].min() and item["image"].max() <= 1 and 0 <= int(item["label"]) < 10


@pytest.mark.slow
@pytest.mark.parametrize("lr,learns", [(0.002, True), (0.0, False)])
def test_began_learns_digits_m_global_falls(tmp_path, lr, learns):
    """Over 30 steps of a tiny BEGAN on digits, M_global's mean over the last 5 steps falls below
    80 % of its mean over the first 5 (measured: 63 %); a BEGAN that does not learn (lr 0) stays
    near 100 %."""
    train(began_cfg(tmp_path, 30, f"optim.lr_g={lr}", f"optim.lr_d={lr}"))
    m = [r["M_global"] for r in metrics(tmp_path)]
    ratio = sum(m[-5:]) / sum(m[:5])
    assert (ratio < 0.8) == learns, ratio


WORKER = """
import os, sys, torch
from translate.config import load_config
from translate.engine import train
result = train(load_config(None, sys.argv[2:]))
torch.save(result.model.state_dict(), f"{sys.argv[1]}/state_rank{os.environ['RANK']}.pt")
"""


@pytest.mark.slow
def test_two_processes_keep_one_k_and_the_same_weights(tmp_path):
    """Under torchrun (gloo, CPU) each process sees its own batches; the reconstruction losses are
    averaged before k_t moves, so both processes end with the same k_t (and the same weights)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "worker.py").write_text(WORKER)
    overrides = [*TINY, f"out_dir={tmp_path / 'run'}", "optim.max_steps=3", "model.lambda_k=0.05", "model.k_init=0.3"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*cmd, str(tmp_path / "worker.py"), str(tmp_path), *overrides], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    states = [torch.load(tmp_path / f"state_rank{r}.pt") for r in (0, 1)]
    assert float(states[0]["k"]) != 0.3  # k moved...
    for key, value in states[0].items():  # ...identically on both processes, like the weights
        assert torch.equal(value, states[1][key]), key
