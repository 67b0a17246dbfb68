"""One process per GPU under torchrun (DDP or FSDP2), or a single process; the device, and collectives.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a single process and every collective
below is the identity.
"""

from __future__ import annotations

import os
import resource
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .config import TrainError


@dataclass
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_sum(self, values: list[float]) -> list[float]:
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return t.tolist()

    def all_max(self, value: int) -> int:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.long, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def gather(self, obj) -> list:
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    raise TrainError(
        "CUDA is not available here. Train on a machine with an NVIDIA GPU, or pass --device cpu "
        "(practical only for tiny models, as in the tests)"
    )


def setup(requested: str) -> Dist:
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = pick_device(requested, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank, device)


def shutdown() -> None:
    if dist.is_initialized():
        dist.barrier()  # a rank that tears down while another still talks aborts the other (gloo)
        dist.destroy_process_group()


def wrap(policy, d: Dist, parallel: str, precision: str):
    """The module that computes the loss: the policy itself, DDP around it, or the policy sharded by FSDP2
    (each decoder layer, vision block and the vision tower a unit; bf16 compute over fp32 shards, fp32
    gradient reduction)."""
    if not d.active:
        return policy
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(policy, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(
        param_dtype=torch.bfloat16 if precision == "bf16" else torch.float32, reduce_dtype=torch.float32
    )
    # innermost first. The vision tower is a unit of its own because `generate` calls it directly
    # (get_image_features), outside the root module's forward and so outside the root's unshard hook.
    for kinds in (
        ("Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock"),
        ("Qwen2_5_VisionTransformerPretrainedModel",),
    ):
        for module in policy.modules():
            if type(module).__name__ in kinds:
                fully_shard(module, mp_policy=mp)
    fully_shard(policy, mp_policy=mp)
    # one forward through the root, so FSDP knows it as the root before `generate` reaches a unit first
    with torch.no_grad():
        policy(input_ids=torch.zeros((1, 1), dtype=torch.long, device=d.device), use_cache=False)
    reshard(policy)
    return policy


def reshard(policy) -> None:
    """FSDP2 leaves the root unit's parameters gathered after a forward pass without backward; the
    optimiser and the state dict must see the sharded parameters."""
    from torch.distributed.fsdp import FSDPModule

    for module in policy.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def unwrap(model):
    return model.module if hasattr(model, "no_sync") and hasattr(model, "module") else model


def no_sync(model, last: bool):
    """Skip DDP's gradient all-reduce on all but the last micro-batch of an accumulation."""
    if not last and hasattr(model, "no_sync"):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(last)
    return nullcontext()


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: CUDA runs asynchronously, so a phase is timed only after it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux: the process's peak RSS
