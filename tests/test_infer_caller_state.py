"""``translate_image`` leaves the caller's network as it found it: the mode of every module and the
device, values and gradients of its weights, whether the image goes through in one pass or tiled."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from translate.infer import tiled, translate_image
from translate.nets import build_generator

SPEC = {"name": "resnet", "ngf": 4, "n_blocks": 1, "norm": "batch", "dropout": 0.5}


@pytest.mark.parametrize("side", [24, 40], ids=["one-pass", "tiled"])
def test_training_net_stays_in_training_mode_and_translates_as_in_eval(side):
    torch.manual_seed(0)
    net = build_generator(SPEC).train()
    net.encoder[2].eval()  # a mixed state, as a caller may leave it: kept module by module
    modes = [m.training for m in net.modules()]
    image = torch.rand(1, 3, side, side) * 2 - 1
    out = translate_image(net, image, tile=32, overlap=8, device="cpu")
    assert [m.training for m in net.modules()] == modes
    with torch.no_grad():
        reference = translate_image(net.eval(), image, tile=32, overlap=8, device="cpu")
    assert torch.equal(out, reference)  # the run itself was in eval mode (no dropout, running stats)


class SeesDevice(nn.Module):
    """Records the device it ran on and answers on the CPU, so it can 'run' on the meta device."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.register_buffer("scale", torch.ones(3))
        self.ran_on: torch.device | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.ran_on = self.conv.weight.device
        return torch.zeros(x.shape)


def test_weights_return_to_their_device_with_their_values_and_gradients(monkeypatch):
    # another device than the weights' own, without a GPU: the meta device
    monkeypatch.setattr(tiled, "resolve_device", lambda name: torch.device("meta"))
    net = SeesDevice()
    net.conv.weight.grad = torch.full_like(net.conv.weight, 0.5)
    weight, buffer = net.conv.weight.detach().clone(), net.scale
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
    translate_image(net, torch.zeros(1, 3, 8, 8), device="cuda")
    assert net.ran_on == torch.device("meta")  # it did move for the run
    assert all(t.device == torch.device("cpu") for t in [*net.parameters(), *net.buffers()])
    assert torch.equal(net.conv.weight, weight) and net.scale is buffer
    assert torch.equal(net.conv.weight.grad, torch.full_like(weight, 0.5))
    optimiser.step()  # the caller can go on training: ordinary tensors, not inference ones
    assert torch.allclose(net.conv.weight, weight - 0.05)
