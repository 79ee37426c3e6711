"""Importing generators saved by the reference CycleGAN/pix2pix code and by CUT.

The checkpoints are built here in the reference's key layout from the toolkit's own networks (no
reference code in the project): a test-local mapping, written independently of the importer's
(it walks the reference's module order), is anchored to key lists recorded from the reference
code, and an import must give back the very network the checkpoint was made from.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from translate.errors import CheckpointError, ConfigError
from translate.importers import import_reference_checkpoint
from translate.io import load_generator, read_metadata
from translate.nets import build_generator
from translate.nets.reference import BlurDownsample, BlurUpsample

ROOT = Path(__file__).resolve().parents[1]

# key lists of the reference code's own networks (define_G with ngf 2), recorded once
RESNET_6BLOCKS_INSTANCE_DROPOUT = [
    "model.1.bias",
    "model.1.weight",
    "model.4.bias",
    "model.4.weight",
    "model.7.bias",
    "model.7.weight",
    *[f"model.{10 + b}.conv_block.{i}.{p}" for b in range(6) for i in (1, 6) for p in ("bias", "weight")],
    "model.16.bias",
    "model.16.weight",
    "model.19.bias",
    "model.19.weight",
    "model.23.bias",
    "model.23.weight",
]
CUT_RESNET_4BLOCKS_INSTANCE = [
    "model.1.bias",
    "model.1.weight",
    "model.11.filt",
    "model.12.conv_block.1.bias",
    "model.12.conv_block.1.weight",
    "model.12.conv_block.5.bias",
    "model.12.conv_block.5.weight",
    "model.13.conv_block.1.bias",
    "model.13.conv_block.1.weight",
    "model.13.conv_block.5.bias",
    "model.13.conv_block.5.weight",
    "model.14.conv_block.1.bias",
    "model.14.conv_block.1.weight",
    "model.14.conv_block.5.bias",
    "model.14.conv_block.5.weight",
    "model.15.conv_block.1.bias",
    "model.15.conv_block.1.weight",
    "model.15.conv_block.5.bias",
    "model.15.conv_block.5.weight",
    "model.16.filt",
    "model.17.bias",
    "model.17.weight",
    "model.20.filt",
    "model.21.bias",
    "model.21.weight",
    "model.25.bias",
    "model.25.weight",
    "model.4.bias",
    "model.4.weight",
    "model.7.filt",
    "model.8.bias",
    "model.8.weight",
]
UNET_128_BATCH_KEY_COUNT = 70
UNET_128_BATCH_SOME_KEYS = [
    "model.model.0.weight",
    "model.model.3.bias",
    "model.model.1.model.2.running_var",
    "model.model.1.model.3.model.3.model.3.model.3.model.3.model.1.weight",  # innermost downconv
    "model.model.1.model.3.model.3.model.3.model.3.model.3.model.4.num_batches_tracked",  # innermost upnorm
    "model.model.1.model.3.model.3.model.3.model.3.model.6.weight",
]


# --- the reference layout, built from our nets by walking the reference's module order -------


def _binomial(size: int, channels: int, gain: float) -> torch.Tensor:
    taps = {3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[size]
    row = torch.tensor(taps)
    kernel = torch.outer(row, row)
    return (kernel / kernel.sum() * gain)[None, None].repeat(channels, 1, 1, 1)


def _module_tensors(module: nn.Module, prefix: str, norm: str, is_output: bool, old_keys: bool) -> dict:
    out = {}
    for name, tensor in module.state_dict().items():
        if name == "bias" and norm == "none" and isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and not is_output:
            assert torch.count_nonzero(tensor) == 0, "the reference has no such bias: make it zero first"
            continue
        out[f"{prefix}.{name}"] = tensor.clone()
    if isinstance(module, BlurDownsample):
        out[f"{prefix}.filt"] = _binomial(3, module.channels, 1.0)
    if isinstance(module, BlurUpsample):
        out[f"{prefix}.filt"] = _binomial(4, module.channels, 4.0)
    if old_keys and isinstance(module, nn.InstanceNorm2d):  # what PyTorch < 0.4 saved
        out[f"{prefix}.running_mean"] = torch.randn(module.num_features)
        out[f"{prefix}.running_var"] = torch.rand(module.num_features) + 0.5
        out[f"{prefix}.num_batches_tracked"] = torch.tensor(3)
    return out


def resnet_reference_state(net: nn.Module, norm: str, old_keys: bool = False) -> dict:
    flat = [*net.encoder, *net.blocks, *net.decoder]
    output = len(flat) - 2  # the last conv, before Tanh
    state = {}
    for index, module in enumerate(flat):
        if hasattr(module, "body"):  # a residual block: the reference's ResnetBlock.conv_block
            for k, layer in enumerate(module.body):
                state.update(_module_tensors(layer, f"model.{index}.conv_block.{k}", norm, False, old_keys))
        else:
            state.update(_module_tensors(module, f"model.{index}", norm, index == output, old_keys))
    return state


def unet_reference_state(net: nn.Module, norm: str, old_keys: bool = False) -> dict:
    """The reference's nested UnetSkipConnectionBlocks, outermost first."""
    innermost = len(net.downs) - 1
    state = {}

    def level(i: int, prefix: str) -> None:
        if i == 0:
            children = [net.downs[0], "sub", nn.ReLU(), net.ups[0][1], nn.Tanh()]
        elif i == innermost:
            children = [nn.LeakyReLU(), net.downs[i][1], nn.ReLU(), net.ups[i][1], net.ups[i][2]]
        else:
            down, up = [nn.LeakyReLU(), net.downs[i][1], net.downs[i][2]], [nn.ReLU(), net.ups[i][1], net.ups[i][2]]
            children = [*down, "sub", *up]
        for index, child in enumerate(children):
            if isinstance(child, str):
                level(i + 1, f"{prefix}.{index}.model")
            else:
                is_output = i == 0 and index == 3
                state.update(_module_tensors(child, f"{prefix}.{index}", norm, is_output, old_keys))

    level(0, "model.model")
    return state


