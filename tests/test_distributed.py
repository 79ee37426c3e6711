"""Gradient averaging across processes (gloo, CPU), where ranks' gradients need not line up."""

from __future__ import annotations

import datetime
import os
import socket

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
