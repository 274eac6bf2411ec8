"""Cold-start SFT on the tiny offline Qwen2.5-VL and a tiny export-sft file."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.train.checkpoint import MODEL_DIR, checkpoint_dir  # noqa: E402
from agents.train.config import SFTConfig, load_config  # noqa: E402
from agents.train.losses import sft_loss  # noqa: E402
from agents.train.optim import lr_factor, vision_tower  # noqa: E402
from agents.train.sft import main, train_sft  # noqa: E402
from agents.train.sft_data import export_sft  # noqa: E402
from agents.train.sft_examples import (  # noqa: E402
    STREAM_SEED,
    OracleStream,
    build_example,
    load_examples,
)
from agents.vlm.policy import VLMPolicy  # noqa: E402
from agents.vlm.testing import save_tiny_model  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    model = save_tiny_model(root / "model")
    data, stats = export_sft(["counting"], episodes=2, out=root / "data" / "sft.jsonl")
    assert stats["episodes"] == 2
    return model, data


@pytest.fixture(scope="module")
def policy(files):
    return VLMPolicy.from_pretrained(files[0])


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def state(path):
    model = VLMPolicy.from_pretrained(path).model
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("freeze_vision", [True, False])
def test_two_steps_train_the_model_and_log(files, tmp_path, freeze_vision):
    model_dir, data = files
    config = SFTConfig(
        model=str(model_dir),
        data=str(data),
        output_dir=str(tmp_path / "run"),
        steps=2,
        lr=1e-3,
        dtype="float32",
        device="cpu",
        freeze_vision=freeze_vision,
        save_every=1,
    )
    out = train_sft(config)
    assert out == tmp_path / "run" / "final"
    run = out.parent
    before, after = state(model_dir), state(out)
    visual = {f"model.visual.{n}" for n, _ in vision_tower(VLMPolicy.from_pretrained(out).model)
              .named_parameters()}  # fmt: skip
    assert visual and visual <= set(before)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    text_params = set(before) - visual
    assert len(changed & text_params) > 0.9 * len(text_params)
    if freeze_vision:
        assert not changed & visual
    else:
        assert changed & visual

    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "train/loss" in line]
    assert [line["step"] for line in steps] == [1, 2]
    for line in steps:
        assert math.isfinite(line["train/loss"]) and line["train/loss"] > 0
        assert line["train/tokens"] > 0 and line["train/lr"] > 0
    assert lines[0]["data/examples"] == 2
    assert (checkpoint_dir(run, 1) / MODEL_DIR / "model.safetensors").is_file()
    assert not list(run.glob(".*tmp*")) and not list(run.glob("*/.*tmp*"))
    assert load_config(SFTConfig, run / "config.toml", []) == config


def test_streamed_examples_equal_exported_ones(files, tmp_path, policy):
    """OracleStream's first episodes are export-sft's episodes of the same seeds, token for
    token and pixel for pixel, self-corrections in the same places."""
    data, _ = export_sft(
        ["counting"], episodes=3, seed=STREAM_SEED, out=tmp_path / "d.jsonl", max_pixels=12544
    )
    exported, _ = load_examples(policy, data)
    config = SFTConfig(
        model="m", task="counting", steps=1, max_pixels=12544, corrections=0.5, workers=0
    )
    streamed = [e for e, _ in zip(OracleStream(policy, config), range(3))]
    assert [e.source for e in streamed] == [f"counting:{STREAM_SEED + k}" for k in range(3)]
    for a, b in zip(streamed, exported):
        assert a.ids == b.ids and a.mask == b.mask
        assert torch.equal(a.pixel_values, b.pixel_values)
    assert [r["reflective"] for r in records(data)] == [False, True, False]


def test_streamed_training_in_worker_processes_with_validation(files, tmp_path):
    model_dir, _ = files
    config = SFTConfig(
        model=str(model_dir),
        task="counting",
        max_pixels=12544,
        workers=2,
        batch_size=2,
        steps=2,
        eval_every=1,
        eval_episodes=2,
        eval_max_turns=1,
        lr=1e-3,
        dtype="float32",
        device="cpu",
        output_dir=str(tmp_path / "run"),
    )
    out = train_sft(config)
    before, after = state(model_dir), state(out)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert lines[0]["data/stream"] == "counting" and lines[0]["train/total_steps"] == 2
    assert [line["train/examples"] for line in lines if "train/loss" in line] == [2, 2]
    evals = [line for line in lines if "eval/accuracy" in line]
    assert [line["step"] for line in evals] == [1, 2]  # eval_every=1
    for line in evals:
        assert line["eval/episodes"] == 2
        for key in ("accuracy", "exact", "format", "answered"):
            assert 0 <= line[f"eval/{key}"] <= 1


@pytest.mark.parametrize("stream", [False, True])
def test_resume_from_step_two_equals_the_run_that_never_stopped(files, tmp_path, stream):
    """Three steps straight, against the same run resumed from its step-2 checkpoint: the same
    weights bit for bit, and one metrics line per step."""
    model_dir, data = files
    settings = {"model": str(model_dir), "steps": 3, "batch_size": 1, "lr": 1e-3}
    settings |= {"dtype": "float32", "device": "cpu", "save_every": 2}
    if stream:
        settings |= {"task": "counting", "max_pixels": 12544, "workers": 2}
    else:
        settings |= {"data": str(data), "epochs": 2}
    straight = train_sft(SFTConfig(**settings, output_dir=str(tmp_path / "straight")))
    run = tmp_path / "stopped"
    train_sft(SFTConfig(**settings, output_dir=str(run)))
    shutil.rmtree(run / "final")  # as if the run had stopped after its step-2 checkpoint
    resumed = train_sft(SFTConfig(**settings, output_dir=str(run), resume=True))
    a, b = state(straight), state(resumed)
    assert all(torch.equal(a[name], b[name]) for name in a)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()]
    assert steps == [0, 1, 2, 3]


def test_main_runs_from_overrides(files, tmp_path, capsys):
    model_dir, data = files
    toml = tmp_path / "sft.toml"
    toml.write_text(f'model = "{model_dir}"\ndata = "{data}"\ndtype = "float32"\n')
    code = main(["--config", str(toml), f"output_dir={tmp_path / 'out'}", "steps=1", "device=cpu"])
    assert code == 0 and "saved" in capsys.readouterr().out
    assert (tmp_path / "out" / "final" / "model.safetensors").is_file()
    with pytest.raises(SystemExit):
        main(["--config", str(toml), "learning_rate=1"])
    assert "Did you mean 'lr'" in capsys.readouterr().err


def test_sft_loss_ignores_masked_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.randint(0, 11, (2, 6))
    mask = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 0, 0, 1, 0]])
    loss = sft_loss(logits, labels, mask)
    # rows t predict token t + 1: the rows that matter are those before a masked-in token
    used = torch.zeros(2, 6, dtype=torch.bool)
    used[:, :-1] = mask[:, 1:].bool()
    noisy = logits + 100 * torch.randn_like(logits) * (~used)[..., None]
    assert sft_loss(noisy, labels, mask).item() == pytest.approx(loss.item(), abs=1e-6)
    moved = logits.clone()
    moved[0, 1] += 5 * torch.randn(11)  # predicts the masked-in token at position 2
    assert sft_loss(moved, labels, mask).item() != pytest.approx(loss.item(), abs=1e-4)
    # normalised by the count: duplicating the batch leaves the loss unchanged
    double = sft_loss(
        torch.cat([logits, logits]), torch.cat([labels, labels]), torch.cat([mask] * 2)
    )
    assert double.item() == pytest.approx(loss.item(), rel=1e-6)


def test_mask_is_exactly_the_assistant_text(files, policy):
    _, data = files
    end = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for record in records(data):
        example = build_example(policy, record["messages"], data.parent)
        ids = torch.tensor(example.ids)
        mask = torch.tensor(example.mask)
        assert len(ids) == len(mask) and mask[0] == 0
        # split the mask into runs of 1: one run per assistant message, each ending in <|im_end|>
        edges = torch.diff(torch.cat([torch.tensor([0]), mask, torch.tensor([0])]))
        starts = (edges == 1).nonzero().flatten().tolist()
        stops = (edges == -1).nonzero().flatten().tolist()
        assistant = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        assert len(starts) == len(assistant) >= 2
        for start, stop, text in zip(starts, stops, assistant):
            run = example.ids[start:stop]
            assert run[-1] == end
            assert policy.tokenizer.decode(run, skip_special_tokens=True) == text
            assert policy.tokenizer.decode(run[:-1], skip_special_tokens=False) == text
        assert (ids[mask == 1] != policy.image_token_id).all()


def test_layout_is_the_chat_template_of_the_whole_episode(files, policy):
    """The ids decode to the template's rendering of all messages (placeholders expanded), so
    SFT trains on the same layout that a rollout builds turn by turn."""
    _, data = files
    record = records(data)[0]
    example = build_example(policy, record["messages"], data.parent)
    messages = [
        {**m, "content": [{"type": p["type"], "text": p.get("text", "")} for p in m["content"]]}
        if isinstance(m["content"], list)
        else m
        for m in record["messages"]
    ]
    text = policy.tokenizer.apply_chat_template(messages, tokenize=False)
    pieces = text.split(policy.image_token)
    counts = (example.image_grid_thw.prod(-1) // policy.merge_size**2).tolist()
    assert len(counts) == len(pieces) - 1 == len(record["images"])
    expanded = pieces[0] + "".join(policy.image_token * n + p for n, p in zip(counts, pieces[1:]))
    decoded = policy.tokenizer.decode(example.ids, skip_special_tokens=False)
    assert decoded == expanded.removesuffix("\n")  # a model stops at <|im_end|>
    policy.check_sync(example.ids, example.pixel_values, example.image_grid_thw)


def test_long_examples_are_skipped(files, policy):
    _, data = files
    examples, skipped = load_examples(policy, data)
    assert len(examples) == 2 and skipped == 0
    shortest = min(len(e.ids) for e in examples)
    examples, skipped = load_examples(policy, data, max_length=shortest)
    assert len(examples) == 1 and skipped == 1
    with pytest.raises(ValueError, match="max_length"):
        load_examples(policy, data, max_length=10)


def test_bad_chat_is_refused_with_its_line(tmp_path, policy):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: Expected messages system, user"):
        load_examples(policy, path)


@pytest.mark.parametrize(
    ("step", "schedule", "expected"),
    [
        (0, "constant", 0.5),  # warm-up: (0 + 1) / 2
        (1, "constant", 1.0),
        (9, "constant", 1.0),
        (2, "cosine", 1.0),  # decay starts at p = 0
        (6, "cosine", 0.5),  # p = 4 / 8
        (6, "linear", 0.5),
        (9, "linear", 1 / 8),  # p = 7 / 8: the last step keeps a non-zero rate
    ],
)
def test_lr_factor(step, schedule, expected):
    got = lr_factor(step, warmup_steps=2, total_steps=10, schedule=schedule)
    assert got == pytest.approx(expected)


def test_accumulation_normalises_by_the_tokens_of_the_whole_step(files, tmp_path):
    """One step over both examples gives the same token-mean loss whether they share a padded
    micro-batch or come as two accumulated micro-batches of different lengths."""
    model_dir, data = files
    losses = []
    for batch_size, grad_accum in [(2, 1), (1, 2)]:
        out = train_sft(
            SFTConfig(
                model=str(model_dir),
                data=str(data),
                output_dir=str(tmp_path / f"b{batch_size}"),
                batch_size=batch_size,
                grad_accum=grad_accum,
                shuffle=False,
                steps=1,
                dtype="float32",
                device="cpu",
                gradient_checkpointing=grad_accum == 2,
            )
        )
        line = json.loads((out.parent / "metrics.jsonl").read_text().splitlines()[-1])
        assert line["train/examples"] == 2
        losses.append(line["train/loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


STREAM_AFTER_OPENCV = """
import sys
import cv2
import numpy as np
from agents.train.config import SFTConfig
from agents.train.sft import stream_steps
from agents.vlm.policy import VLMPolicy

cv2.setNumThreads(2)  # the parent's OpenCV pool running before the workers fork
image = np.random.default_rng(0).integers(0, 255, (1500, 1500, 3), dtype=np.uint8)
for _ in range(5):
    cv2.GaussianBlur(image, (31, 31), 0)
policy = VLMPolicy.from_pretrained(sys.argv[1])
config = SFTConfig(model=sys.argv[1], task="counting", max_pixels=12544, workers=2,
                   batch_size=2, steps=1)
(epoch, group), = list(stream_steps(policy, config, 1, None))
print(len(group[0]), cv2.getNumThreads())
"""


def test_stream_workers_fork_while_the_parents_opencv_pool_runs(files, tmp_path):
    """Setting OpenCV's threads inside a forked worker deadlocks on the pool it inherits; the
    stream sets them around the fork instead, and gives the parent its own setting back."""
    done = subprocess.run(
        [sys.executable, "-c", STREAM_AFTER_OPENCV, str(files[0])],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2"]  # a batch of 2 examples; the parent's 2 threads
