"""A user's own generator, registered from their own package, trains, exports and loads everywhere.

The plugin is a tiny package written to a temporary folder with the ``*.dist-info`` that installing
it would write (``entry_points.txt`` declaring the ``i2i.plugins`` group); ``importlib.metadata``
reads exactly that, so it stands for ``pip install mypkg``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image

from translate import io, plugins
from translate.errors import ConfigError
from translate.nets import GENERATORS, build_generator

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_NETS = '''
"""A user's generator: importing this module registers it."""
from torch import nn

from translate.nets import GENERATORS, ImageGenerator


@GENERATORS.register("tinynet")
class TinyNet(ImageGenerator):
    @staticmethod
    def normalises_per_sample(spec):
        return True  # instance norm only: one sample's output never depends on the rest of the batch

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 4, norm: str = "instance") -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.InstanceNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, out_channels, 3, padding=1), nn.Tanh(),
        )

    def body(self, x):
        return self.layers(x)
'''

PYPROJECT = """
[project]
name = "mypkg"
version = "0.1"

[project.entry-points."i2i.plugins"]
mynet = "mypkg.nets"
"""


def write_plugin(site: Path, nets_source: str = PLUGIN_NETS, entry_point: bool = True) -> Path:
    """``mypkg`` (with its ``pyproject.toml``) in ``site``; with ``entry_point``, also the
    ``mypkg-0.1.dist-info`` that ``pip install`` would write beside it."""
    package = site / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(nets_source)
    (site / "pyproject.toml").write_text(PYPROJECT)
    if entry_point:
        info = site / "mypkg-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[i2i.plugins]\nmynet = mypkg.nets\n")
    return site


def cli(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    cmd = [sys.executable, "-m", "translate.cli", *map(str, args)]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def python(site: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def tiny_config(path: Path, root_a: Path, root_b: Path, out_dir: Path) -> Path:
    path.write_text(
        textwrap.dedent(f"""
        name: plugin_run
        out_dir: {out_dir}
        data:
          dataset: {{name: unpaired_folders, root_a: {root_a}, root_b: {root_b}}}
          preprocess: none
          batch_size: 2
        model:
          name: cyclegan
          generator: {{name: tinynet, width: 4}}
          discriminator: {{name: patchgan, ndf: 4, n_layers: 2}}
          pool_size: 2
        optim: {{max_steps: 2}}
        engine: {{progress: false, tensorboard: false, log_every: 1, sample_every: 100, save_every: 100}}
    """)
    )
    return path


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Entry points unread and GENERATORS as built in, restored afterwards: a plugin imported by
    one test must not leak its names into the next."""
    monkeypatch.setattr(plugins, "ENTRY_POINTS", plugins.EntryPointPlugins())
    monkeypatch.setattr(GENERATORS, "_entries", dict(GENERATORS._entries))
    yield
    forget_plugin()


@pytest.mark.slow
def test_a_plugin_generator_trains_exports_and_translates_through_the_cli(tmp_path, tiny_unpaired):
    site = write_plugin(tmp_path / "site")
    root_a, root_b = tiny_unpaired
    config = tiny_config(tmp_path / "run.yaml", root_a, root_b, tmp_path / "run")

    trained = cli(site, "train", config)
    assert trained.returncode == 0, trained.stderr
    exported = cli(site, "export", tmp_path / "run", "--out", tmp_path / "export")
    assert exported.returncode == 0, exported.stderr
    export = tmp_path / "export" / "G_AB.safetensors"
    assert export.is_file()

    translated = cli(
        site,
        "translate",
        "--checkpoint",
        export,
        "--input",
        root_a,
        "--output",
        tmp_path / "out",
        "--device",
        "cpu",
        "--no-progress",
    )
    assert translated.returncode == 0, translated.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == sorted(p.name for p in root_a.glob("*.png"))

    # the Python API finds the plugin too, with nothing imported by hand
    loaded = python(site, f"import translate; G = translate.load_generator({str(export)!r}); print(type(G).__name__)")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "TinyNet"


def test_an_export_of_a_plugin_generator_loads_through_its_entry_point(tmp_path, fresh_plugins, monkeypatch):
    site = write_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    assert "mypkg.nets" not in sys.modules
    assert "tinynet" in GENERATORS  # the first miss reads the entry points and imports the plugin
    assert "mypkg.nets" in sys.modules and plugins.ENTRY_POINTS.loaded


def forget_plugin() -> None:
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]


def test_the_import_option_registers_a_module_that_is_no_entry_point(tmp_path, fresh_plugins, monkeypatch, capsys):
    from translate.cli import main

    site = write_plugin(tmp_path / "site", entry_point=False)
    monkeypatch.syspath_prepend(str(site))
    builtin = dict(GENERATORS._entries)
    importlib.import_module("mypkg.nets")
    spec = {"name": "tinynet", "width": 4}
    export = io.export_network(tmp_path / "G.safetensors", build_generator(spec), spec)
    monkeypatch.setattr(GENERATORS, "_entries", builtin)  # a fresh process: only built-in names
    forget_plugin()
    (tmp_path / "in").mkdir()
    Image.new("RGB", (12, 10), (40, 90, 200)).save(tmp_path / "in" / "x.png")
    args = [
        "translate",
        "--checkpoint",
        str(export),
        "--input",
        str(tmp_path / "in"),
        "--device",
        "cpu",
        "--no-progress",
    ]

    assert main([*args, "--output", str(tmp_path / "a")]) == 2
    message = capsys.readouterr().err.strip()
    assert "unknown generator 'tinynet'" in message and "resnet, unet" in message and "\n" not in message
    assert "i2i.plugins" in message and "--import MODULE" in message and "docs/plugins.md" in message
    assert not list(tmp_path.glob("a/*"))

    assert main([*args, "--output", str(tmp_path / "b"), "--import", "mypkg.nets"]) == 0
    assert Image.open(tmp_path / "b" / "x.png").size == (12, 10)


def test_a_broken_plugin_is_one_line_naming_its_entry_point_and_module(tmp_path, fresh_plugins, monkeypatch):
    site = write_plugin(tmp_path / "site", nets_source="import torchvision_extras_not_installed\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ConfigError) as caught:
        GENERATORS.get("tinynet")
    message = str(caught.value)
    assert "plugin entry point 'mynet'" in message and "module 'mypkg.nets'" in message and "from mypkg" in message
    assert "No module named 'torchvision_extras_not_installed'" in message
    assert "\n" not in message
    assert GENERATORS.get("resnet") is not None  # built-in names never need the plugins


def test_a_builtin_name_never_imports_the_plugins(tmp_path, fresh_plugins, monkeypatch):
    site = write_plugin(tmp_path / "site", nets_source="raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(site))
    spec = {"name": "unet", "ngf": 4, "num_downs": 2}
    assert GENERATORS.build(spec)(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    assert not plugins.ENTRY_POINTS.loaded and "mypkg.nets" not in sys.modules


def test_the_import_option_names_a_module_that_cannot_be_imported(tmp_path, capsys):
    from translate.cli import main

    code = main(["export", str(tmp_path / "run"), "--import", "no_such_plugin_module"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "i2i export: error: --import no_such_plugin_module: cannot import it: "
        "ModuleNotFoundError: No module named 'no_such_plugin_module'"
    )
    assert not (tmp_path / "run").exists()


def test_the_import_option_names_a_python_file_that_is_missing_broken_or_shadowed(tmp_path, capsys):
    from translate.cli import main

    broken = tmp_path / "broken_nets.py"
    broken.write_text("from torch import nn\n\nclass Net(nn.Module:\n    pass\n")
    shadowing = tmp_path / "json.py"  # a module named json is imported already (the standard library's)
    shadowing.write_text("")
    cases = {
        tmp_path / "missing.py": f"FileNotFoundError: no such file: {tmp_path / 'missing.py'}",
        broken: "SyntaxError:",
        shadowing: "ImportError: a module named 'json' is already imported (from ",
    }
    for path, expected in cases.items():
        assert main(["export", str(tmp_path / "run"), "--import", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"i2i export: error: --import {path}: cannot import it: {expected}"), err
        assert "\n" not in err
    assert "broken_nets" not in sys.modules  # a half-run module is not left for the next import


def test_every_command_takes_the_import_option():
    import argparse

    from translate.cli import build_parser

    def leaves(parser: argparse.ArgumentParser, path: str):
        children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not children:
            yield path, parser
        for action in children:
            for name, child in action.choices.items():
                yield from leaves(child, f"{path} {name}".strip())

    found = dict(leaves(build_parser(), ""))
    assert {"train", "translate", "export", "sample", "study", "app", "data synth", "augment translate-dataset"} <= set(
        found
    )
    for path, parser in found.items():
        options = {option for action in parser._actions for option in action.option_strings}
        assert "--import" in options, path


def test_the_import_option_takes_a_python_file(tmp_path, fresh_plugins, capsys):
    from translate.cli import main

    nets = tmp_path / "my_tiny_nets.py"
    nets.write_text(PLUGIN_NETS.replace('"tinynet"', '"tinynet_from_file"'))
    export = tmp_path / "G.safetensors"
    try:
        code = main(["export", str(tmp_path / "no_run"), "--import", str(nets)])
        assert "tinynet_from_file" in GENERATORS
        assert code == 2  # the module was imported before the command ran (and failed on its missing run)
        assert "no_run" in capsys.readouterr().err
    finally:
        sys.modules.pop("my_tiny_nets", None)
    assert not export.exists()


def test_threads_asking_at_once_all_wait_for_the_plugins(tmp_path, fresh_plugins, monkeypatch):
    slow_import = "import time\ntime.sleep(0.3)\n" + PLUGIN_NETS  # a plugin still importing when others ask
    site = write_plugin(tmp_path / "site", nets_source=slow_import)
    monkeypatch.syspath_prepend(str(site))
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: GENERATORS.get("tinynet").__name__, range(4)))
    assert found == ["TinyNet"] * 4
