"""experiments/evidence/vision_probe.py on the CPU: its GPU patching matches the real image
processor, and both stages run end to end on real env episodes with the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.vlm.testing import save_tiny_model, tiny_processor  # noqa: E402

EVIDENCE = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EVIDENCE / "vision_probe.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_patchify_gives_the_image_processors_pixel_patches(vision_probe):
    processor = tiny_processor()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 56, 84, 3), dtype=np.uint8)
    expected = processor.image_processor(images=list(images), return_tensors="pt")
    patches = vision_probe.patchify(torch.from_numpy(images), processor)
    # 2 images of 4x6 patches of 14 px; each row holds 3 channels x 2 frames x 14 x 14 values.
    assert patches.shape == (2 * 4 * 6, 3 * 2 * 14 * 14)
    torch.testing.assert_close(patches, expected["pixel_values"].float(), atol=1e-5, rtol=0)
    # By hand: the first value is the top-left red pixel, rescaled and normalised.
    ip = processor.image_processor
    first = (images[0, 0, 0, 0] / 255 - ip.image_mean[0]) / ip.image_std[0]
    assert patches[0, 0].item() == pytest.approx(first, abs=1e-5)


def test_probe_makes_env_data_and_trains_the_tiny_model(tmp_path):
    data = tmp_path / "probe.pt"
    done = probe("data", str(data), "--items", "6", "--valid", "4")
    assert done.returncode == 0, done.stderr
    saved = torch.load(data)
    assert saved["images"].shape == (10, 224, 224, 3) and saved["images"].dtype == torch.uint8
    assert saved["train"] == 6
    assert all(1 <= int(a) <= 8 for a in saved["answers"])
    assert all("How many" in t or "Count the" in t for t in saved["texts"])
    big = tmp_path / "probe448.pt"
    done = probe("data", str(big), "--items", "1", "--valid", "1", "--max-pixels", "200704")
    assert done.returncode == 0, done.stderr
    saved448 = torch.load(big)  # the same two first scenes, at their full 448x448
    assert saved448["images"].shape == (2, 448, 448, 3)
    assert saved448["answers"].tolist() == [saved["answers"][0], saved["answers"][6]]
    assert all("(width: 448, height: 448)" in t for t in saved448["texts"])

    model = save_tiny_model(tmp_path / "tiny")
    run = tmp_path / "run"
    args = ("--steps", "2", "--batch", "2", "--eval-every", "1")
    done = probe("train", str(model), str(data), str(run), "--freeze-vision", *args)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "accuracy" in r]
    assert [r["step"] for r in evals] == [0, 1, 2]
    for r in evals:  # 4 validation items: accuracy in quarters, MRA within [0, 1]
        assert r["accuracy"] * 4 == int(r["accuracy"] * 4)
        assert 0 <= r["mra"] <= 1 and np.isfinite(r["answer_loss"])
    assert [r["step"] for r in rows if "loss" in r] == [0]


def test_swap_scores_own_and_swapped_images_apart(tmp_path):
    model = save_tiny_model(tmp_path / "tiny")
    done = probe("swap", str(model), "--episodes", "4")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Random weights still read the pixels, so other images give another loss; both losses
    # are near ln(vocabulary) for a random model.
    assert result["own_images"] != result["swapped_images"]
    assert 0 < result["own_images"] < 2 * np.log(1024)
    assert 0 < result["swapped_images"] < 2 * np.log(1024)
    # the count loss sums two or more tokens' losses an episode (one or more boxes)
    assert result["count_loss_own_images"] != result["count_loss_swapped_images"]
    assert result["count_loss_own_images"] > 0 and np.isfinite(result["count_loss_own_images"])
    # the same episodes shown at 448x448: four times the image tokens, another loss
    done = probe("swap", str(model), "--episodes", "4", "--max-pixels", "200704")
    assert done.returncode == 0, done.stderr
    big = json.loads(done.stdout.strip().splitlines()[-1])
    assert big["own_images"] != result["own_images"]


def byte_level_bpe(merges: tuple[tuple[str, str], ...]):
    """A byte-level BPE tokenizer that knows the 256 byte tokens and only ``merges``: its split
    of a text follows from the merges by hand."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for left, right in merges:
        vocab[left + right] = len(vocab)
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=bpe)


# The text's boxes end '"a"},\n' (another box follows) and '"b"}\n]\n' (the list closes). The
# byte-level pre-tokenizer cuts a run of punctuation apart from letters and from whitespace, so
# '"},' and '"}' are pieces of their own and '\n' is never merged with '}' or ']'.
@pytest.mark.parametrize(
    ("merges", "expected"),
    [
        # Bytes only: the '}' and the byte after it, for each box.
        ((), ["}", ",", "}", "\n"]),
        # '}' + ',' -> '},': the first box closes in one token.
        ((("}", ","),), ["},", "}", "\n"]),
        # '"' + '}' -> '"}', then '"}' + ',' -> '"},'.
        ((('"', "}"), ('"}', ",")), ['"},', '"}', "\n"]),
    ],
)
def test_count_tokens_are_where_a_box_list_goes_on_or_closes(vision_probe, merges, expected):
    tokenizer = byte_level_bpe(merges)
    text = (
        '[\n{"index": 1, "bbox_2d": [1, 2, 3, 4], "label": "a"},\n'
        '{"index": 1, "bbox_2d": [5, 6, 7, 8], "label": "b"}\n]\n'
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    found = vision_probe.count_tokens(tokenizer, text)
    assert [tokenizer.decode([ids[i]]) for i in found] == expected
    # The list closes right after the last token found.
    assert found[-1] == found[-2] + 1 and tokenizer.decode(ids[found[-1] + 1 :]) == "]\n"
