"""Import generators of the reference CycleGAN/pix2pix code and of CUT/FastCUT.

Those codes save a generator as a bare ``state_dict`` (``latest_net_G_A.pth``): the architecture
lives only in the training options. Here the architecture is read back from the keys and shapes
(``infer_architecture``), may be stated by the user (a statement that does not fit the file is an
error naming the key that shows it), and the weights are moved, key by key, into the toolkit's
own network, which computes the same function:

* ``resnet_Nblocks`` -> ``resnet`` (reflection padding, strided convs, transposed convs);
* ``unet_128`` / ``unet_256`` -> ``unet`` (the recursive skip blocks, unrolled into levels);
* CUT's ResNet with anti-aliased resampling -> ``cut_resnet`` (``translate.nets.reference``).

The key layout of the reference network is derived from the toolkit's own network by renaming
module paths (``reference_layout``), so one description serves inference, checking and loading.
Differences that are exact are bridged silently: a conv without bias in the reference (norm
``none``) gets a zero bias here; InstanceNorm ``running_mean``/``running_var``/
``num_batches_tracked`` keys of checkpoints written before PyTorch 0.4 are dropped, as the
reference's own loader does; CUT's fixed blur filters are checked, not stored. Anything else that
does not fit is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..io import export_network, file_sha256, load_state_strict
from ..nets import build_network
from ..nets.reference import BlurDownsample, BlurUpsample
from .safe_load import read_state_dict

CODE_BASES = {
    "cyclegan": "junyanz/pytorch-CycleGAN-and-pix2pix",
    "cut": "taesungp/contrastive-unpaired-translation",
}
NORMS = ("instance", "batch", "none")
#: the reference's U-Net names: image size -> number of downsamplings
UNET_SIZES = {128: 7, 256: 8}
#: keys an InstanceNorm layer of a checkpoint older than PyTorch 0.4 may carry
OLD_INSTANCE_NORM_KEYS = ("running_mean", "running_var", "num_batches_tracked")
BLUR_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ReferenceArchitecture:
    """A reference generator, in the terms of the reference's options."""

    kind: str  # "resnet" or "unet"
    depth: int  # residual blocks (resnet) or downsamplings (unet)
    ngf: int
    in_channels: int
    out_channels: int
    norm: str
    dropout: bool
    antialias: bool = False  # CUT: anti-aliased downsampling (resnet only)
    antialias_up: bool = False  # CUT: anti-aliased upsampling (resnet only)

    @property
    def name(self) -> str:
        """The reference's ``--netG`` name."""
        if self.kind == "resnet":
            return f"resnet_{self.depth}blocks"
        sizes = {downs: size for size, downs in UNET_SIZES.items()}
        return f"unet_{sizes.get(self.depth, 2**self.depth)}"

    def spec(self) -> dict[str, Any]:
        """The toolkit's generator spec that computes the same function."""
        common = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "ngf": self.ngf,
            "norm": self.norm,
        }
        if self.kind == "unet":
            return {
                "name": "unet",
                **common,
                "num_downs": self.depth,
                "dropout": 0.5 if self.dropout else 0.0,
                "upsample": "transpose",
                "spectral_norm": False,
            }
        resnet = {**common, "n_blocks": self.depth, "n_downsampling": 2, "dropout": 0.5 if self.dropout else 0.0}
        if self.antialias or self.antialias_up:
            aliasing = {"antialias_down": self.antialias, "antialias_up": self.antialias_up}
            return {"name": "cut_resnet", **resnet, **aliasing}
        return {"name": "resnet", **resnet, "upsample": "transpose", "spectral_norm": False}


