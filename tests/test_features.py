"""Named generator features (``forward_features``): what CUT's PatchNCE and staged tiled runs read."""

from __future__ import annotations

import pytest
import torch

from translate.errors import ConfigError
from translate.nets import build_generator


def test_resnet_features_match_the_forward_pass_and_declared_shapes():
    g = build_generator({"name": "resnet", "ngf": 4, "n_blocks": 2, "n_downsampling": 2}).eval()
    x = torch.rand(2, 3, 30, 34) * 2 - 1  # padded to 32×36 inside
    info = g.feature_info()
    assert list(info) == ["input", "stem", "down1", "down2", "block1", "block2", "up1", "up2", "output"]
    with torch.no_grad():
        feats = g.forward_features(x, list(info))
        out = g(x)
    for name, f in feats.items():
        assert f.shape == (2, info[name]["channels"], 32 // info[name]["reduction"], 36 // info[name]["reduction"]), (
            name
        )
    # the last feature is the generator's output before the crop back to the input size
    assert torch.equal(feats["output"][..., 1:31, 1:35], out)
    # each feature is what the layers compute: stem -> first downsampling by hand
    by_hand = g.encoder[6](g.encoder[5](g.encoder[4](feats["stem"])))
    assert torch.equal(feats["down1"], by_hand)


def test_features_stop_early_and_keep_the_order_asked_for():
    g = build_generator({"name": "resnet", "ngf": 4, "n_blocks": 3})
    calls = []
    g.decoder.register_forward_hook(lambda *a: calls.append("decoder"))
    for layer in g.decoder:
        layer.register_forward_hook(lambda *a: calls.append("decoder"))
    feats = g.forward_features(torch.rand(1, 3, 16, 16), ["block1", "stem"])
    assert list(feats) == ["block1", "stem"]
    assert calls == []  # nothing after block1 ran
    # features carry gradients (PatchNCE trains the encoder through them)
    feats["block1"].mean().backward()
    assert g.encoder[1].weight.grad is not None


def test_unet_encoder_features():
    g = build_generator({"name": "unet", "ngf": 4, "num_downs": 4}).eval()
    x = torch.rand(1, 3, 20, 20)
    feats = g.forward_features(x, ["down3", "input"])
    assert feats["input"].shape == (1, 3, 32, 32)  # padded to the U-Net's multiple of 16
    assert feats["down3"].shape == (1, g.feature_info()["down3"]["channels"], 4, 4)


def test_unknown_feature_names_are_named():
    g = build_generator({"name": "resnet", "ngf": 4, "n_blocks": 1})
    with pytest.raises(ConfigError, match=r"no feature\(s\) \['block7'\]; known: input, stem"):
        g.forward_features(torch.rand(1, 3, 8, 8), ["block7"])
