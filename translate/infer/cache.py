"""The frontier: every tile's network state between tiled passes, kept in memory or spilled to disk.

Exact statistics are gathered by one truncated pass per norm layer, and each pass resumes every
tile from the state the previous pass reached (see ``stats.gather_image_stats``). Those states
together are as large as a feature map of the whole image, so they grow with the image: up to
2.7 GB at 4096² for ResNet-9 (ngf 64) with tiles of 512. Where they fit the memory budget they
stay in RAM; beyond it they go to an unlinked temporary file (``DiskSlots``), which keeps the
passes resumable at any image size while the process's memory stays bounded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..errors import ConfigError

#: largest state a Frontier caches per tile, in values per tile pixel (ResNet's residual stage
#: with its skip: 2 × 4·ngf channels / 4²); larger ones (full-resolution feature maps) are
#: recomputed from the previous cached state instead, which is cheap there
FRONTIER_VALUES_PER_PIXEL = 32
#: default RAM budget of that cache; a larger frontier is spilled to disk ("auto" mode)
DEFAULT_CACHE_MB = 2048.0
#: "auto": RAM within the budget, else disk if it has room, else none; the others force a store
CACHE_MODES = ("auto", "ram", "disk", "off")
#: free disk space the spill file may take, as a share of what is free: leave room for the outputs
DISK_SHARE = 0.5


def map_state(state: Any, fn: Callable[[Any], Any], leaf: type = torch.Tensor) -> Any:
    """``fn`` applied to every ``leaf`` of a network state (a leaf, or tuples/lists of them)."""
    if isinstance(state, leaf):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(s, fn, leaf) for s in state)
    raise TypeError(f"unsupported network state {type(state).__name__}")


def state_numel(state: Any) -> int:
    """The number of values in a network state."""
    sizes: list[int] = []
    map_state(state, lambda t: sizes.append(t.numel()))
    return sum(sizes)


class TileSlots(Protocol):
    """Where a frontier keeps its states: one per tile index."""

    def put(self, index: int, state: Any) -> None: ...

    def get(self, index: int, device: torch.device) -> Any:
        """Tile ``index``'s state on ``device``: a fresh copy the caller may modify in place."""

    def close(self) -> None: ...


class MemorySlots:
    """States held in CPU memory."""

    def __init__(self) -> None:
        self._states: dict[int, Any] = {}

    def put(self, index: int, state: Any) -> None:
        self._states[index] = map_state(state, lambda t: t.to("cpu", copy=True))

    def get(self, index: int, device: torch.device) -> Any:
        return map_state(self._states[index], lambda t: t.to(device, copy=True))

    def close(self) -> None:
        self._states.clear()


@dataclass(frozen=True)
class _Stored:
    """Where one tensor of a spilled state lies in the file, and what it was."""

    offset: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    channels_last: bool = False


class DiskSlots:
    """States in fixed-size slots of an anonymous temporary file (one slot per tile).

    The file is unlinked as soon as it is created, so nothing is left behind, even by a killed
    process. It is read and written with plain file I/O rather than memory-mapped: the data then
    lives in the kernel's page cache, which the kernel may write out and drop under memory
    pressure, and never counts towards the process's resident memory.
    """

    def __init__(self, slot_bytes: int, directory: str | None = None) -> None:
        self.slot_bytes = slot_bytes
        self._file = tempfile.TemporaryFile(prefix="i2i-frontier-", dir=directory, buffering=0)
        self._layouts: dict[int, Any] = {}

    def put(self, index: int, state: Any) -> None:
        end = index * self.slot_bytes
        limit = end + self.slot_bytes

        def write(t: torch.Tensor) -> _Stored:
            nonlocal end
            t = t.detach().to("cpu")
            # a channels-last state (bf16 convolutions on the CPU) is stored in its own order and
            # comes back channels-last: converting it to NCHW would slow every later convolution
            channels_last = is_channels_last(t)
            data = _bytes_of(t.permute(0, 2, 3, 1) if channels_last else t.contiguous())
            if end + len(data) > limit:
                raise RuntimeError(f"a tile state of more than {self.slot_bytes} bytes does not fit its slot")
            stored = _Stored(end, tuple(t.shape), t.dtype, channels_last)
            self._file.seek(end)
            view = memoryview(data)
            while view:  # a raw write may take only part of a large buffer
                view = view[self._file.write(view) :]
            end += len(data)
            return stored

        self._layouts[index] = map_state(state, write)

    def get(self, index: int, device: torch.device) -> Any:
        def read(stored: _Stored) -> torch.Tensor:
            layout = torch.channels_last if stored.channels_last else torch.contiguous_format
            t = torch.empty(stored.shape, dtype=stored.dtype, memory_format=layout)
            view = memoryview(_bytes_of(t.permute(0, 2, 3, 1) if stored.channels_last else t))
            self._file.seek(stored.offset)
            while view:
                got = self._file.readinto(view)
                if not got:
                    raise RuntimeError("the frontier file ended early")
                view = view[got:]
            return t.to(device)

        return map_state(self._layouts[index], read, leaf=_Stored)

    def close(self) -> None:
        self._layouts.clear()
        self._file.close()


