"""Shared fixtures. Tests run on CPU with tiny images and widths; nothing is downloaded."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# Test models are tiny: one thread each is fastest, and it keeps parallel processes (torchrun
# workers, subprocess CLIs) from spinning against each other on a small machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import smooth_images, write_folder  # noqa: E402


@pytest.fixture
def tiny_unpaired(tmp_path: Path) -> tuple[Path, Path]:
    """Two folders of 8 small images each: dark bluish A and bright reddish B."""
    base = smooth_images(16, 24, seed=0).astype(np.float32)
    a = base[:8] * 0.4 + np.array([10, 20, 60])
    b = base[8:] * 0.4 + np.array([150, 90, 40])
    return (
        write_folder(tmp_path / "A", a.clip(0, 255).astype(np.uint8)),
        write_folder(tmp_path / "B", b.clip(0, 255).astype(np.uint8)),
    )


@pytest.fixture(autouse=True)
def _sigchld_as_before():
    """Each test leaves SIGCHLD as it found it. A DataLoader with workers installs a Python SIGCHLD
    handler for the rest of the process. With it left in place, the quick loop on a 2-core
    AVX-512 CPU died with SIGSEGV a few tests after the `auto` backend tests (raised by the kernel,
    si_code SI_KERNEL, while the main thread was in a read system call; reproducible with
    test_augment_transform, test_backends_wired and test_began together, gone with the handler
    reset). The handler only speeds up the report of a dead worker, so resetting it between tests
    changes no result."""
    import signal

    before = signal.getsignal(signal.SIGCHLD)
    yield
    if signal.getsignal(signal.SIGCHLD) is not before and before is not None:
        signal.signal(signal.SIGCHLD, before)