# --- the reference key layout of a toolkit network -------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tensor of the toolkit's net and where the reference keeps it.

    ``role``: ``"weight"`` (must be in the file), ``"zero_bias"`` (the reference conv has no bias:
    ours is zero), ``"counter"`` (BatchNorm's ``num_batches_tracked``: zero where absent).
    """

    ours: str
    reference: str
    shape: tuple[int, ...]
    role: str = "weight"


@dataclass
class Layout:
    entries: list[Entry]
    optional: set[str]  # reference keys the reference's loader drops (old InstanceNorm statistics)
    blurs: dict[str, torch.Tensor]  # reference key -> the fixed CUT filter it must hold


def reference_layout(arch: ReferenceArchitecture) -> tuple[nn.Module, Layout]:
    """The toolkit's net for ``arch`` and the reference key of each of its tensors."""
    net = build_network("generator", arch.spec())
    rename = _unet_renamer(arch.depth) if arch.kind == "unet" else _resnet_renamer(net)
    output_conv = "ups.0.1" if arch.kind == "unet" else f"decoder.{len(net.decoder) - 2}"
    entries, optional, blurs = [], set(), {}
    modules = dict(net.named_modules())
    for key, value in net.state_dict().items():
        module_name, _, leaf = key.rpartition(".")
        role = "weight"
        if leaf == "bias" and arch.norm == "none" and module_name != output_conv:
            role = "zero_bias"  # the reference builds its convs without bias when there is no norm
        elif leaf == "num_batches_tracked":
            role = "counter"
        entries.append(Entry(key, f"{rename(module_name)}.{leaf}", tuple(value.shape), role))
    for name, module in modules.items():
        if isinstance(module, nn.InstanceNorm2d):
            optional.update(f"{rename(name)}.{leaf}" for leaf in OLD_INSTANCE_NORM_KEYS)
        elif isinstance(module, (BlurDownsample, BlurUpsample)):
            blurs[f"{rename(name)}.filt"] = module.filt
    return net, Layout(entries, optional, blurs)


def _resnet_renamer(net: nn.Module):
    """encoder.k / blocks.i.body.k / decoder.k -> the reference's flat model.N[.conv_block.k]."""
    n_encoder, n_blocks = len(net.encoder), len(net.blocks)

    def rename(path: str) -> str:
        part, index, *rest = path.split(".")
        if part == "encoder":
            return f"model.{index}"
        if part == "blocks":
            return f"model.{n_encoder + int(index)}.conv_block.{rest[1]}"
        return f"model.{n_encoder + n_blocks + int(index)}"

    return rename


def _unet_renamer(num_downs: int):
    """downs.i[.k] / ups.i.k -> the reference's nested skip blocks.

    Level i of the U-Net is the i-th nested ``UnetSkipConnectionBlock``: the outermost holds
    [downconv, submodule, ReLU, upconv, Tanh], a middle one [LeakyReLU, downconv, downnorm,
    submodule, ReLU, upconv, upnorm], the innermost [LeakyReLU, downconv, ReLU, upconv, upnorm].
    """
    innermost = num_downs - 1

    def prefix(level: int) -> str:
        path = "model.model"
        for outer in range(level):
            path += ".1.model" if outer == 0 else ".3.model"
        return path

    def rename(path: str) -> str:
        part, level_text, *rest = path.split(".")
        level = int(level_text)
        if part == "downs":
            return f"{prefix(0)}.0" if level == 0 else f"{prefix(level)}.{rest[0]}"  # conv 1, norm 2
        if level == 0:
            return f"{prefix(0)}.3"
        shift = {"1": "3", "2": "4"} if level == innermost else {"1": "5", "2": "6"}
        return f"{prefix(level)}.{shift[rest[0]]}"

    return rename


# --- reading the architecture from a file -----------------------------------------------------


def infer_architecture(state: Mapping[str, torch.Tensor], source: str) -> ReferenceArchitecture:
    """The reference architecture whose ``state_dict`` ``state`` is, from its keys and shapes."""
    if any(key.startswith("model.model.") for key in state):
        return _infer_unet(state, source)
    if any(".conv_block." in key for key in state):
        return _infer_resnet(state, source)
    example = next(iter(state), "(no keys)")
    raise CheckpointError(
        f"{source} is not a generator of the reference CycleGAN/pix2pix or CUT code: expected keys like "
        f"'model.1.weight' with '.conv_block.' (ResNet) or 'model.model.0.weight' (U-Net), found e.g. '{example}'"
    )


def _require(state: Mapping[str, torch.Tensor], key: str, source: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{source}: key '{key}' is missing; the file is not a complete reference generator")
    return state[key]


def _top_index(key: str) -> int:
    """N of a ``model.N.…`` key of the reference ResNet's flat layer list (-1 for other keys)."""
    return int(key.split(".")[1]) if re.match(r"model\.\d+\.", key) else -1


def _infer_resnet(state: Mapping[str, torch.Tensor], source: str) -> ReferenceArchitecture:
    blocks = sorted({_top_index(key) for key in state if ".conv_block." in key})
    first_block, last_block = blocks[0], blocks[-1]
    filters = [_top_index(key) for key in state if key.endswith(".filt")]
    stem = _require(state, "model.1.weight", source)
    convs = [key for key in state if key.endswith(".weight") and _top_index(key) > last_block]
    output = state[max(convs, key=_top_index)] if convs else _require(state, f"model.{last_block + 1}.weight", source)
    return ReferenceArchitecture(
        kind="resnet",
        depth=len(blocks),
        ngf=stem.shape[0],
        in_channels=stem.shape[1],
        out_channels=output.shape[0],
        norm=_norm_of(state, stem_conv="model.1", stem_norm="model.2"),
        # a Dropout shifts the block's second conv from index 5 to 6 (a BatchNorm at 6 has 1-D weights)
        dropout=any(key.endswith(".conv_block.6.weight") and state[key].dim() == 4 for key in state),
        antialias=any(index < first_block for index in filters),
        antialias_up=any(index > last_block for index in filters),
    )


def _infer_unet(state: Mapping[str, torch.Tensor], source: str) -> ReferenceArchitecture:
    levels = max(key.split(".").count("model") for key in state if key.startswith("model.model.")) - 1
    down = _require(state, "model.model.0.weight", source)
    up = _require(state, "model.model.3.weight", source)  # ConvTranspose2d: (in, out, k, k)
    return ReferenceArchitecture(
        kind="unet",
        depth=levels,
        ngf=down.shape[0],
        in_channels=down.shape[1],
        out_channels=up.shape[1],
        norm=_norm_of(state, stem_conv="model.model.0", stem_norm="model.model.1.model.2"),
        dropout=True,  # dropout has no weights; the pix2pix default (use --no-dropout to record it off)
    )


def _norm_of(state: Mapping[str, torch.Tensor], stem_conv: str, stem_norm: str) -> str:
    """BatchNorm has weights; InstanceNorm has none but makes the reference give its convs a bias."""
    if f"{stem_norm}.weight" in state:
        return "batch"
    return "instance" if f"{stem_conv}.bias" in state else "none"


def parse_arch_name(name: str) -> tuple[str, int]:
    """``resnet_9blocks`` -> ("resnet", 9); ``unet_256`` -> ("unet", 8)."""
    resnet = re.fullmatch(r"resnet_(\d+)blocks", name)
    if resnet:
        return "resnet", int(resnet.group(1))
    unet = re.fullmatch(r"unet_(\d+)", name)
    if unet and int(unet.group(1)) in UNET_SIZES:
        return "unet", UNET_SIZES[int(unet.group(1))]
    raise ConfigError(
        f"unknown reference generator '{name}'; known: resnet_9blocks, resnet_6blocks, resnet_<N>blocks, "
        "unet_256, unet_128"
    )


def apply_stated(arch: ReferenceArchitecture, stated: Mapping[str, Any]) -> ReferenceArchitecture:
    """``arch`` with the options the user stated (``arch``, ``norm``, ``dropout``, ``antialias``,
    ``antialias_up``) in place of the inferred ones; whether they fit the file is checked later."""
    known = {"arch", "norm", "dropout", "antialias", "antialias_up"}
    unknown = sorted(set(stated) - known)
    if unknown:
        raise ConfigError(f"unknown import option(s) {unknown}; known: {', '.join(sorted(known))}")
    changes = {key: value for key, value in stated.items() if key != "arch" and value is not None}
    if changes.get("norm") is not None and changes["norm"] not in NORMS:
        raise ConfigError(f"unknown norm '{changes['norm']}'; the reference codes know: {', '.join(NORMS)}")
    if stated.get("arch"):
        kind, depth = parse_arch_name(stated["arch"])
        changes.update(kind=kind, depth=depth)
    return replace(arch, **changes)


# --- moving the weights -----------------------------------------------------------------------


def convert_state(arch: ReferenceArchitecture, state: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """The toolkit's net for ``arch`` holding the weights of reference ``state``; a key that does
    not fit is an error naming it and the architecture."""
    net, layout = reference_layout(arch)
    what = f"the reference '{arch.name}' generator with norm '{arch.norm}'"
    expected = {entry.reference: entry for entry in layout.entries if entry.role != "zero_bias"}
    for key in sorted(set(state) - set(expected) - layout.optional - set(layout.blurs), key=_natural):
        module = key.rpartition(".")[0]
        biased = key.endswith(".bias") and f"{module}.weight" in expected
        hint = f" (a bias of a conv that has none with norm '{arch.norm}')" if biased else ""
        raise CheckpointError(f"{source}: key '{key}' does not belong to {what}{hint}")
    for key, entry in sorted(expected.items(), key=lambda item: _natural(item[0])):
        if key not in state and entry.role != "counter":
            raise CheckpointError(f"{source}: key '{key}' of {what} is missing from the file")
        if key in state and tuple(state[key].shape) != entry.shape:
            raise CheckpointError(
                f"{source}: key '{key}' has shape {tuple(state[key].shape)}, {what} needs {entry.shape}"
            )
    _check_blurs(layout, state, source, what)
    own = net.state_dict()
    converted = {}
    for entry in layout.entries:
        if entry.reference in state:
            converted[entry.ours] = state[entry.reference].to(own[entry.ours].dtype)
        else:  # a zero conv bias where the reference has none; a fresh BatchNorm counter
            converted[entry.ours] = torch.zeros_like(own[entry.ours])
    load_state_strict(net, converted, source=source)
    return net.eval()


def _check_blurs(layout: Layout, state: Mapping[str, torch.Tensor], source: str, what: str) -> None:
    for key, filt in layout.blurs.items():
        if key not in state:
            raise CheckpointError(f"{source}: key '{key}' (an anti-aliasing filter) of {what} is missing from the file")
        stored = state[key].float()
        if stored.shape != filt.shape:
            raise CheckpointError(
                f"{source}: key '{key}' has shape {tuple(stored.shape)}, {what} needs {tuple(filt.shape)}"
            )
        if (stored - filt).abs().max() > BLUR_TOLERANCE:
            raise CheckpointError(
                f"{source}: key '{key}' is not CUT's binomial anti-aliasing filter, so the network cannot be "
                "reproduced exactly; refusing to import it"
            )


def _natural(key: str) -> list[Any]:
    """Sort keys as a reader would: model.2 before model.10."""
    return [int(part) if part.isdigit() else part for part in key.split(".")]


# --- the whole import -------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    path: Path
    architecture: ReferenceArchitecture
    spec: dict[str, Any]
    info: dict[str, Any]


def import_reference_checkpoint(
    source: str | Path,
    out: str | Path | None = None,
    *,
    arch: str | None = None,
    norm: str | None = None,
    dropout: bool | None = None,
    antialias: bool | None = None,
    antialias_up: bool | None = None,
    code_base: str | None = None,
    info: Mapping[str, Any] | None = None,
) -> ImportResult:
    """Turn a reference CycleGAN/pix2pix or CUT generator ``state_dict`` into an exported generator.

    The architecture is inferred from the file; any option given states it (``arch`` as the
    reference's ``--netG``, e.g. ``resnet_9blocks`` or ``unet_256``; ``norm``; ``dropout``;
    CUT's ``antialias`` and ``antialias_up``), and a statement the file contradicts is an error
    naming the key. ``out`` defaults to the source with the suffix ``.safetensors``. The file's
    metadata records the origin (file name, SHA-256, code base, reference options). Nothing is
    written unless the import succeeds.
    """
    source = Path(source)
    out = Path(out) if out is not None else source.with_suffix(".safetensors")
    if out.resolve() == source.resolve():
        raise ConfigError(f"the output {out} would overwrite the checkpoint being imported")
    if code_base is not None and code_base not in CODE_BASES:
        raise ConfigError(f"unknown code base '{code_base}'; known: {', '.join(CODE_BASES)}")
    state = read_state_dict(source)
    stated = {"arch": arch, "norm": norm, "dropout": dropout, "antialias": antialias, "antialias_up": antialias_up}
    architecture = apply_stated(infer_architecture(state, str(source)), stated)
    net = convert_state(architecture, state, str(source))
    base = code_base or ("cut" if architecture.antialias or architecture.antialias_up else "cyclegan")
    facts = {
        "model": "imported",
        "value_range": [-1, 1],
        "imported_from": {
            "file": source.name,
            "sha256": file_sha256(source),
            "code_base": CODE_BASES[base],
            "reference_options": {"netG": architecture.name, **_reference_options(architecture)},
        },
        **dict(info or {}),
    }
    spec = architecture.spec()
    path = export_network(out, net, spec, family="generator", info=facts)
    return ImportResult(path, architecture, spec, facts)


def _reference_options(arch: ReferenceArchitecture) -> dict[str, Any]:
    reference_names = {"in_channels": "input_nc", "out_channels": "output_nc"}
    skipped = ("kind", "depth", "antialias", "antialias_up")
    options = {reference_names.get(k, k): v for k, v in asdict(arch).items() if k not in skipped}
    if arch.kind == "resnet":
        options.update(no_antialias=not arch.antialias, no_antialias_up=not arch.antialias_up)
    return options
