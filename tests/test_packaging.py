"""``translate`` and ``augment`` are also other PyPI distributions' package names: when one of those
shadows ours, i2i says so in one line (the file found, its distribution, the fix), and the other
package itself still imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def foreign_site(tmp_path: Path, package: str, version: str) -> Path:
    """A folder holding another distribution's package ``package`` and the ``dist-info`` that
    installing it writes (which ``importlib.metadata.packages_distributions`` reads)."""
    site = tmp_path / "site"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(f"VERSION = {version!r}\n\n\ndef {package}(text):\n    return text\n")
    info = site / f"{package}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{package}\n")
    return site


def run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGS`` with the foreign package first on the path, then this project."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def assert_names_the_clash(message: str, package: str, site: Path, version: str) -> None:
    assert f"i2i needs its own package '{package}'" in message, message
    assert str(site / package / "__init__.py") in message
    assert f"distribution '{package}' {version}" in message
    assert "virtual environment" in message and f"pip uninstall {package}" in message


def test_the_i2i_command_names_a_foreign_translate_package_and_the_fix(tmp_path):
    site = foreign_site(tmp_path, "translate", "3.8")
    result = run(site, "-m", "i2i_cli", "translate", "--help", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("i2i: error: ")
    assert_names_the_clash(result.stderr, "translate", site, "3.8")


def test_the_foreign_package_itself_still_imports(tmp_path):
    site = foreign_site(tmp_path, "translate", "3.8")
    result = run(site, "-c", "import translate; print(translate.VERSION, translate.translate('ok'))", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3.8", "ok"]


def test_our_augment_refuses_a_foreign_translate_with_an_import_error(tmp_path):
    site = foreign_site(tmp_path, "translate", "3.8")
    result = run(site, "-c", "import augment", cwd=tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ")
    assert_names_the_clash(last, "translate", site, "3.8")


def test_a_foreign_augment_is_named_by_the_cli_and_by_apps(tmp_path):
    site = foreign_site(tmp_path, "augment", "0.4")
    cli = run(site, "-m", "translate.cli", "augment", "translate-dataset", "--help", cwd=tmp_path)
    assert cli.returncode == 2 and cli.stdout == ""
    assert_names_the_clash(cli.stderr, "augment", site, "0.4")

    apps = run(site, "-c", "import apps", cwd=tmp_path)
    assert apps.returncode == 1
    assert_names_the_clash(apps.stderr.strip().splitlines()[-1], "augment", site, "0.4")

    theirs = run(site, "-c", "import augment; print(augment.VERSION)", cwd=tmp_path)
    assert theirs.returncode == 0 and theirs.stdout.strip() == "0.4", theirs.stderr


def test_a_foreign_folder_no_distribution_claims_is_named_with_its_own_fix(tmp_path):
    site = tmp_path / "site"
    (site / "apps").mkdir(parents=True)
    (site / "apps" / "__init__.py").write_text("")
    result = run(site, "-m", "i2i_cli", "--help", cwd=tmp_path)
    assert result.returncode == 2
    assert str(site / "apps" / "__init__.py") in result.stderr
    assert "no installed distribution claims" in result.stderr and "off sys.path" in result.stderr


def test_this_checkout_has_all_three_packages_of_its_own():
    import apps
    import augment
    import i2i_cli
    import translate

    assert i2i_cli.first_foreign_package() is None
    assert translate.__i2i__ and augment.__i2i__ and apps.__i2i__


def test_our_translate_installed_over_a_foreign_one_warns_its_users(tmp_path):
    """pip wrote both distributions into one folder and ours came last: the other project's
    ``from translate import Translator`` fails, and the warning above its error says why."""
    site = tmp_path / "site"
    (site / "translate").mkdir(parents=True)
    for file in ("__init__.py", "errors.py"):  # all that `import translate` runs
        shutil.copy(ROOT / "translate" / file, site / "translate" / file)
    shutil.copy(ROOT / "i2i_cli.py", site / "i2i_cli.py")
    info = site / "translate-3.8.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: translate\nVersion: 3.8\n")
    (info / "RECORD").write_text("translate/__init__.py,sha256=x,10\ntranslate/translate.py,sha256=y,20\n")

    result = run(site, "-c", "from translate import Translator", cwd=tmp_path)
    assert result.returncode == 1
    assert "ImportError: cannot import name 'Translator'" in result.stderr
    warning = next(line for line in result.stderr.splitlines() if "UserWarning" in line)
    assert f"i2i's package 'translate' ({site / 'translate'}) was installed over" in warning
    assert "distribution 'translate' 3.8" in warning and "virtual environment" in warning
    assert "pip install --force-reinstall translate" in warning

    (info / "RECORD").write_text("translate_extras/__init__.py,sha256=x,10\n")  # another package of that project
    quiet = run(site, "-W", "error", "-c", "import translate", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


@pytest.mark.slow
def test_the_wheel_ships_the_entry_module_and_points_the_i2i_script_at_it(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "i2i_cli.py"):
        shutil.copy(ROOT / name, tree / name)
    for package in ("translate", "augment", "apps"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."]
    built = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    with zipfile.ZipFile(next(tmp_path.glob("i2i_translate-*.whl"))) as wheel:
        names = wheel.namelist()
        scripts = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "i2i_cli.py" in names and "translate/plugins.py" in names
    assert "i2i = i2i_cli:main" in scripts.splitlines()
