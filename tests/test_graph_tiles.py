"""Graph engines tile instance- and group-norm generators exactly: the network is cut at its norm
layers into exported segments that take the whole image's statistics as inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_backends_wired import BF16_TOLERANCE, FP32_TOLERANCE, exported, image

from translate.errors import ConfigError
from translate.infer import open_generator, translate_image
from translate.infer.graph_tiles import SegmentedGraph, plan
from translate.infer.stats import shareable_norms
from translate.io import load_generator
from translate.nets import build_generator

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")
pytest.importorskip("openvino", reason="the deploy extra is not installed")


def test_a_resnet_is_cut_into_segments_that_each_start_at_one_norm_layer():
    net = build_generator({"name": "resnet", "ngf": 4, "n_blocks": 2, "norm": "instance"}).eval()
    segments = plan(net)
    assert not isinstance(segments, str)
    steps = len(net.stages())
    assert [s.start for s in segments][0] == 0 and segments[-1].stop == steps
    assert all(a.stop == b.start for a, b in zip(segments, segments[1:], strict=False))  # contiguous
    norms = [s.norm for s in segments if s.norm is not None]
    assert sorted(norms) == sorted(shareable_norms(net)) and segments[0].norm is None
    # inside a residual block the state is the (skip, branch) pair: two tensors cross that boundary
    assert {s.arity_in for s in segments} == {1, 2}


def test_a_network_without_steps_cannot_be_cut_and_a_graph_engine_says_why(tmp_path: Path):
    net = build_generator({"name": "unet", "ngf": 4, "num_downs": 3, "norm": "instance", "dropout": 0.0})
    assert "not split into steps" in plan(net)
    source = exported(tmp_path, {"name": "unet", "ngf": 4, "num_downs": 3, "norm": "instance", "dropout": 0.0})
    generator = open_generator(source, "openvino", "fp32", "cpu")
    with pytest.raises(ConfigError, match="cannot tile G.safetensors: its norm layers cannot be cut apart.*untiled"):
        translate_image(generator, image(40, 48), tile=16, overlap=8, device="cpu")
    assert torch.isfinite(
        translate_image(generator, image(40, 48), tile=64, overlap=8, device="cpu")
    ).all()  # untiled runs


SLOW = pytest.mark.slow  # the rest of a grid whose first case stays in the quick loop


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"name": "resnet", "ngf": 4, "n_blocks": 2, "norm": "group"}, id="group-norm"),
        pytest.param(
            {"name": "resnet", "ngf": 4, "n_blocks": 1, "n_downsampling": 1, "upsample": "resize", "conv": "separable"},
            id="separable-student",
            marks=SLOW,
        ),
        pytest.param({"name": "cut_resnet", "ngf": 4, "n_blocks": 2}, id="cut-antialiased", marks=SLOW),
    ],
)
@pytest.mark.parametrize("engine", ["openvino", pytest.param("onnxruntime", marks=SLOW)])
def test_segments_tile_like_the_torch_hooks_for_every_resnet_kind(tmp_path: Path, spec, engine):
    source = exported(tmp_path, {"norm": "instance", **spec})
    x = image(80, 112, seed=1)
    torch_tiles = translate_image(load_generator(source), x, tile=48, overlap=16, device="cpu")
    untiled = translate_image(load_generator(source), x, tile=512, device="cpu")
    got = translate_image(open_generator(source, engine, "fp32", "cpu"), x, tile=48, overlap=16, device="cpu")
    assert (got - torch_tiles).abs().max() <= FP32_TOLERANCE
    # and the shared statistics matter: tiles normalised on their own differ from the untiled image
    own = translate_image(load_generator(source), x, tile=48, overlap=16, device="cpu", norm_stats="tile")
    assert (own - untiled).abs().max() > 100 * FP32_TOLERANCE


@pytest.mark.parametrize("stat_passes", [None, pytest.param(2, marks=SLOW)])
@pytest.mark.parametrize("cache", ["ram", pytest.param("off", marks=SLOW)])
def test_segments_follow_the_statistics_passes_and_the_frontier_as_torch_does(tmp_path: Path, stat_passes, cache):
    source = exported(tmp_path, {"name": "resnet", "ngf": 4, "n_blocks": 2, "norm": "instance"})
    x = image(96, 96, seed=2)
    options = {"tile": 48, "overlap": 16, "device": "cpu", "stat_passes": stat_passes, "cache": cache}
    expected = translate_image(load_generator(source), x, **options)
    got = translate_image(open_generator(source, "openvino", "fp32", "cpu"), x, **options)
    assert (got - expected).abs().max() <= FP32_TOLERANCE


def test_bf16_segments_stay_within_bf16_tolerance_and_progress_counts_their_passes(tmp_path: Path):
    source = exported(tmp_path, {"name": "resnet", "ngf": 4, "n_blocks": 2, "norm": "instance"})
    x = image(96, 128, seed=3)
    expected = translate_image(load_generator(source), x, tile=64, overlap=32, device="cpu")
    calls: list[tuple[int, int]] = []
    generator = open_generator(source, "openvino", "bf16", "cpu")
    got = translate_image(generator, x, tile=64, overlap=32, device="cpu", progress=lambda d, t: calls.append((d, t)))
    assert (got - expected).abs().max() <= BF16_TOLERANCE
    assert calls[-1][0] == calls[-1][1] and len(calls) == calls[-1][1]


def test_a_segmented_graph_leaves_the_torch_network_without_hooks(tmp_path: Path):
    net = load_generator(exported(tmp_path, {"name": "resnet", "ngf": 4, "n_blocks": 1, "norm": "instance"}))
    graph = SegmentedGraph.of(net, "onnxruntime", "fp32")
    translate_image(graph, image(64, 64), tile=32, overlap=16, device="cpu")
    assert all(not m._forward_hooks for m in net.modules())
    with torch.no_grad():  # and the whole chain of segments is the network
        assert (graph(image(32, 32)) - net(image(32, 32))).abs().max() <= FP32_TOLERANCE


class ConvNormSteps(torch.nn.Module):
    """A generator whose norm layers sit inside their steps, behind a convolution: the statistics
    passes must run a probe graph up to each norm's input."""

    size_multiple, in_channels = 1, 3

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.InstanceNorm2d(6), torch.nn.ReLU()),
            torch.nn.Sequential(torch.nn.Conv2d(6, 6, 3, padding=1), torch.nn.GroupNorm(2, 6), torch.nn.ReLU()),
            torch.nn.Conv2d(6, 3, 3, padding=1),
        )

    def stages(self):
        return list(self.body)

    def forward(self, x):
        return self.body(x)


def test_norms_behind_a_convolution_in_their_step_are_reached_by_probe_graphs():
    net = ConvNormSteps().eval()
    graph = SegmentedGraph.of(net, "openvino", "fp32")
    assert [(s.start, s.stop, s.norm) for s in graph.segments] == [(0, 1, "body.0.1"), (1, 3, "body.1.1")]
    assert graph._probe_inputs[:2] == [None, None]  # the norm's input is not the segment's input
    x = image(64, 80, seed=4)
    expected = translate_image(net, x, tile=32, overlap=16, device="cpu")
    got = translate_image(graph, x, tile=32, overlap=16, device="cpu")
    assert (got - expected).abs().max() <= FP32_TOLERANCE
