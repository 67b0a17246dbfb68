"""Atomic, resumable checkpoints.

    OUT/checkpoints/step-0000100/
      model/            Hugging Face folder: full weights (or the LoRA adapter), tokenizer, image processor
      optimizer.pt      AdamW state, with the fp32 master weights when the model is bf16
      scheduler.pt      learning-rate schedule
      rng-00000.pt      Python, NumPy and torch generator states, one file per rank
      dcp/              model and optimiser shards (FSDP only; torch.distributed.checkpoint)
      state.json        step, each rank's data position, the config; written last

Everything is written into a hidden temporary folder that is renamed into place when complete, so a crash
never leaves a half-written checkpoint that --resume would pick up.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from .config import TrainError
from .distributed import Dist, reshard

PREFIX = "step-"


def folder(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"{PREFIX}{step:07d}"


def latest(out: Path) -> Path | None:
    found = sorted(p for p in (out / "checkpoints").glob(f"{PREFIX}*") if (p / "state.json").is_file())
    return found[-1] if found else None


def find(resume: str, out: Path) -> Path | None:
    """'auto' -> the newest checkpoint under OUT (or None: a fresh start); otherwise that folder."""
    if resume == "auto":
        return latest(out)
    path = Path(resume).expanduser()
    if (path / "state.json").is_file():
        return path
    if (path / "checkpoints").is_dir() and latest(path):
        return latest(path)
    raise TrainError(
        f"--resume {resume}: not a checkpoint folder (no state.json) nor a run folder with checkpoints"
    )


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    out: Path,
    step: int,
    policy,
    optimizer,
    scheduler,
    state: dict,
    d: Dist,
    extras: list,
    fsdp: bool,
    lora: bool,
    keep: int,
    export_dtype: torch.dtype = torch.float32,
) -> Path:
    """Write the checkpoint of `step` (every rank calls this). `extras` have `save_pretrained` (tokenizer,
    image processor) and go into model/ beside the weights."""
    final = folder(out, step)
    tmp = final.with_name(f".tmp-{final.name}")
    if d.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    d.barrier()
    if fsdp:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_state_dict,
        )

        reshard(policy)
        model_sd, optim_sd = get_state_dict(policy, optimizer.inner)
        dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(tmp / "dcp"))
        # gathered on rank 0 only; the export is in the compute dtype (resuming reads the fp32 dcp/ shards)
        full = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        full = {k: v.to(export_dtype) if v.is_floating_point() else v for k, v in full.items()}
    else:
        full = None
    if d.main:
        policy.save_pretrained(tmp / "model", state_dict=full)
        for extra in extras:
            extra.save_pretrained(tmp / "model")
        if not fsdp:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(_rng_state(), tmp / f"rng-{d.rank:05d}.pt")
    d.barrier()
    if d.main:
        (tmp / "state.json").write_text(
            json.dumps({**state, "lora": lora, "fsdp": fsdp, "world": d.world}, indent=2, sort_keys=True)
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _prune(out, keep)
    d.barrier()
    return final


def _prune(out: Path, keep: int) -> None:
    if keep > 0:
        for old in sorted((out / "checkpoints").glob(f"{PREFIX}*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def read_state(path: Path) -> dict:
    return json.loads((path / "state.json").read_text())


def load_adapter(policy, path: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = path / "model" / "adapter_model.safetensors"
    if not weights.is_file():
        raise TrainError(
            f"{path}: no LoRA adapter in this checkpoint; was it written by a full fine-tuning run?"
        )
    set_peft_model_state_dict(policy, load_file(str(weights)))


def load(path: Path, policy, optimizer, scheduler, d: Dist, fsdp: bool) -> dict:
    """Restore optimiser, schedule, RNG (and, under FSDP, the model shards); return state.json."""
    state = read_state(path)
    if state.get("fsdp", False) != fsdp:
        raise TrainError(
            f"{path} was written {'with' if state.get('fsdp') else 'without'} FSDP; resume it the same way"
        )
    if fsdp:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        reshard(policy)
        model_sd, optim_sd = get_state_dict(policy, optimizer.inner)
        target = {"model": model_sd, "optimizer": optim_sd}
        dcp.load(target, checkpoint_id=str(path / "dcp"))
        set_state_dict(
            policy, optimizer.inner, model_state_dict=target["model"], optim_state_dict=target["optimizer"]
        )
    else:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng = path / f"rng-{d.rank:05d}.pt"
    if rng.is_file():
        _set_rng_state(torch.load(rng, weights_only=False))
    return state
