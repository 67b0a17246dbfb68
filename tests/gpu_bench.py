"""GPU benchmark of `puzzlegen train`, run by hand on an H100 or H200 (pytest does not collect it).

It builds jigsaw3x3 + rotation shards from the synthetic corpus and a Qwen2.5-VL with the 3B architecture and
random weights (nothing is downloaded), then times GRPO steps for full fine-tuning and for LoRA:

- rollout tokens/s (generated tokens / rollout time), training tokens/s (prompt + completion tokens through
  the update / update time), step tokens/s (all tokens of the step / step time, EasyR1's per-GPU figure)
- step time split into rollout, log-prob and update; peak GPU memory; model FLOPs utilisation
- the same model, batch, group size and lengths under TRL's GRPOTrainer, and the samples/s ratio
- with --check-7b: whether the 7B architecture with LoRA fits on this GPU

Goals: at least 1.5x TRL's samples/s, and at least 1,800 step tokens/s per GPU for 3B.

    python tests/gpu_bench.py                          # on a GPU
    python tests/gpu_bench.py --check-7b --json out.json
    python tests/gpu_bench.py --trl-wheel trl-*.whl    # install TRL (no dependencies) into a scratch folder
    python tests/gpu_bench.py --tiny                   # the whole script on the CPU with a tiny model

A random model rarely emits a stop token, so every completion runs to --max-new-tokens: the lengths are the
same for both trainers. Rewards are all 0, so equal-reward groups are kept (not skipped) to time the update.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# dense bf16 tensor-core peaks, FLOP/s
PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}
GOAL_RATIO, GOAL_TOKENS = 1.5, 1800.0
# mode suffixes: what the variant changes, and the phases whose speed it is compared on
VARIANTS = {
    "": ("", ()),
    "-unshared": ("each completion encodes its own copy of the images", ("logprob", "update", "step")),
    "-static": ("rollouts with a static, compiled KV cache", ("rollout", "step")),
}


def _speed(variant: dict, base: dict, phase: str) -> float:
    """How fast the variant ran `phase`, relative to the base mode (above 1: faster)."""
    return base[f"time_{phase}_s"] / max(variant[f"time_{phase}_s"], 1e-9)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny model on the CPU: checks that the script runs")
    p.add_argument("--size", default="3b", choices=["3b", "7b"])
    p.add_argument("--steps", type=int, default=3, help="timed steps per mode (after one warm-up step)")
    p.add_argument("--batch-size", type=int, default=8, help="puzzles per step")
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--micro-batch-size", type=int, default=8)
    p.add_argument(
        "--modes",
        default="full,lora,full-unshared,full-static",
        help="full or lora; with -unshared each completion encodes its own copy of the images, with -static "
        "rollouts use a fixed-size KV cache (compiled by transformers on CUDA)",
    )
    p.add_argument("--check-7b", action="store_true", help="also run LoRA on the 7B architecture")
    p.add_argument("--trl", action=argparse.BooleanOptionalAction, default=True, help="compare with TRL")
    p.add_argument("--trl-wheel", type=Path, help="a TRL wheel to install (no deps) if trl is missing")
    p.add_argument("--peak-tflops", type=float, help="override the GPU's dense bf16 peak")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "puzzlegen-bench")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    unknown = set(args.modes.split(",")) - {f"{m}{s}" for m in ("full", "lora") for s in VARIANTS}
    if unknown:
        p.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if args.tiny:
        args.size, args.steps, args.batch_size, args.group_size = "tiny", 1, 2, 2
        args.max_new_tokens, args.micro_batch_size = 8, 4
    return args


def device_info(args) -> tuple[str, str, float | None]:
    import torch

    if args.tiny or not torch.cuda.is_available():
        if not args.tiny:
            sys.exit("no CUDA device: run on a GPU, or pass --tiny to check the script on the CPU")
        return "cpu", "cpu", None
    name = torch.cuda.get_device_name()
    peak = (
        args.peak_tflops * 1e12
        if args.peak_tflops
        else next((v for k, v in PEAKS.items() if k in name), None)
    )
    return "cuda", name, peak


def shards(args) -> Path:
    from puzzlegen.build import BuildOptions, build, from_tasks
    from puzzlegen.build.recipe import OutputFormat
    from puzzlegen.sources import open_source

    out = args.work / f"shards-{'tiny' if args.tiny else 'full'}"
    if not (out / "manifest.json").is_file():
        images = 8 if args.tiny else 256
        recipe = from_tasks("jigsaw3x3,rotation", OutputFormat(style="answer_tag", think="required"))
        build(
            open_source(f"synthetic:{images}"),
            recipe,
            BuildOptions(out=out, shard_size=64, workers=os.cpu_count() or 1, overwrite=True),
        )
    return out


def model(args, size: str, device: str) -> Path:
    from puzzlegen.train.tiny import save_random

    path = args.work / f"model-{size}"
    if not (path / "config.json").is_file():
        save_random(path, size, dtype="float32" if size == "tiny" else "bfloat16", device=device)
    return path


def language_params(path: Path) -> int:
    """Non-embedding parameters of the language model (lm_head included): the N of 6*N FLOPs per token."""
    config = json.loads((path / "config.json").read_text())
    text = config.get("text_config", config)
    h, inter, layers = text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]
    heads, kv = text["num_attention_heads"], text["num_key_value_heads"]
    head_dim = h // heads
    attention = (
        h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h + (heads + 2 * kv) * head_dim
    )
    per_layer = attention + 3 * h * inter + 2 * h
    return layers * per_layer + h * text["vocab_size"]


def config_for(
    args,
    data: Path,
    model_path: Path,
    out: Path,
    lora: bool,
    device: str,
    share: bool = True,
    cache="dynamic",
):
    from puzzlegen.train.config import TrainConfig

    return TrainConfig(
        data=str(data),
        model=str(model_path),
        out=out,
        steps=args.steps + 1,
        batch_size=args.batch_size,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        micro_batch_size=args.micro_batch_size,
        lora=lora,
        share_images=share,
        rollout_cache=cache,
        device=device,
        precision="fp32" if args.tiny else "bf16",
        skip_zero_variance=False,
        save_every=0,
        tensorboard=False,
        progress=False,
        lr=1e-6,
        max_prompt_tokens=8192,
        min_pixels=28 * 28 if args.tiny else 56 * 56,
        max_pixels=56 * 56 if args.tiny else 512 * 28 * 28,
    )


def run_ours(args, data: Path, model_path: Path, mode: str, device: str, peak: float | None) -> dict:
    from puzzlegen.train.trainer import Trainer

    lora = mode.startswith("lora")
    out = args.work / f"run-{model_path.name}-{mode}"
    share, cache = not mode.endswith("-unshared"), "static" if mode.endswith("-static") else "dynamic"
    cfg = config_for(args, data, model_path, out, lora, device, share, cache)
    trainer = Trainer(cfg)
    trainer.train_step()  # warm-up: allocator, kernels, first-call overheads (each step resets the peak)
    steps = [trainer.train_step() for _ in range(args.steps)]
    mean = {k: sum(s[k] for s in steps) / len(steps) for k in steps[0] if isinstance(steps[0][k], float)}
    n = language_params(model_path)
    completions = args.batch_size * args.group_size
    step_tokens = mean["tokens_per_s/step"] * mean["time/step"]
    train_tokens = mean["tokens_per_s/train"] * mean["time/update"]
    # model FLOPs: 2N per token through rollout (prefill + decode) and each frozen pass, 6N (LoRA: 4N, no
    # weight gradients for frozen weights) through the update; the vision tower is left out (a lower bound)
    flops = 2 * n * step_tokens + (4 if lora else 6) * n * train_tokens
    result = {
        "mode": mode,
        "model": model_path.name,
        "language_params": n,
        "samples_per_s": completions / mean["time/step"],
        "rollout_tokens_per_s": mean["tokens_per_s/rollout"],
        "training_tokens_per_s": mean["tokens_per_s/train"],
        "step_tokens_per_s": mean["tokens_per_s/step"],
        "completion_tokens": mean["length/mean"],
        "time_rollout_s": mean["time/rollout"],
        "time_logprob_s": mean["time/logprob"],
        "time_update_s": mean["time/update"],
        "time_step_s": mean["time/step"],
        "peak_memory_gb": max(s["memory/peak_gb"] for s in steps),
        "mfu": flops / mean["time/step"] / peak if peak else None,
        "mfu_update": (4 if lora else 6) * n * train_tokens / mean["time/update"] / peak if peak else None,
    }
    return result


def guarded(run, mode: str, *args) -> dict:
    """One mode's run; running out of GPU memory is a result (the other modes still run), and memory is
    released before the next run so that none inherits another's allocations."""
    import gc

    import torch

    try:
        return run(*args)
    except torch.cuda.OutOfMemoryError as error:
        return {"mode": mode, "error": f"out of GPU memory: {str(error).splitlines()[0]}"}
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def check_7b(args, data: Path, device: str, peak: float | None) -> dict:
    result = guarded(run_ours, "lora", args, data, model(args, "7b", device), "lora", device, peak)
    return {"fits": "error" not in result, **result}


