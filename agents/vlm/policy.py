"""A vision-language model as a DrawSpatial-v0 policy: chat tokens, batched turns, log-probs.

:class:`VLMPolicy` wraps a transformers image-text-to-text model (Qwen2.5-VL first; Qwen2-VL and
Qwen3-VL work the same way) with its tokenizer and image processor. It owns three jobs:

- **tokens**: the chat is built once per episode and then only grows. :meth:`prompt_segment`
  renders ``[system, user(images + question)]`` with the model's chat template;
  :meth:`observation_segment` renders just the next observation turn (its new images and text)
  and is appended. The history is never re-tokenised, so the ids the model sampled are exactly
  the ids that get trained. Image placeholders are expanded here, one ``<|image_pad|>`` per merged
  patch, from the image processor's grid; :meth:`check_sync` proves ids and pixels agree.
- **sampling**: :meth:`generate` runs one turn for a batch of sequences (left padding, a KV
  cache, temperature / top-p sampling from a seeded ``torch.Generator``, tokens read back to the
  host every few steps) and records the log-probability of every sampled token under
  ``log_softmax(logits / temperature)``. Given the cache of the batch's previous turn
  (:func:`agents.vlm.rollout.rollout` keeps it), it prefills only what is new.
- **scoring**: :meth:`token_logprobs` recomputes those log-probs with one forward pass over whole
  trajectories (right padding, every image of each), so a trainer's first importance ratio is 1.

The env's images are already smart-resized to multiples of ``patch_size * merge_size``; they are
handed to the image processor with ``do_resize=False`` and each grid is checked against the array.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.vlm.device import DTYPES, PhaseTimes
from agents.vlm.static_decode import StaticDecoder, static_cache_supported

NORM1000_MODELS = ("qwen2_vl", "qwen3_vl", "qwen3_vl_moe")
"""Model types that write 0..1000 relative coordinates (the env's ``coords="norm1000"``)."""

DECODE_MODES = ("auto", "static", "eager")
"""How :meth:`VLMPolicy.generate` decodes: ``static`` on fixed buffers (a CUDA graph on CUDA),
``eager`` on a growing cache, ``auto`` static on CUDA and eager elsewhere."""

_SENTINEL = "\u2063ASSISTANT\u2063"


class ImageTokenMismatch(ValueError):
    """Image placeholder tokens and pixel tensors of a sequence disagree (a bug, never data)."""


@dataclass(frozen=True)
class GenerationSettings:
    """How the policy samples one turn."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (log-probs are then those of temperature 1)."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]; the recorded log-probs ignore this truncation."""
    max_new_tokens: int = 512
    """Most tokens the model writes in one turn."""
    min_new_tokens: int = 0
    """Stop tokens are not sampled before this many tokens of a turn (for benchmarks)."""
    stop_strings: tuple[str, ...] = ()
    """A turn also ends once its text contains one of these (e.g. ``"</answer>"``)."""

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"Expected temperature >= 0, got {self.temperature!r}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"Expected top_p in (0, 1], got {self.top_p!r}.")
        if self.max_new_tokens < 1:
            raise ValueError(f"Expected max_new_tokens >= 1, got {self.max_new_tokens!r}.")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(
                f"Expected 0 <= min_new_tokens <= max_new_tokens ({self.max_new_tokens}), "
                f"got {self.min_new_tokens!r}."
            )
        if isinstance(self.stop_strings, str) or not all(self.stop_strings):
            raise ValueError(
                f"Expected stop_strings as a tuple of non-empty strings, got {self.stop_strings!r}."
            )
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))


@dataclass
class ImageTextProcessor:
    """A tokenizer (with a chat template) and an image processor: what the policy needs.

    Used where the model's own processor class cannot be built (transformers' Qwen-VL processors
    need torchvision for their video half); a transformers processor works the same way.
    """

    tokenizer: Any
    image_processor: Any

    def save_pretrained(self, path: str | Path) -> None:
        """Write both parts to the folder ``path``."""
        self.tokenizer.save_pretrained(path)
        self.image_processor.save_pretrained(path)


@dataclass
class Segment:
    """Tokens to append to a sequence, with the images whose placeholders they hold."""

    ids: list[int]
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None


@dataclass
class TurnInput:
    """One growing sequence as :meth:`VLMPolicy.generate` sees it."""

    ids: list[int]
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    max_new_tokens: int
    episode: int = 0
    turn: int = 0


@dataclass
class TurnOutput:
    """What the model wrote in one turn."""

    ids: list[int]
    logprobs: list[float]
    text: str
    finish: str
    """``stop`` (a stop token), ``stop_string``, ``length`` (max_new_tokens) or ``budget``."""


