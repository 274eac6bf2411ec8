"""`drawenv train init`: a from-scratch Qwen2.5-VL and a tokenizer trained on exported text."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.train.config import load_config
from agents.train.scratch import ScratchConfig, build_scratch_model, chat_texts, main
from agents.train.sft_data import export_sft
from agents.vlm.policy import VLMPolicy

SMALL = {
    "vocab_size": 600,
    "hidden_size": 64,
    "layers": 1,
    "heads": 2,
    "kv_heads": 1,
    "intermediate_size": 64,
    "vision_depth": 2,
    "vision_hidden_size": 32,
    "vision_heads": 2,
    "vision_intermediate_size": 64,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("scratch")
    path, _ = export_sft(["counting"], episodes=3, out=root / "sft.jsonl", max_pixels=12544)
    return path


def test_chat_texts_are_every_distinct_message_text_once(data):
    texts = list(chat_texts(data))
    assert len(texts) == len(set(texts))
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    system = {line["messages"][0]["content"] for line in lines}
    assert system <= set(texts) and len(system) == 1  # one system prompt, listed once


def test_built_model_has_the_sizes_and_loads_as_a_policy(data, tmp_path):
    config = ScratchConfig(data=str(data), output_dir=str(tmp_path / "init"), **SMALL)
    out = build_scratch_model(config)
    policy = VLMPolicy.from_pretrained(out)
    text = policy.model.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_key_value_heads) == (64, 1, 1)
    # head size 32: the rotary half (16) split 2:3:3 over time, height and width
    assert text.rope_parameters["mrope_section"] == [4, 6, 6]
    vision = policy.model.config.vision_config
    assert (vision.depth, vision.hidden_size, vision.out_hidden_size) == (2, 32, 64)
    assert vision.fullatt_block_indexes == [0, 1]
    assert text.vocab_size == len(policy.tokenizer) <= 600
    # The tokenizer learned the protocol's text: the system prompt costs far fewer tokens than
    # its characters (byte-level BPE starts at one token per byte).
    system = json.loads(data.read_text().splitlines()[0])["messages"][0]["content"]
    assert len(policy.tokenizer(system)["input_ids"]) < len(system) / 2
    assert load_config(ScratchConfig, out / "init.toml") == config


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"heads": 3}, "heads"), ({"kv_heads": 3, "heads": 2}, "kv_heads"), ({"data": ""}, "data")],
)
def test_bad_sizes_name_the_setting(data, kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        ScratchConfig(**{"data": str(data), **SMALL, **kwargs})


def test_main_builds_from_overrides(data, tmp_path, capsys):
    overrides = [f"{key}={value}" for key, value in SMALL.items()]
    assert main([f"data={data}", f"output_dir={tmp_path / 'm'}", *overrides]) == 0
    assert "parameters" in capsys.readouterr().out
    assert (tmp_path / "m" / "model.safetensors").is_file()


@pytest.mark.parametrize(("theta", "low", "high"), [(1e6, 0.0, 0.00125), (20.0, 0.38, 1.09)])
def test_rope_theta_sets_how_far_image_columns_turn(data, tmp_path, theta, low, high):
    # The width part of the rotary half is its last 3/8 (frequency indices 20..31 of 32 at head
    # size 64); column c of an image turns dimension i by c * theta ** (-i / 32). Over the 8
    # columns of a 224x224 image (7 steps): 7 * 1e6 ** (-20/32) = 0.00124 rad at most, so
    # columns look alike; at theta 20 the turns span 7 * 20 ** (-31/32) = 0.38 to
    # 7 * 20 ** (-20/32) = 1.08 rad.
    import torch

    sizes = {**SMALL, "hidden_size": 256, "heads": 4, "kv_heads": 2}
    config = ScratchConfig(
        data=str(data), output_dir=str(tmp_path / "init"), rope_theta=theta, **sizes
    )
    model = VLMPolicy.from_pretrained(build_scratch_model(config)).model
    assert model.config.text_config.rope_parameters["rope_theta"] == theta
    positions = torch.zeros(3, 1, 8, dtype=torch.long)
    positions[2, 0] = torch.arange(8)  # one row of 8 image tokens: only the width id moves
    cos, sin = model.model.language_model.rotary_emb(torch.zeros(1, 8, 64), positions)
    angle = torch.atan2(sin[0, 7, 20:32], cos[0, 7, 20:32]) - torch.atan2(
        sin[0, 0, 20:32], cos[0, 0, 20:32]
    )
    assert low <= float(angle.abs().min()) and float(angle.abs().max()) <= high
    assert float(angle.abs().max()) > high * 0.9  # the fastest width dimension nearly reaches it
    assert torch.equal(cos[0, :, :20], cos[0, :1, :20].expand(8, 20))  # time and height still
