"""The tiny model loads like a real one; prompts, image tokens, rollouts and log-probs fit together."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from puzzlegen.train.config import TrainError  # noqa: E402
from puzzlegen.train.data import PuzzleStream, iter_puzzles, open_shards  # noqa: E402
from puzzlegen.train.encode import Encoder, collate_prompts  # noqa: E402
from puzzlegen.train.logprobs import token_logprobs  # noqa: E402
from puzzlegen.train.model import (  # noqa: E402
    load_image_processor,
    load_policy,
    load_tokenizer,
    quiet_transformers,
    resolve,
)
from puzzlegen.train.rollout import generate, neutralise  # noqa: E402
from tests.train_fixtures import PIXELS, mixed_shards, tiny_model, train_config  # noqa: E402,F401

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def parts(tiny_model, mixed_shards):  # noqa: F811
    quiet_transformers()
    cfg = train_config(mixed_shards, tiny_model, tiny_model.parent / "unused", gradient_checkpointing=False)
    tokenizer = load_tokenizer(str(tiny_model))
    images = load_image_processor(str(tiny_model), **PIXELS)
    policy = load_policy(cfg, CPU)
    encoder = Encoder(tokenizer, images, policy.config, 4096, cfg.system_prompt, **PIXELS)
    puzzles = list(iter_puzzles(open_shards(str(mixed_shards), "train"), 6))
    return policy, encoder, puzzles


def test_saved_tiny_model_has_a_checkpoint_layout(tiny_model):  # noqa: F811
    files = {p.name for p in tiny_model.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"} <= files
    config = json.loads((tiny_model / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    tokenizer = load_tokenizer(str(tiny_model))
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == config["image_token_id"]
    # the format tags decode as text (the verifier must see them)
    ids = tokenizer("<answer>180</answer>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<answer>180</answer>"


def test_model_names_are_checked(tmp_path):
    with pytest.raises(TrainError, match="model not found"):
        resolve(str(tmp_path / "missing"))
    with pytest.raises(TrainError, match="no config.json"):
        resolve(str(tmp_path))
    assert resolve("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen/Qwen2.5-VL-3B-Instruct"


def test_image_placeholders_expand_to_the_merged_patch_count(parts):
    policy, encoder, puzzles = parts
    for puzzle in puzzles:
        e = encoder.encode(puzzle)
        expected = int((e.grid_thw.prod(-1) // 4).sum())
        assert e.input_ids.count(encoder.image_token) == expected
        assert e.input_ids.count(encoder.vision_start) == len(puzzle.images)
    # a prompt cannot smuggle in a placeholder: the text is tokenised with special tokens split
    sneaky = type(puzzles[0])(**{**puzzles[0].__dict__, "prompt": puzzles[0].prompt + " <|image_pad|>"})
    e = encoder.encode(sneaky)
    assert e.input_ids.count(encoder.image_token) == int((e.grid_thw.prod(-1) // 4).sum())


def test_too_long_prompts_are_skipped_and_counted_never_truncated(parts):
    policy, encoder, puzzles = parts
    short = Encoder(encoder.tokenizer, encoder.image_processor, policy.config, 20, "", **PIXELS)
    assert short.encode(puzzles[0]) is None and short.skipped_too_long == 1


def test_generated_placeholders_are_neutralised():
    ids = torch.tensor([[5, 7, 9, 7], [1, 2, 3, 4]])
    out, count = neutralise(ids, [7, 3], pad_id=0)
    assert out.tolist() == [[5, 0, 9, 0], [1, 2, 0, 4]] and count == 3


def test_training_logprobs_match_the_sampler(parts):
    """The forward pass over prompt + completion gives the log-probs `generate` sampled from."""
    policy, encoder, puzzles = parts
    policy.eval()
    batch = [encoder.encode(p) for p in puzzles[:3]]
    torch.manual_seed(0)
    rollouts = generate(policy, batch, encoder, 2, 6, 1.0, 1.0, CPU)
    assert len(rollouts) == 6 and len(rollouts.texts) == 6
    torch.manual_seed(0)
    prompts = {k: v for k, v in collate_prompts(batch, encoder.pad_id, encoder.image_token).items()}
    from transformers import GenerationConfig

    config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        repetition_penalty=1.0,
        max_new_tokens=6,
        num_return_sequences=2,
        eos_token_id=encoder.stop_ids,
        pad_token_id=encoder.pad_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    with torch.no_grad():
        out = policy.generate(**prompts, generation_config=config)
        sampled = torch.stack([torch.log_softmax(x.float(), -1) for x in out.logits], 1)
        rows = list(range(6))
        inputs, images, targets, mask = rollouts.model_inputs(rows, CPU)
        logp, entropy = token_logprobs(policy, inputs, targets, 1.0, entropy=True, images=images)
    want = sampled[:, : targets.shape[1]].gather(-1, targets[..., None]).squeeze(-1)
    assert torch.allclose(logp * mask, want * mask, atol=1e-4)
    assert (entropy >= 0).all()


def test_a_groups_images_are_encoded_once_with_the_same_logprobs_and_gradients(parts):
    """Rows of one puzzle share its images: the vision tower sees each once, and log-probs and every
    gradient (the vision tower's included) equal those of encoding each row's own copy."""
    from transformers import Qwen2_5_VLModel

    policy, encoder, puzzles = parts
    policy.train()
    batch = [encoder.encode(p) for p in puzzles[:3]]
    torch.manual_seed(0)
    rollouts = generate(policy, batch, encoder, 3, 6, 1.0, 1.0, CPU)
    rows = [0, 4, 1, 8, 2, 3]  # puzzles 0, 1, 0, 2, 0, 1: repeated, not side by side
    visual = next(m for m in policy.modules() if isinstance(m, Qwen2_5_VLModel)).visual
    patches = []
    hook = visual.register_forward_hook(lambda module, args, out: patches.append(args[0].shape[0]))
    try:
        runs = {}
        for name, share in (("own copies", False), ("shared", True)):
            inputs, images, targets, mask = rollouts.model_inputs(rows, CPU, share)
            assert (images is None) != share
            policy.zero_grad()
            logp, _ = token_logprobs(policy, inputs, targets, 1.0, images=images)
            (logp * mask).sum().backward()
            grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
            runs[name] = (logp.detach(), grads)
    finally:
        hook.remove()
        policy.zero_grad()
    distinct = sum(len(e.pixel_values) for e in batch)
    assert patches == [sum(len(rollouts.puzzle(r).pixel_values) for r in rows), distinct]
    (own, own_grads), (shared, shared_grads) = runs["own copies"], runs["shared"]
    assert torch.allclose(own * mask, shared * mask, atol=1e-5)
    assert own_grads.keys() == shared_grads.keys() and any("visual" in n for n in own_grads)
    for name in own_grads:
        assert torch.allclose(own_grads[name], shared_grads[name], atol=1e-5), name


def test_a_static_rollout_cache_gives_the_same_completions(parts):
    policy, encoder, puzzles = parts
    policy.eval()
    batch = [encoder.encode(p) for p in puzzles[:3]]
    runs = {}
    for cache in ("dynamic", "static"):
        greedy = generate(policy, batch, encoder, 1, 8, 1.0, 1.0, CPU, greedy=True, cache=cache)
        torch.manual_seed(0)
        sampled = generate(policy, batch, encoder, 2, 8, 1.0, 1.0, CPU, cache=cache)
        runs[cache] = (greedy.completion_ids, sampled.completion_ids)
    assert all(torch.equal(a, b) for a, b in zip(runs["dynamic"], runs["static"], strict=True))


def test_lora_leaves_the_vision_tower_out(tiny_model, mixed_shards):  # noqa: F811
    cfg = train_config(
        mixed_shards, tiny_model, tiny_model.parent / "unused", lora=True, lora_r=4, lora_alpha=8
    )
    policy = load_policy(cfg, CPU)
    names = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and "language_model" in n for n in names)
    with_vision = load_policy(
        train_config(
            mixed_shards,
            tiny_model,
            tiny_model.parent / "x",
            lora=True,
            lora_r=4,
            lora_alpha=8,
            lora_vision=True,
        ),
        CPU,
    )
    assert any("visual" in n for n, p in with_vision.named_parameters() if p.requires_grad)


def test_stream_feeds_the_encoder(parts, mixed_shards):  # noqa: F811
    policy, encoder, _ = parts
    shards = open_shards(str(mixed_shards), "train")
    stream = PuzzleStream(shards, {"jigsaw2x2": 1.0}, seed=0)
    e = encoder.encode(stream.next())
    assert e.grid_thw.shape[0] == 4  # four tiles, four images