class TurnCache:
    """The key/value cache of a batch of growing sequences, kept by :meth:`VLMPolicy.generate`
    from one turn to the next (``rollout(..., reuse_cache=True)``); empty until a call fills it.

    Row ``r`` belongs to episode ``episodes[r]`` and holds the keys and values of the first
    ``lengths[r]`` ids of its sequence and of its first ``images[r]`` images. Columns where
    ``mask`` is 0 are padding: left padding of the first prefill, padding inside later ones, and
    tokens fed after a row's turn had ended. Positions are explicit, so padding changes no
    result; it only costs attention work.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every row (and free the tensors)."""
        self.past: Any = None
        self.mask: torch.Tensor | None = None
        """(B, C) int64: 1 on the cached columns that hold a token of the row's sequence."""
        self.next_position: torch.Tensor | None = None
        """(3, B, 1) or (B, 1): the rotary position of each row's first id not in the cache."""
        self.episodes: list[int] = []
        self.lengths: list[int] = []
        self.images: list[int] = []
        self.padded = False
        """Whether ``mask`` may hold a 0 (known on the host, so decoding never has to look)."""

    def __len__(self) -> int:
        return len(self.episodes)

    def select(self, episodes: Sequence[int]) -> None:
        """Keep the rows of ``episodes``, in that order; the others leave the cache."""
        index = {episode: row for row, episode in enumerate(self.episodes)}
        missing = [e for e in episodes if e not in index]
        if missing or len(set(episodes)) != len(episodes):
            raise ValueError(
                f"Expected distinct episodes among the cached {self.episodes}, got {list(episodes)}"
                f"{f' ({missing} not cached)' if missing else ''}. Give a fresh TurnCache for new "
                "episodes."
            )
        rows = [index[e] for e in episodes]
        if rows == list(range(len(self.episodes))):
            return
        keep = torch.tensor(rows, device=self.mask.device)
        self.past.batch_select_indices(keep)
        self.mask = self.mask[keep]
        self.next_position = self.next_position.index_select(-2, keep)
        self.episodes = [self.episodes[r] for r in rows]
        self.lengths = [self.lengths[r] for r in rows]
        self.images = [self.images[r] for r in rows]

    def keep(
        self,
        sequences: Sequence[TurnInput],
        turn: _Turn,
        past: Any,
        attention_mask: torch.Tensor,
        prefilled: int,
        start: torch.Tensor,
        padded: bool,
    ) -> None:
        """Hold the cache of a finished turn: every sequence and all its turn's tokens but the
        last, which was never fed (the next call feeds it first). ``prefilled`` is the number
        of columns before decoding, ``start`` the position of the first decoded token."""
        written = turn.lengths  # on the device, stop strings applied
        fed = torch.arange(attention_mask.shape[1] - prefilled, device=attention_mask.device)
        attention_mask[:, prefilled:].masked_fill_(fed[None, :] >= written[:, None] - 1, 0)
        lengths = [len(ids) for ids in turn.generated]
        self.past, self.mask = past, attention_mask
        self.next_position = start + (written - 1).view(-1, 1)
        self.episodes = [s.episode for s in sequences]
        self.lengths = [len(s.ids) + n - 1 for s, n in zip(sequences, lengths)]
        self.images = [0 if s.image_grid_thw is None else len(s.image_grid_thw) for s in sequences]
        self.padded = padded or len(set(lengths)) > 1