# ---------------------------------------------------------------------------------------------- TRL

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def import_trl(wheel: Path | None):
    try:
        import trl

        return trl
    except ImportError:
        if wheel is None:
            return None
    target = Path(tempfile.mkdtemp(prefix="trl-"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(target))
    import trl

    return trl


def trl_dataset(data: Path, limit: int):
    """Our puzzles in TRL's conversational VLM layout: prompt messages, images, and the verifier column."""
    from datasets import Dataset

    from puzzlegen.train.data import iter_puzzles, open_shards

    rows = []
    for puzzle in iter_puzzles(open_shards(str(data), "train"), limit):
        parts = []
        pieces = puzzle.prompt.split("<image>")
        for k, piece in enumerate(pieces):
            if piece:
                parts.append({"type": "text", "text": piece})
            if k < len(pieces) - 1:
                parts.append({"type": "image"})
        rows.append(
            {
                "prompt": [{"role": "user", "content": parts}],
                "images": puzzle.pil_images(),
                "verifier": puzzle.verifier,
            }
        )
    return Dataset.from_list(rows)


def run_trl(args, data: Path, model_path: Path, lora: bool, device: str) -> dict:
    trl = import_trl(args.trl_wheel)
    if trl is None:
        return {"error": "trl not installed (pass --trl-wheel PATH to install one)"}
    try:
        import torch
        from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, TrainerCallback

        from puzzlegen.train.model import load_image_processor, load_tokenizer
        from puzzlegen.verify import trl_reward

        processor_class, video = Qwen2_5_VLProcessor, None
        try:
            from transformers import Qwen2VLVideoProcessor

            video = Qwen2VLVideoProcessor()
        except ImportError:  # no torchvision (the CPU check): TRL passes no videos, so none is needed

            class processor_class(Qwen2_5_VLProcessor):
                def check_argument_for_proper_class(self, name, arg):
                    if name != "video_processor":
                        return super().check_argument_for_proper_class(name, arg)

        tokenizer = load_tokenizer(str(model_path))
        tokenizer.chat_template = QWEN_CHAT_TEMPLATE
        cfg = config_for(args, data, model_path, Path("unused"), lora, device)
        images = load_image_processor(str(model_path), cfg.min_pixels, cfg.max_pixels)
        processor = processor_class(
            image_processor=images,
            tokenizer=tokenizer,
            video_processor=video,
            chat_template=QWEN_CHAT_TEMPLATE,
        )
        policy = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            str(model_path), dtype=torch.float32 if args.tiny else torch.bfloat16, attn_implementation="sdpa"
        ).to(device)
        wanted = dict(
            output_dir=str(args.work / "trl"),
            per_device_train_batch_size=args.batch_size * args.group_size,
            num_generations=args.group_size,
            max_completion_length=args.max_new_tokens,
            max_prompt_length=None,
            temperature=1.0,
            top_p=1.0,
            learning_rate=1e-6,
            beta=0.0,
            bf16=not args.tiny,
            gradient_checkpointing=True,
            max_steps=args.steps + 1,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            use_vllm=False,
            remove_unused_columns=False,
            epsilon=0.2,
            epsilon_high=0.28,
            loss_type="bnpo",
            scale_rewards="group",
            use_cpu=device == "cpu",
        )
        known = {f.name for f in dataclasses.fields(trl.GRPOConfig)}
        config = trl.GRPOConfig(**{k: v for k, v in wanted.items() if k in known})
        times: list[float] = []
        lengths: list[float] = []

        class Clock(TrainerCallback):
            def on_step_begin(self, *a, **k):
                self.start = time.perf_counter()

            def on_step_end(self, *a, **k):
                times.append(time.perf_counter() - self.start)

            def on_log(self, args, state, control, logs=None, **k):
                if logs and "completions/mean_length" in logs:
                    lengths.append(logs["completions/mean_length"])

        peft_config = None
        if lora:
            from peft import LoraConfig

            from puzzlegen.train.model import LORA_TEXT

            peft_config = LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=LORA_TEXT, task_type="CAUSAL_LM"
            )
        trainer = trl.GRPOTrainer(
            model=policy,
            reward_funcs=[trl_reward],
            args=config,
            train_dataset=trl_dataset(data, args.batch_size * (args.steps + 1) * 2),
            processing_class=processor,
            peft_config=peft_config,
            callbacks=[Clock()],
        )
        trainer.train()
        timed = times[1:] or times
        step = sum(timed) / len(timed)
        return {
            "trl": trl.__version__,
            "time_step_s": step,
            "samples_per_s": args.batch_size * args.group_size / step,
            "completion_tokens": sum(lengths) / len(lengths) if lengths else None,
        }
    except Exception as error:  # an API drift in TRL must not lose our own numbers
        return {"error": f"TRL run failed: {type(error).__name__}: {(str(error).splitlines() or [''])[0]}"}


