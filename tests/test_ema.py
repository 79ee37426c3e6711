"""Exponential moving average of generator weights: exact decay arithmetic, buffers, frozen copies,
state round trip and refused decays."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from translate.ema import EMA
from translate.errors import ConfigError


def tiny_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)).double()


def set_weights(net: nn.Module, value: float) -> None:
    """Every parameter of ``net`` becomes a known tensor: its position in the net plus ``value``."""
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape) * 0.01 + i + value)


def parameters(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.999])
def test_average_after_k_updates_equals_the_closed_form(decay):
    # e_0 = w_0, e_k = d e_(k-1) + (1 - d) w_k   =>   e_k = d^k w_0 + (1 - d) sum_i d^(k-i) w_i
    nets = {"G_AB": tiny_net(0), "G_BA": tiny_net(1)}
    start = {name: parameters(net) for name, net in nets.items()}
    ema = EMA(nets, decay)
    history = {name: [] for name in nets}
    offsets = {"G_AB": [0.3, -1.2, 2.5, 0.7, -0.4], "G_BA": [5.0, 4.0, -3.0, 2.0, 1.0]}
    for k in range(5):
        for name, net in nets.items():
            set_weights(net, offsets[name][k])
            history[name].append(parameters(net))
        ema.update(nets)
    for name in nets:
        n = len(history[name])
        for j, averaged in enumerate(ema.copies[name].parameters()):
            expected = decay**n * start[name][j] + sum(
                (1 - decay) * decay ** (n - 1 - i) * weights[j] for i, weights in enumerate(history[name])
            )
            torch.testing.assert_close(averaged.detach(), expected, rtol=0, atol=1e-12)


def test_buffers_are_copied_not_averaged():
    net = tiny_net(0).train()
    ema = EMA({"G": net}, 0.9)
    set_weights(net, 1.0)
    net(torch.rand(2, 3, 6, 6, dtype=torch.float64) * 5 + 3)  # moves batch-norm running statistics
    ema.update({"G": net})
    for name, buffer in net.named_buffers():
        assert torch.equal(dict(ema.copies["G"].named_buffers())[name], buffer), name
    # ... while the parameters are averaged, so they are not the live ones
    assert not torch.equal(ema.copies["G"][0].weight, net[0].weight)


def test_copies_are_frozen_in_eval_mode_and_independent_of_the_live_net():
    net = tiny_net(0).train()
    ema = EMA({"G": net}, 0.9)
    copy = ema.copies["G"]
    assert copy is not net
    assert not any(m.training for m in copy.modules())
    assert not any(p.requires_grad for p in copy.parameters())
    # the live net keeps training: its mode and gradients are untouched
    assert all(m.training for m in net.modules()) and all(p.requires_grad for p in net.parameters())
    before = parameters(copy)
    set_weights(net, 3.0)  # changes the live net only; the copy moves on update, not before
    for a, b in zip(before, copy.parameters(), strict=True):
        assert torch.equal(a, b)
    # an update does not turn gradients or training mode back on
    ema.update({"G": net})
    assert not copy.training and not any(p.requires_grad for p in copy.parameters())


def test_state_dict_round_trip_restores_the_average_exactly():
    net = tiny_net(0)
    ema = EMA({"G": net}, 0.8)
    for k in range(3):
        set_weights(net, float(k))
        ema.update({"G": net})
    buffer = io.BytesIO()
    torch.save(ema.state_dict(), buffer)  # as checkpoints store it, loadable without unpickling code
    buffer.seek(0)
    restored = EMA({"G": tiny_net(7)}, 0.8)  # other initial weights: everything must come from the state
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for (name, a), (_, b) in zip(
        ema.copies["G"].state_dict().items(), restored.copies["G"].state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    set_weights(net, 9.0)  # and both continue identically
    ema.update({"G": net})
    restored.update({"G": net})
    for a, b in zip(ema.copies["G"].parameters(), restored.copies["G"].parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ConfigError, match=r"decay must be in \(0, 1\)"):
        EMA({"G": tiny_net(0)}, decay)
