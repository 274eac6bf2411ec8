"""VLMPolicy on a tiny random Qwen2.5-VL: chat tokens, image sync, batched sampling, loading."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.vlm.policy import GenerationSettings, ImageTokenMismatch, TurnInput, VLMPolicy  # noqa: E402
from agents.vlm.testing import save_tiny_model, tiny_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def policy(one_thread) -> VLMPolicy:
    return VLMPolicy(*tiny_model(seed=0), GenerationSettings(max_new_tokens=8))


def image(width: int = 112, height: int = 56, value: int = 90) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -1},
        {"top_p": 0},
        {"top_p": 1.5},
        {"max_new_tokens": 0},
        {"min_new_tokens": 9, "max_new_tokens": 8},
        {"stop_strings": "</answer>"},
        {"stop_strings": ("",)},
    ],
)
def test_settings_reject_impossible_values(kwargs):
    with pytest.raises(ValueError, match="Expected"):
        GenerationSettings(**kwargs)


def test_prompt_holds_system_question_and_one_placeholder_run_per_image(policy):
    images = [image(112, 56), image(56, 56)]
    segment = policy.prompt_segment("SYSTEM RULES", "How many circles?", images)
    text = policy.tokenizer.decode(segment.ids)
    assert text.startswith("<|im_start|>system\nSYSTEM RULES<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("How many circles?<|im_end|>\n<|im_start|>assistant\n")
    # 112x56 -> 8x4 patches -> 8 tokens after the 2x2 merge; 56x56 -> 4 tokens.
    assert segment.image_grid_thw.tolist() == [[1, 4, 8], [1, 4, 4]]
    assert text.count("<|image_pad|>") == 12 and text.count("<|vision_start|>") == 2
    policy.check_sync(segment.ids, segment.pixel_values, segment.image_grid_thw, images)


@pytest.mark.parametrize(
    ("ended_on_stop", "start"),
    [(True, "\n<|im_start|>user\n"), (False, "<|im_end|>\n<|im_start|>user\n")],
)
def test_observation_turn_completes_the_assistant_closing(policy, ended_on_stop, start):
    last = policy.stop_token_ids[0] if ended_on_stop else None
    segment = policy.observation_segment("Look again.", [image()], last_token=last)
    text = policy.tokenizer.decode(segment.ids)
    assert text.startswith(start)
    assert text.endswith("Look again.<|im_end|>\n<|im_start|>assistant\n")
    assert segment.image_grid_thw.tolist() == [[1, 4, 8]]


def test_images_are_not_resized_and_bad_sizes_are_refused(policy):
    pixels, grid = policy.encode_images([image(28 * 7, 28 * 3)])
    assert grid.tolist() == [[1, 6, 14]] and pixels.shape[0] == 6 * 14
    with pytest.raises(ValueError, match="patch_factor=28"):
        policy.encode_images([image(100, 56)])


def test_sync_check_catches_broken_records(policy):
    images = [image(), image(56, 56)]
    segment = policy.prompt_segment("s", "q", images)
    ids, pixels, grid = segment.ids, segment.pixel_values, segment.image_grid_thw
    pad = policy.image_token_id
    one_pad_less = list(ids)
    one_pad_less.remove(pad)
    with pytest.raises(ImageTokenMismatch, match=r"placeholder runs \[7, 4\] \(total 11\)"):
        policy.check_sync(one_pad_less, pixels, grid)
    with pytest.raises(ImageTokenMismatch, match="for 1 image"):
        policy.check_sync(ids, pixels[:32], grid[:1])
    with pytest.raises(ImageTokenMismatch, match="47 pixel rows but the grids give 48"):
        policy.check_sync(ids, pixels[:-1], grid)
    with pytest.raises(ImageTokenMismatch, match="but the images give"):
        policy.check_sync(ids, pixels, grid, images[::-1])


def test_left_padded_batch_matches_each_sequence_alone(policy):
    prompts = [
        policy.prompt_segment("s", "a short question", [image(56, 56)]),
        policy.prompt_segment("s", "a much longer question " * 6, [image(112, 56), image()]),
    ]
    settings = GenerationSettings(temperature=0, max_new_tokens=6, min_new_tokens=6)

    def turn(segments):
        inputs = [TurnInput(s.ids, s.pixel_values, s.image_grid_thw, 6) for s in segments]
        return policy.generate(inputs, generator=torch.Generator(), settings=settings)

    batched = turn(prompts)
    for prompt, together in zip(prompts, batched):
        alone = turn([prompt])[0]
        assert together.ids == alone.ids
        np.testing.assert_allclose(together.logprobs, alone.logprobs, atol=1e-5)


def test_from_pretrained_loads_the_saved_tiny_model_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = save_tiny_model(tmp_path / "tiny", seed=3)
    loaded = VLMPolicy.from_pretrained(path, dtype="float32")
    built, _ = tiny_model(seed=3)
    for (name, a), b in zip(loaded.model.state_dict().items(), built.state_dict().values()):
        assert torch.equal(a, b), name
    assert loaded.coords == "pixel" and loaded.patch_factor == 28
    segment = loaded.prompt_segment("s", "q", [image()])
    assert loaded.tokenizer.decode(segment.ids).count("<|image_pad|>") == 8


def test_from_pretrained_loads_a_trainer_checkpoint_folder(tmp_path):
    save_tiny_model(tmp_path / "checkpoint-5" / "model", seed=3)
    loaded = VLMPolicy.from_pretrained(tmp_path / "checkpoint-5", dtype="float32")
    built, _ = tiny_model(seed=3)
    first = next(iter(built.state_dict()))
    assert torch.equal(loaded.model.state_dict()[first], built.state_dict()[first])


def test_from_pretrained_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        VLMPolicy.from_pretrained(tmp_path / "nowhere")
