"""Model-level behaviour: batched calls change nothing, pix2pix needs pairs, the pool is replayable."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

from translate.models import build_model
from translate.models.pool import ImagePool


class PlainContext:
    """A minimal StepContext: fp32, one process, plain SGD steps (Adam would blow the float noise of
    the near-zero gradients of conv biases before instance norm up to full-size steps)."""

    def __init__(self, model) -> None:
        self.step = 0
        self.optimizers = {
            g: torch.optim.SGD([p for net in nets for p in net.parameters()], lr=0.1)
            for g, nets in model.optimizer_groups().items()
        }

    def autocast(self):
        return contextlib.nullcontext()

    def optimize(self, group, loss):
        loss.backward()
        self.optimizers[group].step()
        self.optimizers[group].zero_grad(set_to_none=True)


def tiny_cyclegan(**extra):
    torch.manual_seed(0)
    return build_model({"name": "cyclegan", "generator": {"name": "resnet", "ngf": 4, "n_blocks": 1},
                        "discriminator": {"name": "patchgan", "ndf": 4, "n_layers": 2}, "pool_size": 0, **extra})


@pytest.mark.parametrize("gan_loss", ["lsgan", "wgan-gp"])
def test_batched_calls_give_the_same_step(gan_loss):
    batched = tiny_cyclegan(gan_loss=gan_loss)
    separate = copy.deepcopy(batched)
    separate.batch_generator_calls = separate.batch_discriminator_calls = False
    assert batched.batch_generator_calls and batched.batch_discriminator_calls
    batch = {"A": torch.rand(2, 3, 16, 16) * 2 - 1, "B": torch.rand(2, 3, 16, 16) * 2 - 1}
    torch.manual_seed(1)
    logs_b = batched.training_step(batch, PlainContext(batched))
    torch.manual_seed(1)
    logs_s = separate.training_step(batch, PlainContext(separate))
    for key in logs_s:
        torch.testing.assert_close(logs_b[key], logs_s[key], rtol=1e-4, atol=1e-6)
    for (name, p_b), p_s in zip(batched.named_parameters(), separate.parameters(), strict=True):
        torch.testing.assert_close(p_b, p_s, rtol=1e-4, atol=1e-6, msg=name)


def test_batch_norm_nets_are_not_batched():
    model = tiny_cyclegan(generator={"name": "resnet", "ngf": 4, "n_blocks": 1, "norm": "batch"})
    assert not model.batch_generator_calls


def test_pix2pix_refuses_unpaired_data(tiny_unpaired, tmp_path):
    from translate.config import load_config
    from translate.engine import train
    from translate.errors import ConfigError

    a, b = tiny_unpaired
    cfg = load_config(None, ["model.name=pix2pix", f"out_dir={tmp_path}", "optim.max_steps=1",
                             f"data.dataset={{name: unpaired_folders, root_a: {a}, root_b: {b}}}"])
    with pytest.raises(ConfigError, match="needs a paired dataset"):
        train(cfg)


def test_image_pool_is_replayable_from_its_state():
    pool = ImagePool(3, seed=5)
    for i in range(4):
        pool.query(torch.full((1, 1, 2, 2), float(i)))
    clone = ImagePool(3, seed=0)
    clone.load_state_dict(pool.state_dict())
    for i in range(4, 12):
        x = torch.full((2, 1, 2, 2), float(i))
        assert torch.equal(pool.query(x), clone.query(x))
    assert ImagePool(0).query(x) is x