def is_channels_last(t: torch.Tensor) -> bool:
    """Whether a 4-D tensor is laid out channels-last (and not also plain contiguous)."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _bytes_of(t: torch.Tensor):
    """A contiguous CPU tensor's memory as a writable uint8 array (any dtype, bf16 included)."""
    return t.view(-1).view(torch.uint8).numpy()


@dataclass
class Frontier:
    """Every tile's network state before step ``step``, in ``TiledRun.tiles`` order.

    At step 0 nothing is cached: the state is the tile cut from the image. Its size is that of
    the feature maps there, for all tiles together: proportional to the image, like the output.
    """

    step: int = 0
    #: largest state cached per tile, in values per tile pixel; 0 turns caching off
    values_per_pixel: int = FRONTIER_VALUES_PER_PIXEL
    slots: TileSlots = field(default_factory=MemorySlots)

    def cached(self, index: int, device: torch.device) -> Any:
        return self.slots.get(index, device)

    def cache(self, index: int, state: Any) -> None:
        self.slots.put(index, state)

    def close(self) -> None:
        self.slots.close()


def frontier_worst_bytes(tile_pixels: int) -> int:
    """The largest frontier, in bytes, for tiles of ``tile_pixels`` pixels in all (float32 states)."""
    return FRONTIER_VALUES_PER_PIXEL * tile_pixels * 4


def choose_cache(mode: str, worst_bytes: int, cache_mb: float, directory: str | None = None) -> str:
    """The store a frontier of at most ``worst_bytes`` gets: "ram", "disk" or "off".

    "auto" keeps it in RAM within ``cache_mb``; beyond, spills it to ``directory`` (the system's
    temporary folder by default) if that has room, else runs uncached (the same output, about a
    dozen tiled passes instead of one). Any other mode is taken as asked.
    """
    if mode not in CACHE_MODES:
        raise ConfigError(f"unknown cache '{mode}'; known: {', '.join(CACHE_MODES)}")
    if cache_mb < 0:
        raise ConfigError(f"cache_mb must be >= 0, got {cache_mb}")
    if directory is not None and not os.path.isdir(directory):
        raise ConfigError(f"cache folder not found: {directory}")
    if mode != "auto":
        return mode
    if worst_bytes <= cache_mb * 2**20:
        return "ram"
    if worst_bytes <= DISK_SHARE * shutil.disk_usage(directory or tempfile.gettempdir()).free:
        return "disk"
    return "off"


#: how each store is opened, given the slot size per tile and the spill folder
FRONTIER_STORES: dict[str, Callable[[int, str | None], TileSlots]] = {
    "ram": lambda slot_bytes, directory: MemorySlots(),
    "disk": lambda slot_bytes, directory: DiskSlots(slot_bytes, directory),
}


def open_frontier(mode: str, tile_pixels: int, directory: str | None = None) -> Frontier:
    """A frontier stored as ``mode`` ("ram", "disk" or "off") for tiles of ``tile_pixels`` each."""
    if mode == "off":
        return Frontier(values_per_pixel=0)
    slot_bytes = frontier_worst_bytes(tile_pixels)
    return Frontier(slots=FRONTIER_STORES[mode](slot_bytes, directory))
