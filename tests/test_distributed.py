"""Gradient averaging across processes (gloo, CPU), where ranks' gradients need not line up."""

from __future__ import annotations

import datetime
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from translate.distributed import DistEnv, average_gradients


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30))
    first, second, unused = (torch.nn.Parameter(torch.zeros(n)) for n in (3, 2, 4))
    # rank 0 used both parameters, rank 1 only the second (say, a branch its batch never took)
    if rank == 0:
        first.grad = torch.tensor([2.0, 4.0, 6.0])
    second.grad = torch.full((2,), 1.0 + rank)
    average_gradients([first, second, unused], DistEnv(rank=rank, world=2))
    torch.save({"first": first.grad, "second": second.grad, "unused": unused.grad}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_gradients_average_by_parameter_even_when_ranks_have_different_ones(tmp_path):
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        grads = torch.load(tmp_path / f"rank{rank}.pt")
        # a missing gradient counts as zero in the mean over ranks, as in DDP
        assert torch.equal(grads["first"], torch.tensor([1.0, 2.0, 3.0])), rank
        assert torch.equal(grads["second"], torch.full((2,), 1.5)), rank
        # a parameter no rank used keeps no gradient, so optimisers skip it as in one process
        assert grads["unused"] is None, rank


TINY_CYCLEGAN = [
    "model.generator={name: resnet, ngf: 4, n_blocks: 1}",
    "model.discriminator={name: patchgan, ndf: 4, n_layers: 2}",
    "model.pool_size=2",
    "optim.max_steps=10",
    "engine.device=cpu",
    "engine.progress=false",
    "engine.tensorboard=false",
]


def saving_worker(rank: int, port: int, out: str) -> None:
    """One step on a batch of this rank's own, then a checkpoint, with every all-gather forbidden."""
    from pathlib import Path

    from translate.config import load_config
    from translate.engine import RunPaths, build_runtime, train_step
    from translate.engine.state import save_training_state

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))

    def everyone_gets_everything(*args, **kwargs):
        raise AssertionError("image pools must go to the saving rank only, not to every rank")

    dist.all_gather_object = everyone_gets_everything
    rt = build_runtime(load_config(None, [*TINY_CYCLEGAN, f"out_dir={out}"]), DistEnv(rank=rank, world=2), 1)
    g = torch.Generator().manual_seed(rank)
    train_step(rt, {k: torch.rand(1, 3, 16, 16, generator=g) * 2 - 1 for k in ("A", "B")})
    save_training_state(rt, RunPaths(Path(out)))
    torch.save(rt.model.pool_A.state_dict(), f"{out}/pool_A_rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_image_pools_are_gathered_to_the_saving_rank_only(tmp_path):
    from translate import io

    mp.spawn(saving_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    per_rank = io.load_checkpoint(tmp_path / "checkpoints/ckpt_00000001.pt")["per_rank"]
    assert len(per_rank) == 2
    for rank in (0, 1):
        own = torch.load(tmp_path / f"pool_A_rank{rank}.pt")["images"]
        assert own.shape[0] == 1 and torch.equal(per_rank[rank]["extra"]["_extra_state"]["pool_A"]["images"], own)
    # each rank's pool holds its own fakes: the two entries are not one pool saved twice
    assert not torch.equal(
        per_rank[0]["extra"]["_extra_state"]["pool_A"]["images"],
        per_rank[1]["extra"]["_extra_state"]["pool_A"]["images"],
    )