# ---------------------------------------------------------------------------------------------- report


def report(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"puzzlegen train on {results['device']} ({results['model']})")
    rows = [
        ("samples/s", "samples_per_s", "{:.2f}"),
        ("rollout tokens/s", "rollout_tokens_per_s", "{:.0f}"),
        ("training tokens/s", "training_tokens_per_s", "{:.0f}"),
        ("step tokens/s", "step_tokens_per_s", "{:.0f}"),
        ("rollout s", "time_rollout_s", "{:.2f}"),
        ("log-prob s", "time_logprob_s", "{:.2f}"),
        ("update s", "time_update_s", "{:.2f}"),
        ("step s", "time_step_s", "{:.2f}"),
        ("peak memory GB", "peak_memory_gb", "{:.1f}"),
        ("MFU (step)", "mfu", "{:.1%}"),
        ("MFU (update)", "mfu_update", "{:.1%}"),
    ]
    table.add_column("metric")
    for mode in results["ours"]:
        table.add_column(mode["mode"], justify="right")
    for label, key, fmt in rows:
        table.add_row(
            label, *[fmt.format(m[key]) if m.get(key) is not None else "n/a" for m in results["ours"]]
        )
    console.print(table)
    for mode in results["ours"]:
        if "error" in mode:
            console.print(f"ours ({mode['mode']}): {mode['error']}")
    by_mode = {m["mode"]: m for m in results["ours"] if "error" not in m}
    for base in ("full", "lora"):
        for suffix, (what, phases) in VARIANTS.items():
            variant = by_mode.get(f"{base}{suffix}")
            if suffix and base in by_mode and variant:
                speeds = ", ".join(
                    f"{phase} {_speed(variant, by_mode[base], phase):.2f}x" for phase in phases
                )
                console.print(f"{base}{suffix} ({what}) against {base}: {speeds}")
    for mode, trl in results["trl"].items():
        if "error" in trl:
            console.print(f"TRL ({mode}): {trl['error']}")
        elif mode not in results["ratio"]:
            console.print(f"TRL {trl['trl']} ({mode}): {trl['samples_per_s']:.2f} samples/s")
        else:
            ratio = results["ratio"][mode]
            verdict = "meets" if ratio >= GOAL_RATIO else "misses"
            ours = next(m for m in results["ours"] if m["mode"] == mode)
            lengths = f"{ours['completion_tokens']:.0f} vs {trl['completion_tokens'] or 0:.0f}"
            console.print(
                f"TRL {trl['trl']} ({mode}): {trl['samples_per_s']:.2f} samples/s; ours / TRL = "
                f"{ratio:.2f}x ({verdict} the {GOAL_RATIO}x goal); tokens per completion {lengths}"
            )
    if results.get("check_7b"):
        c = results["check_7b"]
        console.print(
            f"7B with LoRA: {'fits' if c['fits'] else 'does not fit'}"
            + (f", peak {c['peak_memory_gb']:.1f} GB" if c["fits"] else f" ({c['error']})")
        )
    if results["device"] == "cpu":
        console.print("tiny model on the CPU: the script runs end to end; the goals apply to a GPU run only")
    else:
        for mode in (m for m in results["ours"] if "error" not in m):
            ok = mode["step_tokens_per_s"] >= GOAL_TOKENS
            console.print(
                f"{mode['mode']}: {mode['step_tokens_per_s']:.0f} step tokens/s per GPU "
                f"({'meets' if ok else 'misses'} the {GOAL_TOKENS:.0f} goal)"
            )


def main() -> dict:
    args = parse()
    args.work.mkdir(parents=True, exist_ok=True)
    device, name, peak = device_info(args)
    data = shards(args)
    model_path = model(args, args.size, device)
    results = {
        "device": name,
        "model": args.size,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "ours": [],
        "trl": {},
        "ratio": {},
    }
    for mode in args.modes.split(","):
        results["ours"].append(guarded(run_ours, mode, args, data, model_path, mode, device, peak))
        if args.trl and mode in ("full", "lora"):  # the variants are compared with our own base mode
            trl = guarded(run_trl, mode, args, data, model_path, mode == "lora", device)
            results["trl"][mode] = trl
            if "samples_per_s" in trl and "samples_per_s" in results["ours"][-1]:
                results["ratio"][mode] = results["ours"][-1]["samples_per_s"] / trl["samples_per_s"]
    if args.check_7b and not args.tiny:
        results["check_7b"] = check_7b(args, data, device, peak)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