def sampling_probs(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Unnormalised sampling weights from log-probs ``scores`` (B, V): ``exp(scores)``, with the
    tokens outside the top-``top_p`` nucleus of each row set to 0 when ``top_p < 1``."""
    probs = scores.exp()
    if top_p < 1:
        sorted_probs, order = probs.sort(-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return probs


READ_EVERY = 8
"""Decoding steps between two reads of the chosen tokens back to the host in
:meth:`VLMPolicy.generate`. A read waits for the device; between reads it runs ahead of Python.
A turn may decode up to ``READ_EVERY - 1`` steps after its last row ended; those are undone."""


def pick_tokens(
    scores: torch.Tensor, *, generator: torch.Generator, settings: GenerationSettings
) -> torch.Tensor:
    """The default choice of :meth:`VLMPolicy.choose_tokens` without waiting for the device:
    greedy at temperature 0, else top-p sampling with ``generator``, drawn the way
    ``torch.multinomial(probs, 1)`` draws one sample (``argmax(probs / q)``, ``q ~ Exp(1)`` from
    ``generator``): the same random numbers and the same token, less its host-side check of
    ``probs``, which waits for the GPU on every call."""
    if settings.temperature == 0:
        return scores.argmax(-1)
    probs = sampling_probs(scores, settings.top_p)
    q = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / q).argmax(-1)


def _default_choice(
    scores: torch.Tensor, *, generator: torch.Generator, settings: GenerationSettings, **_: Any
) -> torch.Tensor:
    return pick_tokens(scores, generator=generator, settings=settings)


class VLMPolicy:
    """A transformers image-text-to-text model acting in DrawSpatial-v0.

    Args:
        model: an image-text-to-text model (``Qwen2_5_VLForConditionalGeneration``, …), already
            on its device and dtype.
        processor: its processor, or anything with ``tokenizer`` (holding the chat template) and
            ``image_processor`` attributes (:class:`ImageTextProcessor`).
        settings: default :class:`GenerationSettings`.
    """

    stateless_choice = False
    """Set by a subclass whose :meth:`choose_tokens` keeps no state between steps (its draws a
    function of the episode, turn and step): decoding then reads tokens back every
    :data:`READ_EVERY` steps, as the built-in sampling does, not at every step."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        settings: GenerationSettings | None = None,
        decode: str = "auto",
    ):
        if decode not in DECODE_MODES:
            raise ValueError(
                f"Expected decode in {DECODE_MODES}, got {decode!r}. Use 'auto' (static on "
                "CUDA, eager elsewhere), 'static' or 'eager'."
            )
        if decode == "static" and not static_cache_supported():
            raise ValueError(
                "decode='static' needs a StaticCache that keeps its length in a tensor, which "
                "this transformers lacks; upgrade transformers or give decode='eager'."
            )
        self.decode = decode
        """``auto``, ``static`` or ``eager``: how :meth:`generate` decodes (see
        :mod:`agents.vlm.static_decode`)."""
        self._static: StaticDecoder | None = None
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_processor = processor.image_processor
        self.settings = settings or GenerationSettings()
        config = model.config
        self.image_token_id = int(config.image_token_id)
        self.image_token = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
        self.merge_size = int(getattr(self.image_processor, "merge_size", 2))
        self.patch_size = int(getattr(self.image_processor, "patch_size", 14))
        self.vocab_limit = len(self.tokenizer)
        # The model never writes vision tokens: a sampled placeholder would have no pixels.
        self._blocked: torch.Tensor | None = None  # vocabulary rows no token may come from
        self.banned_token_ids = sorted(
            {
                int(token_id)
                for name in ("image_token_id", "video_token_id", "vision_start_token_id")
                if (token_id := getattr(config, name, None)) is not None
            }
        )
        self.pad_token_id = self._pad_token_id()
        self.stop_token_ids = self._stop_token_ids()
        self._rope_index = getattr(model, "get_rope_index", None) or getattr(
            getattr(model, "model", None), "get_rope_index", None
        )
        self.closing = self._assistant_closing()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        attn_implementation: str | None = "sdpa",
        settings: GenerationSettings | None = None,
        decode: str = "auto",
    ) -> VLMPolicy:
        """Load a model and its processor from the local folder ``path`` (never downloads): a
        saved model, or a trainer's checkpoint folder (its ``model/`` inside). ``decode`` as
        in the constructor."""
        from transformers import AutoModelForImageTextToText

        path = Path(path)
        if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
            path = path / "model"
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"Expected a model folder with config.json, got {str(path)!r}. Give the local "
                "folder of a saved model (save_pretrained or a downloaded snapshot)."
            )
        if isinstance(dtype, str):
            if dtype not in DTYPES:
                raise ValueError(f"Expected dtype in {sorted(DTYPES)}, got {dtype!r}.")
            dtype = DTYPES[dtype]
        model = AutoModelForImageTextToText.from_pretrained(
            path, local_files_only=True, dtype=dtype, attn_implementation=attn_implementation
        )
        return cls(model.to(device).eval(), load_processor(path), settings, decode)

    # -- facts about the model ---------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live."""
        return next(self.model.parameters()).device

    @property
    def coords(self) -> str:
        """The env ``coords`` mode this model family writes: ``pixel`` or ``norm1000``."""
        return "norm1000" if self.model.config.model_type in NORM1000_MODELS else "pixel"

    @property
    def patch_factor(self) -> int:
        """The env ``patch_factor`` whose images this model's processor takes unresized."""
        return self.patch_size * self.merge_size

    def _pad_token_id(self) -> int:
        for token_id in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if token_id is not None:
                return int(token_id)
        return 0

    def _stop_token_ids(self) -> tuple[int, ...]:
        ids = {self.tokenizer.eos_token_id}
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
        end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if end is not None and end != self.tokenizer.unk_token_id:
            ids.add(end)
        return tuple(sorted(int(i) for i in ids if i is not None))

    # -- chat and tokens ---------------------------------------------------------------------

    def _render(self, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    @staticmethod
    def _user(text: str, n_images: int) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
        return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}

    def _assistant_closing(self) -> str:
        """The template's text after an assistant message's content (``<|im_end|>\\n`` for
        Qwen), found by rendering a sentinel assistant message."""
        head = [{"role": "system", "content": "s"}, self._user("q", 0)]
        closed = self._render([*head, {"role": "assistant", "content": _SENTINEL}], False)
        if closed.count(_SENTINEL) != 1:
            raise ValueError("The chat template does not render assistant messages verbatim.")
        return closed.split(_SENTINEL)[1]

    def prompt_segment(
        self, system_prompt: str, text: str, images: Sequence[np.ndarray]
    ) -> Segment:
        """The first prompt: system message, the question with its images, generation prompt."""
        messages = [{"role": "system", "content": system_prompt}, self._user(text, len(images))]
        return self.segment(self._render(messages, True), images)

    def observation_segment(
        self, text: str, images: Sequence[np.ndarray], *, last_token: int | None = None
    ) -> Segment:
        """The tokens that follow a model turn: what the chat template puts after an assistant
        message, less the token the model ended on (``last_token``, e.g. ``<|im_end|>``; the
        whole closing is inserted when the turn was cut), then the observation as a user
        message with its new images, then the next generation prompt."""
        head = [
            {"role": "system", "content": "s"},
            self._user("q", 0),
            {"role": "assistant", "content": _SENTINEL},
        ]
        before = self._render(head, False)
        after = self._render([*head, self._user(text, len(images))], True)
        if not after.startswith(before):
            raise ValueError("The chat template renders earlier messages differently later on.")
        closing = self.closing
        if last_token is not None:
            end = self.tokenizer.decode([last_token])
            if end and closing.startswith(end):
                closing = closing[len(end) :]
        return self.segment(closing + after[len(before) :], images)

    def encode_images(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel patches and ``(t, h, w)`` grids of the env's images, not resized again."""
        for k, image in enumerate(images, start=1):
            height, width = image.shape[:2]
            if height % self.patch_factor or width % self.patch_factor:
                raise ValueError(
                    f"Expected image sides that are multiples of {self.patch_factor}, got image "
                    f"{k} of {width}x{height}. Make the env with patch_factor="
                    f"{self.patch_factor} so its images suit this model's processor."
                )
        # The env hands out read-only arrays; the processor wraps them in tensors, which torch
        # only does silently for writeable memory.
        writeable = [i if i.flags.writeable else np.array(i) for i in map(np.asarray, images)]
        out = self.image_processor(images=writeable, do_resize=False, return_tensors="pt")
        grid = out["image_grid_thw"].long()
        for k, (image, (t, h, w)) in enumerate(zip(images, grid.tolist()), start=1):
            expected = (1, image.shape[0] // self.patch_size, image.shape[1] // self.patch_size)
            if (t, h, w) != expected:
                raise ImageTokenMismatch(
                    f"Expected grid {expected} for image {k} ({image.shape[1]}x{image.shape[0]}), "
                    f"got {(t, h, w)}: the image processor resized the image."
                )
        return out["pixel_values"], grid

    def segment(self, text: str, images: Sequence[np.ndarray]) -> Segment:
        """The tokens of rendered chat ``text`` holding one image placeholder per image, each
        placeholder expanded to its image's tokens, with the images' processor tensors."""
        pads = text.count(self.image_token)
        if pads != len(images):
            raise ImageTokenMismatch(
                f"Expected one image placeholder per image, got {pads} placeholders for "
                f"{len(images)} images in the rendered chat."
            )
        if not images:
            return Segment(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        pixel_values, grid = self.encode_images(images)
        pieces = text.split(self.image_token)
        counts = (grid.prod(-1) // self.merge_size**2).tolist()
        expanded = pieces[0] + "".join(
            self.image_token * n + piece for n, piece in zip(counts, pieces[1:])
        )
        ids = self.tokenizer(expanded, add_special_tokens=False)["input_ids"]
        return Segment(list(ids), pixel_values, grid)

    def check_sync(
        self,
        ids: Sequence[int] | torch.Tensor,
        pixel_values: torch.Tensor | None,
        image_grid_thw: torch.Tensor | None,
        images: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Raise :class:`ImageTokenMismatch` (with the counts) unless every image's run of
        placeholder tokens has exactly the length its grid implies, the pixel rows add up to the
        grids, and (given ``images``) every grid matches its image's size."""
        ids = torch.as_tensor(ids).view(-1)
        is_pad = ids == self.image_token_id
        runs = _runs(is_pad)
        grid = (
            torch.zeros(0, 3, dtype=torch.long)
            if image_grid_thw is None
            else image_grid_thw.long().cpu()
        )
        expected = (grid.prod(-1) // self.merge_size**2).tolist()
        rows = 0 if pixel_values is None else int(pixel_values.shape[0])
        problems = []
        if runs != expected:
            problems.append(
                f"placeholder runs {runs} (total {int(is_pad.sum())}) but the grids give "
                f"{expected} (total {sum(expected)}) for {len(expected)} image(s)"
            )
        if rows != int(grid.prod(-1).sum()):
            problems.append(f"{rows} pixel rows but the grids give {int(grid.prod(-1).sum())}")
        if images is not None:
            sizes = [
                (1, im.shape[0] // self.patch_size, im.shape[1] // self.patch_size) for im in images
            ]
            if sizes != [tuple(g) for g in grid.tolist()]:
                problems.append(f"grids {grid.tolist()} but the images give {sizes}")
        if problems:
            raise ImageTokenMismatch(
                "Image tokens and pixels are out of sync: " + "; ".join(problems)
            )

    # -- positions ---------------------------------------------------------------------------

    def positions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, grid: torch.Tensor | None
    ) -> torch.Tensor:
        """Rotary positions for a padded batch: multimodal (3, B, L) when the model has a
        ``get_rope_index`` (Qwen-VL family), plain (B, L) otherwise; pads get 0."""
        if self._rope_index is not None and grid is not None:
            position_ids, _ = self._rope_index(
                input_ids,
                mm_token_type_ids=(input_ids == self.image_token_id).int(),
                image_grid_thw=grid,
                attention_mask=attention_mask,
            )
            return position_ids
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if self._rope_index is not None:
            return positions.unsqueeze(0).expand(3, -1, -1)
        return positions

    def pad_batch(
        self, sequences: Sequence[Any], *, left: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Pad ``sequences`` (with ``ids``, ``pixel_values``, ``image_grid_thw``) into a batch."""
        length = max(len(s.ids) for s in sequences)
        input_ids = torch.full((len(sequences), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, s in enumerate(sequences):
            ids = torch.as_tensor(s.ids, dtype=torch.long)
            span = slice(length - len(ids), length) if left else slice(0, len(ids))
            input_ids[row, span] = ids
            attention_mask[row, span] = 1
        pixels = [s.pixel_values for s in sequences if s.pixel_values is not None]
        grids = [s.image_grid_thw for s in sequences if s.image_grid_thw is not None]
        device = self.device
        pixel_values = torch.cat(pixels).to(device, self.model.dtype) if pixels else None
        grid = torch.cat(grids).to(device) if grids else None
        return input_ids.to(device), attention_mask.to(device), pixel_values, grid

    # -- sampling ----------------------------------------------------------------------------

    def _scores(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """``log_softmax(logits / T)`` in fp32 over the tokens a model may write: the
        tokenizer's vocabulary (a checkpoint's padded rows beyond it excluded) less the vision
        placeholders. Sampling and :meth:`token_logprobs` share it, so their log-probs agree."""
        blocked, size = self._blocked, logits.shape[-1]
        if blocked is None or blocked.shape[0] != size or blocked.device != logits.device:
            # Built once per vocabulary size and device: indexing by a Python list every step
            # would copy the index to the device and wait for it.
            blocked = torch.zeros(size, dtype=torch.bool)
            blocked[self.vocab_limit :] = True
            blocked[self.banned_token_ids] = True
            self._blocked = blocked = blocked.to(logits.device)
        logits = logits.float().masked_fill(blocked, float("-inf"))
        return torch.log_softmax(logits / (temperature if temperature > 0 else 1.0), dim=-1)

    def choose_tokens(
        self,
        scores: torch.Tensor,
        *,
        generator: torch.Generator,
        settings: GenerationSettings,
        episodes: Sequence[int],
        turns: Sequence[int],
        generated: Sequence[Sequence[int]],
    ) -> torch.Tensor:
        """Pick the next token of every row from ``scores`` (B, V: tempered log-probs).

        Greedy at temperature 0, else top-p sampling with ``generator``. Subclasses may
        override this to script or constrain decoding (``episodes``, ``turns`` and ``generated``
        tell which episode, which turn and what the row wrote so far); the recorded log-prob is
        always the model's score of the chosen token.
        """
        return pick_tokens(scores, generator=generator, settings=settings)

    @torch.no_grad()
    def generate(
        self,
        sequences: Sequence[TurnInput],
        *,
        generator: torch.Generator,
        settings: GenerationSettings | None = None,
        cache: TurnCache | None = None,
        read_every: int | None = None,
        times: PhaseTimes | None = None,
    ) -> list[TurnOutput]:
        """Write the next turn of every sequence in one batched call.

        Without ``cache``, every sequence is prefilled whole (left padding) and the KV cache is
        dropped after the turn. With a :class:`TurnCache`, the first call fills it and each
        later one prefills only what each sequence gained since (the token its last turn ended
        on, then the new observation with its images) on top of the kept keys and values;
        sequences must be the earlier ones grown (same ``episode``), and episodes left out are
        dropped from the cache. Stop tokens and per-row limits are checked on the device; the
        chosen tokens are read back to the host every ``read_every`` steps (default
        :data:`READ_EVERY`, or 1 when a subclass overrides :meth:`choose_tokens` without
        :attr:`stateless_choice`, whose own state, e.g. a generator of its own, must see exactly
        the steps a token-by-token loop makes). Stop strings are checked at those reads, token
        by token, with the same outcome.
        ``times`` gets the seconds of the ``prefill`` and ``decode`` phases added.
        """
        times = times or PhaseTimes()
        settings = settings or self.settings
        if read_every is None:
            read_every = 1 if self._custom_choice() and not self.stateless_choice else READ_EVERY
        if read_every < 1:
            raise ValueError(f"Expected read_every >= 1, got {read_every!r}.")
        layer_types = getattr(self.model.config.get_text_config(), "layer_types", None) or ()
        sliding = "sliding_attention" in layer_types
        if sliding and cache is not None:
            cache.clear()  # a sliding window forgets keys: such models prefill whole every turn
            cache = None
        with times.phase("prefill", self.device):
            if cache is not None and len(cache):
                logits, past, attention_mask, start, padded = self._extend(sequences, cache)
            else:
                logits, past, attention_mask, start, padded = self._prefill(sequences)
        with times.phase("decode", self.device):
            prefilled = attention_mask.shape[1]
            stop_ids = torch.tensor(self.stop_token_ids, device=self.device, dtype=torch.long)
            turn = _Turn(self, sequences, settings, stop_ids)
            written = GeneratedTokens(turn)
            episodes = [s.episode for s in sequences]
            turns = [s.turn for s in sequences]
            choose = self.choose_tokens if self._custom_choice() else _default_choice
            steps = self._decode_steps(past, attention_mask, start, padded, sliding, turn.steps)
            states: dict[int, Any] = {}
            while True:
                step = turn.chosen
                scores = self._scores(logits, settings.temperature)
                sample_scores = scores
                if step < settings.min_new_tokens and len(stop_ids):
                    sample_scores = scores.index_fill(-1, stop_ids, float("-inf"))
                states[step] = generator.get_state()
                tokens = choose(
                    sample_scores,
                    generator=generator,
                    settings=settings,
                    episodes=episodes,
                    turns=turns,
                    generated=written,
                )
                if turn.finished:  # the hook read the tokens back: every row had already ended
                    break
                turn.record(tokens, scores.gather(-1, tokens[:, None]).squeeze(-1))
                if turn.chosen == turn.steps or turn.chosen % read_every == 0:
                    if turn.sync():
                        break
                    states.clear()  # a row goes on: the turn ends at a later step
                logits = steps(torch.where(turn.done, self.pad_token_id, tokens)[:, None])
            # Steps past the one where the last row ended were the reads' lag: rewind the
            # generator to where a token-by-token loop leaves it, and drop what they fed.
            last = max(len(ids) for ids in turn.generated)
            if last in states:
                generator.set_state(states[last])
            if cache is not None:
                past, attention_mask = steps.kept(last - 1)
                cache.keep(sequences, turn, past, attention_mask, prefilled, start, padded)
            return turn.outputs(last)

    def _decode_steps(
        self,
        past: Any,
        attention_mask: torch.Tensor,
        start: torch.Tensor,
        padded: bool,
        sliding: bool,
        new_tokens: int,
    ) -> _EagerSteps | Any:
        """The decode steps of one turn, static or eager as :attr:`decode` says (models with
        sliding-window layers and sharded parameters decode eagerly)."""
        static = self.decode == "static" or (self.decode == "auto" and self.device.type == "cuda")
        if static and not sliding and not _sharded(self.model) and static_cache_supported():
            if self._static is None:
                self._static = StaticDecoder(self.model, _cache_argument(self.model))
            return self._static.start(past, attention_mask, start, new_tokens)
        return _EagerSteps(self.model, past, attention_mask, start, padded, sliding)

    def _custom_choice(self) -> bool:
        """Whether a subclass overrides :meth:`choose_tokens`."""
        return type(self).choose_tokens is not VLMPolicy.choose_tokens

    def _forward_prefill(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past: Any,
        pixel_values: torch.Tensor | None,
        grid: torch.Tensor | None,
    ) -> torch.Tensor:
        """The last position's logits of a prefill of ``input_ids`` on top of ``past``."""
        kwargs: dict[str, Any] = {_cache_argument(self.model): past}
        if pixel_values is not None:
            kwargs |= {"pixel_values": pixel_values, "image_grid_thw": grid}
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        )
        return out.logits[:, -1]

    def _prefill(self, sequences: Sequence[TurnInput]) -> tuple[Any, ...]:
        """Prefill whole sequences (left padding) into a new cache."""
        from transformers import DynamicCache

        input_ids, attention_mask, pixel_values, grid = self.pad_batch(sequences, left=True)
        position_ids = self.positions(input_ids, attention_mask, grid)
        past = DynamicCache(config=self.model.config)
        logits = self._forward_prefill(
            input_ids, attention_mask, position_ids, past, pixel_values, grid
        )
        start = position_ids.amax(dim=-1, keepdim=True) + 1  # (3, B, 1) or (B, 1)
        padded = len({len(s.ids) for s in sequences}) > 1
        return logits, past, attention_mask, start, padded

    def _extend(self, sequences: Sequence[TurnInput], cache: TurnCache) -> tuple[Any, ...]:
        """Prefill only what each sequence gained since ``cache`` was kept: its ids beyond
        those cached and its images beyond those encoded, right-aligned in one block after the
        cached columns (padding inside the sequence is masked; positions go on from each row's
        own)."""
        cache.select([s.episode for s in sequences])
        parts = []
        for s, cached, images in zip(sequences, cache.lengths, cache.images):
            if len(s.ids) <= cached:
                raise ValueError(
                    f"Expected episode {s.episode}'s sequence to extend the {cached} cached "
                    f"ids, got {len(s.ids)} ids. Give each call the sequences of the last one, "
                    "grown, or a fresh TurnCache."
                )
            grid = s.image_grid_thw
            grid = None if grid is None or len(grid) <= images else grid[images:]
            pixels = None
            if grid is not None:
                skip = 0 if images == 0 else int(s.image_grid_thw[:images].prod(-1).sum())
                pixels = s.pixel_values[skip:]
            parts.append(Segment(list(s.ids[cached:]), pixels, grid))
        input_ids, new_mask, pixel_values, grid = self.pad_batch(parts, left=True)
        # Rotary positions are shift-invariant along a sequence (text and image runs alike),
        # so the appended part's are its own, offset by where each row's cached part ends.
        position_ids = self.positions(input_ids, new_mask, grid) + cache.next_position
        attention_mask = torch.cat([cache.mask, new_mask], dim=1)
        logits = self._forward_prefill(
            input_ids, attention_mask, position_ids, cache.past, pixel_values, grid
        )
        start = position_ids.amax(dim=-1, keepdim=True) + 1
        padded = cache.padded or len({len(p.ids) for p in parts}) > 1
        return logits, cache.past, attention_mask, start, padded

    def _hit_stop_string(self, ids: list[int], settings: GenerationSettings, longest: int) -> bool:
        tail = self.tokenizer.decode(ids[-(longest + 2) :], skip_special_tokens=False)
        return any(s in tail for s in settings.stop_strings)

    # -- scoring -----------------------------------------------------------------------------

    def token_logprobs(
        self,
        trajectories: Sequence[Any],
        *,
        temperature: float | None = None,
        batch_size: int | None = None,
    ) -> list[torch.Tensor]:
        """Log-probs of the generated tokens of each trajectory under the current weights.

        One forward pass per batch (right padding) over each record's full ``input_ids`` with
        all its images. Returns, per trajectory, a float32 tensor as long as its ids: entry ``t``
        is ``log p(ids[t] | ids[:t])`` where ``mask[t] == 1``, else 0. Gradients flow when
        enabled (wrap in ``torch.no_grad()`` to only score).
        """
        temperature = self.settings.temperature if temperature is None else temperature
        batch_size = batch_size or len(trajectories)
        results: list[torch.Tensor] = []
        for start in range(0, len(trajectories), batch_size):
            results += self._score_batch(trajectories[start : start + batch_size], temperature)
        return results

    def _score_batch(self, trajectories: Sequence[Any], temperature: float) -> list[torch.Tensor]:
        for t in trajectories:
            self.check_sync(t.ids, t.pixel_values, t.image_grid_thw)
        input_ids, attention_mask, pixel_values, grid = self.pad_batch(trajectories, left=False)
        position_ids = self.positions(input_ids, attention_mask, grid)
        targets = torch.zeros_like(input_ids, dtype=torch.bool)
        for row, t in enumerate(trajectories):
            targets[row, : len(t.ids)] = torch.as_tensor(
                t.mask, dtype=torch.bool, device=targets.device
            )
        if targets[:, 0].any():
            raise ValueError(
                "Expected a prompt before the first generated token, got mask[0] == 1."
            )
        keep = torch.zeros_like(targets)
        keep[:, :-1] = targets[:, 1:]  # logits at t - 1 predict the token at t
        inputs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "use_cache": False,
        }
        if pixel_values is not None:
            inputs |= {"pixel_values": pixel_values, "image_grid_thw": grid}
        logits = _kept_logits(self.model, keep, inputs)
        scores = self._scores(logits, temperature)  # (N, V): the kept positions, row-major
        picked = scores.gather(-1, input_ids[targets][:, None]).squeeze(-1)
        full = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
        full = full.masked_scatter(targets, picked)
        return [full[row, : len(t.ids)] for row, t in enumerate(trajectories)]


_LOGITS_MASK: dict[type, bool] = {}
"""Per model class, whether its forward takes a boolean ``logits_to_keep`` mask (transformers
5.21 on); learnt on its first scoring call. An entry set to False forces the fallback."""


def _kept_logits(model: Any, keep: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor:
    """The logits (N, V) of ``model`` at the positions where the (B, L) bool ``keep`` is True,
    row-major, for the forward arguments ``inputs``.

    A model that takes the mask as ``logits_to_keep`` slices its hidden states itself; older
    transformers index that argument along the sequence only (``IndexError``). For those the
    forward runs without it and a pre-hook on the output projection hands it only the kept
    hidden states: the same numbers, and (B, L, V) logits never exist. Either way the call goes
    through ``model`` itself, so a DDP or FSDP wrapper sees its forward.
    """
    base = getattr(model, "module", model)  # DDP's wrapped model; FSDP2 shards in place
    kind = type(base)
    if _LOGITS_MASK.get(kind, True):
        try:
            logits = model(**inputs, logits_to_keep=keep).logits
        except IndexError:
            logits = None
        if logits is not None and logits.ndim == 2:
            _LOGITS_MASK[kind] = True
            return logits

    def gather(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0]
        if hidden.shape[:2] != keep.shape:
            raise RuntimeError(
                f"Expected the output projection to see hidden states of shape "
                f"{tuple(keep.shape)} + (hidden,), got {tuple(hidden.shape)}."
            )
        return (hidden[keep], *args[1:])

    handle = base.get_output_embeddings().register_forward_pre_hook(gather)
    try:
        logits = model(**inputs).logits
    finally:
        handle.remove()
    _LOGITS_MASK[kind] = False
    return logits


def _runs(flags: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor, in order."""
    runs, current = [], 0
    for flag in flags.tolist():
        if flag:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


class _Turn:
    """One turn of a batch being decoded: on the device, the chosen tokens and their log-probs,
    which rows have ended (on a stop token or their limit) and how many tokens each wrote; on
    the host, the tokens read back so far and why each row ended."""

    def __init__(
        self,
        policy: VLMPolicy,
        sequences: Sequence[TurnInput],
        settings: GenerationSettings,
        stop_ids: torch.Tensor,
    ):
        limits = [s.max_new_tokens for s in sequences]
        if min(limits) < 1:
            raise ValueError(f"Expected max_new_tokens >= 1 for every sequence, got {limits}.")
        n, device = len(sequences), stop_ids.device
        self.policy, self.settings, self.stop_ids = policy, settings, stop_ids
        self.steps = max(limits)
        self.limits = torch.tensor(limits, device=device)
        self.tokens = torch.zeros((n, self.steps), dtype=torch.long, device=device)
        self.scores = torch.zeros((n, self.steps), dtype=torch.float32, device=device)
        self.done = torch.zeros(n, dtype=torch.bool, device=device)
        self.stopped = torch.zeros(n, dtype=torch.bool, device=device)
        self.lengths = torch.zeros(n, dtype=torch.long, device=device)
        self.chosen = 0
        """Steps whose tokens are in the buffers."""
        self.read = 0
        """Steps read back to the host."""
        self.generated: list[list[int]] = [[] for _ in range(n)]
        self.finish: list[str | None] = [None] * n
        self.finished = False
        """Whether every row had ended at the last read."""
        self.longest_stop = max((len(s) for s in settings.stop_strings), default=0)

    def record(self, tokens: torch.Tensor, token_scores: torch.Tensor) -> None:
        """Keep the tokens chosen at this step; rows that end on them end (on the device)."""
        step = self.chosen
        self.tokens[:, step] = tokens
        self.scores[:, step] = token_scores
        alive = ~self.done
        stop = (tokens[:, None] == self.stop_ids).any(-1)
        ends = alive & (stop | (self.limits <= step + 1))
        self.stopped |= ends & stop
        self.lengths += alive
        self.done |= ends
        self.chosen += 1

    def sync(self) -> bool:
        """Read back the steps not read yet (one transfer), check stop strings token by token as
        a token-by-token loop would (after stop tokens, before limits), end the rows that hit
        one on the device too, and say whether every row has ended."""
        if self.read == self.chosen:
            return self.finished
        state = torch.cat(
            [
                self.tokens[:, self.read : self.chosen],
                self.lengths[:, None],
                self.stopped[:, None].long(),
                self.done[:, None].long(),
            ],
            dim=1,
        ).tolist()
        stop_ids = self.policy.stop_token_ids
        for row, (*tokens, length, stopped, done) in enumerate(state):
            if self.finish[row] is not None:
                continue
            written = self.generated[row]
            for token in tokens[: length - len(written)]:
                written.append(token)
                if (
                    self.longest_stop
                    and token not in stop_ids
                    and self.policy._hit_stop_string(written, self.settings, self.longest_stop)
                ):
                    self.finish[row] = "stop_string"
                    self.done[row] = True
                    self.lengths[row] = len(written)
                    break
            else:
                if done:
                    self.finish[row] = "stop" if stopped else "length"
        self.read = self.chosen
        self.finished = all(f is not None for f in self.finish)
        return self.finished

    def outputs(self, steps: int) -> list[TurnOutput]:
        """Every row's turn, once all have ended within ``steps`` steps."""
        logprobs = self.scores[:, :steps].tolist()
        decode = self.policy.tokenizer.decode
        return [
            TurnOutput(
                ids=ids,
                logprobs=logprobs[row][: len(ids)],
                text=decode(ids, skip_special_tokens=True),
                finish=self.finish[row] or "length",
            )
            for row, ids in enumerate(self.generated)
        ]


class GeneratedTokens(Sequence):
    """What each row has written so far this turn, as :meth:`VLMPolicy.generate` hands it to
    :meth:`VLMPolicy.choose_tokens` (``generated``): row ``r``'s tokens are read back from the
    device when first looked at in a step, which waits for it. :attr:`step` needs no read."""

    def __init__(self, turn: _Turn):
        self._turn = turn

    @property
    def step(self) -> int:
        """Tokens the batch has chosen this turn: the length of every row not yet ended."""
        return self._turn.chosen

    def __len__(self) -> int:
        return len(self._turn.generated)

    def __getitem__(self, row: Any) -> Any:
        self._turn.sync()
        return self._turn.generated[row]


class _EagerSteps:
    """Eager decoding: every step grows the ``DynamicCache`` and the 2-D mask by one column."""

    def __init__(
        self,
        model: Any,
        past: Any,
        attention_mask: torch.Tensor,
        start: torch.Tensor,
        padded: bool,
        sliding: bool,
    ):
        self.model, self.past, self.mask, self.position = model, past, attention_mask, start
        self.padded, self.sliding, self.fed = padded, sliding, 0

    def __call__(self, feed: torch.Tensor) -> torch.Tensor:
        """Feed ``feed`` (B, 1); the next logits (B, V)."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(feed), 1)], 1)
        out = self.model(
            input_ids=feed,
            attention_mask=_decode_mask(self.mask, self.padded, self.sliding),
            position_ids=self.position,
            use_cache=True,
            **{_cache_argument(self.model): self.past},
        )
        self.position = self.position + 1
        self.fed += 1
        return out.logits[:, -1]

    def kept(self, tokens: int) -> tuple[Any, torch.Tensor]:
        """The cache and 2-D mask of the prefill and the first ``tokens`` fed tokens."""
        extra = self.fed - tokens
        if extra:
            self.past.crop(-extra)
            self.mask = self.mask[:, :-extra]
        return self.past, self.mask


def _sharded(model: Any) -> bool:
    """Whether the model's parameters are sharded (FSDP2's DTensors), whose storage a captured
    step cannot hold on to."""
    return hasattr(next(model.parameters()), "device_mesh")


def _decode_mask(attention_mask: torch.Tensor, padded: bool, sliding: bool) -> torch.Tensor | None:
    """The attention mask of one decoding step: none while no column is padding, else each
    row's padding as the 4-D boolean mask transformers builds from ``attention_mask`` for a
    single query. Either is what transformers would make of the 2-D mask, without looking at
    its values on the host (a wait for the GPU every step). Sliding-window models get the 2-D
    mask: their layers need masks of their own."""
    if sliding:
        return attention_mask
    if not padded:
        return None
    return attention_mask[:, None, None, :].bool()


_CACHE_ARGUMENT: dict[type, str] = {}


def _cache_argument(model: Any) -> str:
    """The forward's name for the KV cache: ``cache`` from transformers 5.24 (which deprecates
    ``past_key_values``), ``past_key_values`` before."""
    kind = type(getattr(model, "module", model))
    if kind not in _CACHE_ARGUMENT:
        parameters = inspect.signature(kind.forward).parameters
        _CACHE_ARGUMENT[kind] = "cache" if "cache" in parameters else "past_key_values"
    return _CACHE_ARGUMENT[kind]


def load_processor(path: str | Path) -> Any:
    """The processor saved in the folder ``path``: the model's own class where it can be built,
    else its tokenizer and image processor (:class:`ImageTextProcessor`). Never downloads."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        if hasattr(processor, "tokenizer") and hasattr(processor, "image_processor"):
            return processor
    except (ImportError, AttributeError, TypeError, ValueError, OSError):
        pass
    return ImageTextProcessor(
        AutoTokenizer.from_pretrained(path, local_files_only=True),
        AutoImageProcessor.from_pretrained(path, local_files_only=True),
    )


__all__ = [
    "READ_EVERY",
    "GeneratedTokens",
    "GenerationSettings",
    "ImageTextProcessor",
    "ImageTokenMismatch",
    "Segment",
    "TurnCache",
    "TurnOutput",
    "VLMPolicy",
    "load_processor",
    "pick_tokens",
    "sampling_probs",
]
