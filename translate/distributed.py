"""Multi-process training under ``torchrun`` (DDP semantics), and single-process fallback.

Gradients are averaged explicitly, once per optimiser step, with one flattened all-reduce. GAN
steps call the same network several times per backward and feed D's output into G's loss;
``DistributedDataParallel`` wrappers need special care for each of those patterns (frozen
parameters, repeated forwards, double backward for gradient penalties), while an explicit
average is correct for all of them and costs one collective per optimiser step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_kind: str) -> DistEnv:
    """Join the process group ``torchrun`` describes in the environment; no-op when run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistEnv(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def shutdown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def broadcast_module(module: nn.Module, env: DistEnv) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if not env.enabled:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[nn.Parameter], env: DistEnv) -> None:
    """All-reduce (mean over ranks) the gradients of ``params`` in one flattened collective.

    Every rank packs the same layout, whatever its gradients: one slot per parameter in the given
    (fixed) order, zeros where a rank has no gradient, plus one presence flag per parameter. A
    rank whose unused parameters differ from another's therefore still lines up with it. After
    the reduce, a parameter that had a gradient on any rank gets the sum over ranks divided by the
    number of ranks (a missing gradient counts as zero, as in DDP); one that had none anywhere
    keeps ``grad=None``, so optimisers skip it exactly as they would in a single process.
    """
    if not env.enabled or not params:
        return
    ref = next((p.grad for p in params if p.grad is not None), params[0])
    sizes = [p.numel() for p in params]
    flat = torch.zeros(sum(sizes) + len(params), dtype=torch.float32, device=ref.device)
    grads, flags = flat[: sum(sizes)].split(sizes), flat[sum(sizes) :]
    for i, p in enumerate(params):
        if p.grad is not None:
            grads[i].copy_(p.grad.reshape(-1))
            flags[i] = 1.0
    dist.all_reduce(flat)
    present = flags.tolist()
    for i, p in enumerate(params):
        if present[i] == 0:
            continue
        averaged = grads[i].div_(env.world).view_as(p)
        if p.grad is None:
            p.grad = averaged.to(p.dtype).clone()
        else:
            p.grad.copy_(averaged)


def gather_to_main(obj, env: DistEnv) -> list | None:
    """Every rank's ``obj`` (picklable), in rank order, on rank 0 only; None on the others.

    Used for checkpoint state such as image pools, which only the saving rank needs: gathering
    them to every rank would cost each one the memory and traffic of all ranks' pools.
    """
    if not env.enabled:
        return [obj]
    out = [None] * env.world if env.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def any_rank(flag: bool, env: DistEnv, device: torch.device) -> bool:
    """True on every rank if it is true on any (e.g. one rank was signalled to stop); one small
    all-reduce, cheap enough to run every step."""
    if not env.enabled:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_reduce_mean(values: dict[str, float], env: DistEnv, device: torch.device) -> dict[str, float]:
    """Average logged scalars over ranks so the log describes the whole batch."""
    if not env.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / env.world for k, v in zip(keys, t.tolist(), strict=False)}