def our_net(spec: dict, norm: str, seed: int = 0) -> nn.Module:
    """Our net with random weights (and BatchNorm statistics), biases zero where the reference has none."""
    torch.manual_seed(seed)
    net = build_generator(spec)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                tensor.normal_(0.0, 0.3)
            elif tensor.is_floating_point():
                tensor.normal_(0.0, 0.3)
        if norm == "none":
            for module in net.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.bias is not None:
                    module.bias.zero_()
            # the output convs keep a bias in the reference too
            output = net.ups[0][1] if hasattr(net, "ups") else net.decoder[-2]
            output.bias.normal_(0.0, 0.3)
    return net.eval()


def save(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def assert_same_function(ours: nn.Module, imported: nn.Module, sizes) -> None:
    for h, w in sizes:
        x = torch.rand(2, ours.in_channels, h, w) * 2 - 1
        with torch.no_grad():
            assert torch.equal(ours(x), imported(x)), f"outputs differ at {h}×{w}"


# --- the layout is the reference's -----------------------------------------------------------


def test_layout_helpers_match_key_lists_recorded_from_the_reference_code():
    resnet = build_generator({"name": "resnet", "ngf": 2, "n_blocks": 6, "norm": "instance", "dropout": 0.5})
    assert sorted(resnet_reference_state(resnet, "instance")) == sorted(RESNET_6BLOCKS_INSTANCE_DROPOUT)
    cut = build_generator({"name": "cut_resnet", "ngf": 2, "n_blocks": 4, "norm": "instance"})
    assert sorted(resnet_reference_state(cut, "instance")) == sorted(CUT_RESNET_4BLOCKS_INSTANCE)
    unet = build_generator({"name": "unet", "ngf": 2, "num_downs": 7, "norm": "batch"})
    keys = unet_reference_state(unet, "batch")
    assert len(keys) == UNET_128_BATCH_KEY_COUNT
    assert set(UNET_128_BATCH_SOME_KEYS) <= set(keys)


# --- each architecture reproduces exactly --------------------------------------------------------

RESNET_SIZES = [(32, 32), (24, 40), (30, 42)]  # square, non-square, not a multiple of 4

CASES = [
    pytest.param(
        "resnet_9blocks", {"name": "resnet", "n_blocks": 9}, norm, dropout, id=f"resnet_9blocks-{norm}-{dropout}"
    )
    for norm in ("instance", "batch", "none")
    for dropout in (0.0, 0.5)
] + [
    pytest.param("resnet_6blocks", {"name": "resnet", "n_blocks": 6}, "instance", 0.0, id="resnet_6blocks-instance"),
    pytest.param("unet_128", {"name": "unet", "num_downs": 7}, "batch", 0.5, id="unet_128-batch"),
    pytest.param("unet_128", {"name": "unet", "num_downs": 7}, "instance", 0.5, id="unet_128-instance"),
    pytest.param("unet_128", {"name": "unet", "num_downs": 7}, "none", 0.0, id="unet_128-none"),
]


@pytest.mark.parametrize("arch_name, spec, norm, dropout", CASES)
def test_reference_checkpoint_imports_to_the_same_network(tmp_path, arch_name, spec, norm, dropout):
    ours = our_net({**spec, "ngf": 2, "norm": norm, "dropout": dropout}, norm)
    layout = resnet_reference_state if spec["name"] == "resnet" else unet_reference_state
    path = save(layout(ours, norm), tmp_path / "latest_net_G_A.pth")

    result = import_reference_checkpoint(path, tmp_path / "G.safetensors")

    assert result.architecture.name == arch_name and result.architecture.norm == norm
    imported = load_generator(result.path)
    sizes = RESNET_SIZES if spec["name"] == "resnet" else [(128, 128), (128, 256)]
    assert_same_function(ours, imported, sizes)


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_unet_256_imports_to_the_same_network(tmp_path, norm):
    ours = our_net({"name": "unet", "num_downs": 8, "ngf": 2, "norm": norm}, norm)
    path = save(unet_reference_state(ours, norm), tmp_path / "latest_net_G.pth")
    result = import_reference_checkpoint(path, tmp_path / "G.safetensors")
    assert result.architecture.name == "unet_256"
    assert_same_function(ours, load_generator(result.path), [(256, 256), (256, 512)])


@pytest.mark.parametrize("down, up", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_cut_antialiased_resnet_imports_to_the_same_network(tmp_path, down, up, norm):
    spec = {"name": "cut_resnet", "ngf": 2, "n_blocks": 2, "norm": norm}
    spec.update(antialias_down=down, antialias_up=up)
    ours = our_net(spec, norm)
    path = save(resnet_reference_state(ours, norm), tmp_path / "latest_net_G.pth")

    result = import_reference_checkpoint(path, tmp_path / "G.safetensors")

    assert (result.architecture.antialias, result.architecture.antialias_up) == (down, up)
    assert result.info["imported_from"]["code_base"] == "taesungp/contrastive-unpaired-translation"
    assert_same_function(ours, load_generator(result.path), RESNET_SIZES)


def test_cut_blur_layers_are_the_reference_filters():
    """An independent check of the blur resampling: a constant image stays constant, and the
    ×2 blur-upsampling of CUT sums its 4×4 taps to 4 (each output pixel gets weight 1)."""
    x = torch.full((1, 3, 8, 12), 0.7)
    assert torch.allclose(BlurDownsample(3)(x), torch.full((1, 3, 4, 6), 0.7))
    assert torch.allclose(BlurUpsample(3)(x), torch.full((1, 3, 16, 24), 0.7))


@pytest.mark.parametrize("kind", ["resnet", "unet"])
def test_old_instance_norm_statistics_are_dropped_as_the_reference_loader_does(tmp_path, kind):
    spec = {"name": "resnet", "n_blocks": 2} if kind == "resnet" else {"name": "unet", "num_downs": 7}
    ours = our_net({**spec, "ngf": 2, "norm": "instance"}, "instance")
    layout = resnet_reference_state if kind == "resnet" else unet_reference_state
    state = layout(ours, "instance", old_keys=True)
    assert any(key.endswith("running_mean") for key in state)

    result = import_reference_checkpoint(save(state, tmp_path / "old.pth"), tmp_path / "G.safetensors")

    assert result.architecture.norm == "instance"
    sizes = RESNET_SIZES if kind == "resnet" else [(128, 128), (128, 256)]
    assert_same_function(ours, load_generator(result.path), sizes)


def test_batch_norm_counters_missing_from_old_files_start_at_zero(tmp_path):
    ours = our_net({"name": "unet", "num_downs": 7, "ngf": 2, "norm": "batch"}, "batch")
    state = {k: v for k, v in unet_reference_state(ours, "batch").items() if not k.endswith("num_batches_tracked")}
    result = import_reference_checkpoint(save(state, tmp_path / "old.pth"), tmp_path / "G.safetensors")
    assert_same_function(ours, load_generator(result.path), [(128, 128)])


def test_the_cut_generator_tiles_as_closely_as_the_resnet():
    """Tiled inference with whole-image norm statistics works for the imported CUT layout too."""
    from translate.infer import translate_image

    image = torch.rand(1, 3, 300, 420) * 2 - 1
    gaps = {}
    for name in ("resnet", "cut_resnet"):
        net = our_net({"name": name, "ngf": 4, "n_blocks": 2, "norm": "instance"}, "instance")
        with torch.no_grad():
            whole = net(image)
        gaps[name] = (translate_image(net, image, tile=192, overlap=64, device="cpu") - whole).abs().mean().item()
    assert gaps["cut_resnet"] < 1e-3 and gaps["cut_resnet"] < 10 * gaps["resnet"]


# --- metadata, options, errors -----------------------------------------------------------------


@pytest.fixture
def resnet_checkpoint(tmp_path):
    ours = our_net({"name": "resnet", "ngf": 2, "n_blocks": 3, "norm": "instance"}, "instance")
    return save(resnet_reference_state(ours, "instance"), tmp_path / "latest_net_G_A.pth")


def test_metadata_records_the_origin(resnet_checkpoint, tmp_path):
    result = import_reference_checkpoint(resnet_checkpoint, tmp_path / "G.safetensors")
    meta = read_metadata(result.path)
    origin = meta["info"]["imported_from"]
    assert origin["file"] == "latest_net_G_A.pth"
    assert origin["sha256"] == hashlib.sha256(resnet_checkpoint.read_bytes()).hexdigest()
    assert origin["code_base"] == "junyanz/pytorch-CycleGAN-and-pix2pix"
    assert origin["reference_options"]["netG"] == "resnet_3blocks"
    assert meta["architecture"] == result.spec and meta["info"]["value_range"] == [-1, 1]


def test_stated_options_that_fit_are_accepted(resnet_checkpoint, tmp_path):
    result = import_reference_checkpoint(
        resnet_checkpoint, tmp_path / "G.safetensors", arch="resnet_3blocks", norm="instance", dropout=False
    )
    assert result.spec["n_blocks"] == 3


@pytest.mark.parametrize(
    "options, key",
    [
        ({"arch": "resnet_2blocks"}, "model.12.conv_block.1.bias"),  # a third block the stated net lacks
        ({"norm": "batch"}, "model.1.bias"),  # a conv bias: the reference gives none before BatchNorm
        ({"norm": "none"}, "model.1.bias"),
        ({"dropout": True}, "model.10.conv_block.5.bias"),  # the second conv sits at 5, not 6
        ({"antialias": True}, "model.7.bias"),  # a strided conv where CUT has its blur
        ({"arch": "unet_256"}, "model.1.bias"),
    ],
)
def test_a_stated_option_the_file_contradicts_names_the_key(resnet_checkpoint, tmp_path, options, key):
    out = tmp_path / "G.safetensors"
    with pytest.raises(CheckpointError, match=f"key '{key}'"):
        import_reference_checkpoint(resnet_checkpoint, out, **options)
    assert not out.exists()


def test_a_tensor_of_another_shape_is_named(resnet_checkpoint, tmp_path):
    state = torch.load(resnet_checkpoint, weights_only=True)
    state["model.10.conv_block.1.weight"] = torch.zeros(8, 4, 3, 3)
    shapes = r"key 'model.10.conv_block.1.weight' has shape \(8, 4, 3, 3\), .* needs \(8, 8, 3, 3\)"
    with pytest.raises(CheckpointError, match=shapes):
        import_reference_checkpoint(save(state, tmp_path / "bad.pth"), tmp_path / "G.safetensors")


def test_a_missing_tensor_is_named(resnet_checkpoint, tmp_path):
    state = torch.load(resnet_checkpoint, weights_only=True)
    del state["model.7.weight"]
    with pytest.raises(CheckpointError, match="key 'model.7.weight'"):
        import_reference_checkpoint(save(state, tmp_path / "bad.pth"), tmp_path / "G.safetensors")


def test_a_blur_filter_that_is_not_cuts_is_refused(tmp_path):
    ours = our_net({"name": "cut_resnet", "ngf": 2, "n_blocks": 1}, "instance")
    state = resnet_reference_state(ours, "instance")
    state["model.7.filt"] = state["model.7.filt"] * 1.5
    refused = "key 'model.7.filt' is not CUT's binomial .* cannot be reproduced exactly"
    with pytest.raises(CheckpointError, match=refused):
        import_reference_checkpoint(save(state, tmp_path / "cut.pth"), tmp_path / "G.safetensors")


def test_a_file_that_is_no_reference_generator_is_refused(tmp_path):
    discriminator = {"model.0.weight": torch.zeros(4, 3, 4, 4), "model.0.bias": torch.zeros(4)}
    with pytest.raises(CheckpointError, match="not a generator of the reference .* found e.g. 'model.0.weight'"):
        import_reference_checkpoint(save(discriminator, tmp_path / "D.pth"), tmp_path / "G.safetensors")


def test_unknown_arch_name_is_a_config_error(resnet_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="unknown reference generator 'unet_64'"):
        import_reference_checkpoint(resnet_checkpoint, tmp_path / "G.safetensors", arch="unet_64")


class _Payload:
    """Unpickling this would run code: it asks for os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_needs_code_is_refused_and_nothing_runs_or_is_written(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "latest_net_G_A.pth"
    torch.save({"model.1.weight": torch.zeros(2, 3, 7, 7), "payload": _Payload(marker)}, path)
    out = tmp_path / "G.safetensors"

    with pytest.raises(CheckpointError, match=r"needs code to load \(posix.system\).*weights_only=True"):
        import_reference_checkpoint(path, out)

    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest_net_G_A.pth"]


def test_a_whole_pickled_network_is_refused(tmp_path):
    path = tmp_path / "net.pth"
    torch.save(nn.Conv2d(3, 3, 1), path)
    with pytest.raises(CheckpointError, match=r"needs code to load \(torch.nn.modules.conv.Conv2d\)"):
        import_reference_checkpoint(path, tmp_path / "G.safetensors")


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read .*junk.pth as a PyTorch checkpoint: Unsupported operand"):
        import_reference_checkpoint(path, tmp_path / "G.safetensors")


def test_a_data_parallel_prefix_is_removed(resnet_checkpoint, tmp_path):
    state = torch.load(resnet_checkpoint, weights_only=True)
    prefixed = save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    result = import_reference_checkpoint(prefixed, tmp_path / "G.safetensors")
    assert result.spec["n_blocks"] == 3


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "translate.cli", *args], capture_output=True, text=True, env=env)


def test_cli_import_writes_a_generator_and_reports_errors_in_one_line(resnet_checkpoint, tmp_path):
    out = tmp_path / "imported" / "G_A.safetensors"
    done = _cli("import", str(resnet_checkpoint), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "resnet_3blocks, norm instance" in done.stdout and out.is_file()
    assert load_generator(out).size_multiple == 4

    failed = _cli("import", str(resnet_checkpoint), "--out", str(tmp_path / "x.safetensors"), "--norm", "batch")
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and "key 'model.1.bias'" in failed.stderr
    assert not (tmp_path / "x.safetensors").exists()
