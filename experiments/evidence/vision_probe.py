"""Can a from-scratch model learn to read the counting images at all? (the evidence notebook)

The cheapest test of image use: answer counting questions directly, no drawing, no system
prompt, and watch held-out accuracy against the text-only floor. A model that cannot learn
this cannot learn to draw the right boxes either.

    python experiments/evidence/vision_probe.py data OUT.pt --items 16000   # env episodes,
        [--max-pixels 200704]                                               # 224x224 (448x448)
    python experiments/evidence/vision_probe.py train MODEL OUT.pt RUN_DIR [--freeze-vision]
        [--lr 1e-3] [--vision-lr 1e-4] [--steps 4000] [--batch 64] [--eval-every 250]
    python experiments/evidence/vision_probe.py swap MODEL [--episodes 24]  # any checkpoint,
        [--max-pixels 200704]                                               # CPU (448x448)

``data`` plays ``env.reset`` for train seeds from 10,000,000 and validation seeds from
2,000,000 (the ``stream`` and ``validation`` ranges of ``drawenv.tasks.SEED_RANGES``; never the
test seeds), keeping the 224x224 images (or ``--max-pixels``) as uint8. ``train`` patches them
on the GPU exactly as the model's processor does (checked against it at start-up) and writes
``RUN_DIR/metrics.jsonl``: loss, validation accuracy, MRA and the answer token's loss (the
text-only floor is ln 8 = 2.08: eight equally likely answers).

``swap`` asks the same of a drawing model: its teacher-forced SFT loss on oracle episodes with
their own images and with another episode's. Equal losses mean the images go unused. It also
gives the count loss: a drawing model answers how many boxes it drew, so its count is decided,
box by box, at the token after each box (another box, or close the list). With the oracle's
boxes given, the sum of those tokens' losses is −log P(true count), comparable with the answer
token's loss of ``train`` (floor ln 8 = 2.08).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from drawenv.tasks import SEED_RANGES

TRAIN_SEED, VALID_SEED, SWAP_SEED = (
    SEED_RANGES[name].first for name in ("stream", "validation", "probe")
)
SUITE = {"task": "counting", "difficulty": 1, "max_pixels": 50176}


@functools.cache  # one env per image budget in each worker process
def _env(max_pixels: int):
    from drawenv.env import DrawSpatialEnv

    return DrawSpatialEnv(**(SUITE | {"max_pixels": max_pixels}))


def _episode(seed: int, max_pixels: int) -> tuple[np.ndarray, str, int]:
    env = _env(max_pixels)
    obs, _ = env.reset(seed=seed)
    return np.array(obs["images"][0]), obs["text"], int(env.task.answer)


def make_data(out: Path, items: int, valid: int, max_pixels: int = SUITE["max_pixels"]) -> None:
    seeds = [TRAIN_SEED + k for k in range(items)] + [VALID_SEED + k for k in range(valid)]
    with multiprocessing.Pool() as pool:
        episodes = pool.map(functools.partial(_episode, max_pixels=max_pixels), seeds, 64)
    images, texts, answers = zip(*episodes)
    torch.save(
        {
            "images": torch.from_numpy(np.stack(images)),
            "texts": list(texts),
            "answers": torch.tensor(answers),
            "train": items,
        },
        out,
    )
    print(f"{out}: {items} train + {valid} validation episodes")


def patchify(images: torch.Tensor, processor) -> torch.Tensor:
    """uint8 (N, H, W, 3) images as Qwen2-VL pixel patches (N*h*w, 3*2*14*14), as the image
    processor makes them for images it does not resize."""
    ip = processor.image_processor
    p, m, t = ip.patch_size, ip.merge_size, ip.temporal_patch_size
    mean = torch.tensor(ip.image_mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(ip.image_std, device=images.device).view(1, 3, 1, 1)
    x = (images.permute(0, 3, 1, 2).float() * ip.rescale_factor - mean) / std
    n, c, height, width = x.shape
    gh, gw = height // p, width // p
    x = x.unsqueeze(1).expand(n, t, c, height, width)
    x = x.reshape(n, t, c, gh // m, m, p, gw // m, m, p)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(n * gh * gw, c * t * p * p)


def answer_tokens(tokenizer) -> tuple[list[list[int]], int]:
    """The ids of "<answer> k </answer>" for k = 1..8 and the one place where they differ:
    as the tokenizer writes them when the eight differ in one token only, else with the digit
    tokenised on its own (byte-level BPE holds every digit)."""

    def tokens(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    natural = [tokens(f"<answer> {k} </answer>") for k in range(1, 9)]
    split = [tokens("<answer> ") + tokens(str(k)) + tokens(" </answer>") for k in range(1, 9)]
    for candidates in (natural, split):
        if len({len(ids) for ids in candidates}) == 1:
            places = {i for i, column in enumerate(zip(*candidates)) if len(set(column)) > 1}
            if len(places) == 1 and len({ids[min(places)] for ids in candidates}) == 8:
                return candidates, places.pop()
    raise ValueError("Expected the answers 1-8 to differ in one token; this tokenizer splits them.")


def train(args: argparse.Namespace) -> None:
    from agents.train.optim import freeze_vision_tower, vision_tower
    from agents.vlm.device import autocast
    from agents.vlm.policy import VLMPolicy
    from drawenv import rewards

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    policy = VLMPolicy.from_pretrained(args.model, device=device)
    model = policy.model.train()
    data = torch.load(args.data)
    images, answers, n_train = data["images"], data["answers"], data["train"]

    # Token ids: the prompt (image + question), then "<answer> k </answer>".
    cache: dict[str, object] = {}  # a few hundred distinct questions; the image sets no ids
    for text in data["texts"]:
        if text not in cache:
            cache[text] = policy.prompt_segment("", text, [images[0].numpy()])
    segments = [cache[text] for text in data["texts"]]
    check = policy.encode_images([images[0].numpy()])[0]
    assert torch.allclose(patchify(images[:1], policy.processor), check, atol=1e-4)
    grid = segments[0].image_grid_thw
    answers_ids, place = answer_tokens(policy.tokenizer)
    digit_ids = torch.tensor([ids[place] for ids in answers_ids], device=device)
    rows = [s.ids + answers_ids[int(a) - 1] for s, a in zip(segments, answers)]
    answer_at = [len(s.ids) + place for s in segments]  # position of the digit token

    vision = list(vision_tower(model).parameters())
    text = [p for p in model.parameters() if all(p is not v for v in vision)]
    groups = [{"params": text, "lr": args.lr}]
    if args.freeze_vision:
        freeze_vision_tower(model)
    else:
        groups.append({"params": vision, "lr": args.vision_lr or args.lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    peak = [g["lr"] for g in optimizer.param_groups]
    images = images.to(device)

    def batch(index: list[int]):
        text_only = [
            SimpleNamespace(ids=rows[i], pixel_values=None, image_grid_thw=None) for i in index
        ]
        ids, mask, _, _ = policy.pad_batch(text_only, left=False)  # right-padded, on the device
        thw = grid.repeat(len(index), 1).to(device)
        pixels = patchify(images[index], policy.processor)
        positions = policy.positions(ids, mask, thw)
        with autocast(device, "bfloat16"):
            logits = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                pixel_values=pixels,
                image_grid_thw=thw,
            ).logits.float()
        targets = torch.full_like(ids, -100)
        for r, i in enumerate(index):
            start = len(segments[i].ids)
            targets[r, start - 1 : len(rows[i]) - 1] = ids[r, start : len(rows[i])]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets)
        at = torch.tensor([answer_at[i] - 1 for i in index], device=device)
        answer_logits = logits[torch.arange(len(index), device=device), at]
        return loss, answer_logits

    valid = list(range(n_train, len(rows)))

    @torch.no_grad()
    def score() -> dict[str, float]:
        correct, mra, answer_loss = 0.0, 0.0, 0.0
        model.eval()
        for k in range(0, len(valid), 256):
            index = valid[k : k + 256]
            _, answer_logits = batch(index)
            truth = answers[index].to(device)
            guess = answer_logits[:, digit_ids].argmax(-1) + 1
            correct += float((guess == truth).sum())
            mra += float(np.sum(rewards.mra(guess.cpu().numpy(), truth.cpu().numpy())))
            answer_loss += torch.nn.functional.cross_entropy(
                answer_logits, digit_ids[truth - 1], reduction="sum"
            ).item()
        model.train()
        n = len(valid)
        return {"accuracy": correct / n, "mra": mra / n, "answer_loss": answer_loss / n}

    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.time()
    with open(run / "metrics.jsonl", "w", encoding="utf-8") as log:
        for step in range(args.steps + 1):
            if step % args.eval_every == 0 or step == args.steps:
                record = {"step": step, **score(), "seconds": round(time.time() - start, 1)}
                print(json.dumps(record), flush=True)
                log.write(json.dumps(record) + "\n")
                log.flush()
            if step == args.steps:
                break
            warm = min(1.0, (step + 1) / 100)
            for group, lr in zip(optimizer.param_groups, peak):
                group["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * step / args.steps))
            index = torch.randint(0, n_train, (args.batch,), generator=generator).tolist()
            loss, _ = batch(index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if step % 50 == 0:
                log.write(json.dumps({"step": step, "loss": loss.item()}) + "\n")


def count_tokens(tokenizer, text: str) -> list[int]:
    """Indices, in ``tokenizer(text)``, of the tokens that close each box of a drawing turn and
    say what comes next: those holding its ``}`` or the character after it (``"},`` when
    another box follows; ``"}`` then ``\n`` when the list closes)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ends = [len(tokenizer.decode(ids[: i + 1])) for i in range(len(ids))]
    starts = [0, *ends[:-1]]
    closes = [m.start() for m in re.finditer(r"\}(?=,\n|\n\])", text)]
    return [i for c in closes for i in range(len(ids)) if starts[i] <= c + 1 and ends[i] > c]


def swap(args: argparse.Namespace) -> dict[str, float]:
    """Teacher-forced SFT loss of ``args.model`` on oracle episodes (seeds from 3,000,000) with
    each episode's own images, and with those of another episode of the same image layout:
    equal losses mean the model does not use the images."""
    import copy
    import tempfile

    from torch.nn.functional import cross_entropy

    from agents.evaluate import play_episode
    from agents.scripted.baselines import OracleAgent
    from agents.train.losses import sft_loss
    from agents.train.sft_data import to_messages
    from agents.train.sft_examples import batch_inputs, build_example
    from agents.vlm.policy import VLMPolicy
    from drawenv.env import DrawSpatialEnv

    policy = VLMPolicy.from_pretrained(args.model)
    env = DrawSpatialEnv(
        **(SUITE | {"max_pixels": args.max_pixels}),
        coords=policy.coords,
        patch_factor=policy.patch_factor,
    )

    @torch.no_grad()
    def loss(examples: list) -> tuple[float, float]:
        """(SFT loss, mean count loss) of the examples."""
        inputs = batch_inputs(policy, examples)
        mask = inputs.pop("loss_mask")
        logits, ids = policy.model(**inputs, use_cache=False).logits, inputs["input_ids"]
        count = [  # logits row p - 1 predicts token p
            float(
                cross_entropy(
                    logits[row, [p - 1 for p in tokens]].float(), ids[row, tokens], reduction="sum"
                )
            )
            for row, tokens in enumerate(decisions)
        ]
        return float(sft_loss(logits, ids, mask)), sum(count) / len(count)

    with tempfile.TemporaryDirectory() as tmp:
        root, own, decisions = Path(tmp), [], []
        for k in range(args.episodes):
            record = play_episode(env, OracleAgent(), seed=SWAP_SEED + k, image_dir=root / str(k))
            messages = to_messages(record)
            own.append(build_example(policy, messages, root))
            first = own[-1].mask.index(1)  # the first drawing turn's first token
            decisions.append(
                [first + i for i in count_tokens(policy.tokenizer, messages[2]["content"])]
            )
    swapped = [copy.copy(example) for example in own]
    for i, example in enumerate(swapped):  # the next episode (cyclically) of the same layout
        shape = own[i].pixel_values.shape
        others = [own[(i + d) % len(own)] for d in range(1, len(own))]
        example.pixel_values = next(
            (o.pixel_values for o in others if o.pixel_values.shape == shape), own[i].pixel_values
        )
    (own_sft, own_count), (swapped_sft, swapped_count) = loss(own), loss(swapped)
    result = {
        "own_images": own_sft,
        "swapped_images": swapped_sft,
        "count_loss_own_images": own_count,
        "count_loss_swapped_images": swapped_count,
    }
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    pixels = {"type": int, "default": SUITE["max_pixels"], "help": "image budget (448x448: 200704)"}
    data = sub.add_parser("data")
    data.add_argument("out", type=Path)
    data.add_argument("--items", type=int, default=16000)
    data.add_argument("--valid", type=int, default=512)
    data.add_argument("--max-pixels", **pixels)
    fit = sub.add_parser("train")
    fit.add_argument("model")
    fit.add_argument("data")
    fit.add_argument("run")
    fit.add_argument("--freeze-vision", action="store_true")
    fit.add_argument("--lr", type=float, default=1e-3)
    fit.add_argument("--vision-lr", type=float, default=None)
    fit.add_argument("--steps", type=int, default=4000)
    fit.add_argument("--batch", type=int, default=64)
    fit.add_argument("--eval-every", type=int, default=250)
    fit.add_argument("--seed", type=int, default=0)
    check = sub.add_parser("swap")
    check.add_argument("model")
    check.add_argument("--episodes", type=int, default=24)
    check.add_argument("--max-pixels", **pixels)
    args = parser.parse_args()
    if args.stage == "data":
        make_data(args.out, args.items, args.valid, args.max_pixels)
    elif args.stage == "swap":
        swap(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
