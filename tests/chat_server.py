"""A small OpenAI-compatible chat-completions server around a local model folder, for tests.

It serves ``POST /v1/chat/completions`` (text and ``image_url`` parts with ``data:`` URLs) with
the repository's own :class:`~agents.vlm.policy.VLMPolicy`, and ``GET /v1/models``. It listens
on 127.0.0.1 only and prints ``listening on http://127.0.0.1:PORT/v1`` once ready::

    PYTHONPATH=. python tests/chat_server.py --model /tmp/tiny-vlm --port 8000

Test knobs: ``--write TEXT`` (repeatable) steers the model's token choices: a chat with ``t``
assistant messages so far gets the ``t + 1``-th text (the last one once they run out).
``--reasoning`` returns a turn's leading ``<think>…</think>`` as ``reasoning_content`` beside the
rest (as vLLM's reasoning parsers do). ``--fail-first N`` answers the first N chat requests with
HTTP 503. ``--api-key KEY`` answers requests without ``Authorization: Bearer KEY`` with HTTP
401. ``--delay S`` holds every chat request S seconds before answering it (so concurrent
requests overlap). ``GET /v1/stats`` returns what was served: requests, failures, the most
requests in flight at once, images received and the tokens reported in ``usage``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import torch
from PIL import Image

from agents.vlm.policy import GenerationSettings, TurnInput, VLMPolicy


class SteeredPolicy(VLMPolicy):
    """The model, its token choices steered to write ``texts[turn]`` (then ``texts[-1]``)."""

    texts: tuple[str, ...] = ()

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        picks = []
        for turn, done in zip(turns, generated):
            text = self.texts[min(turn, len(self.texts) - 1)]
            ids = [*self.tokenizer(text, add_special_tokens=False)["input_ids"]]
            ids.append(self.stop_token_ids[0])
            picks.append(ids[min(len(done), len(ids) - 1)])
        return torch.tensor(picks, device=scores.device)


class ChatModel:
    """A :class:`VLMPolicy` answering chat-completions bodies, one at a time."""

    def __init__(
        self,
        path: str,
        name: str,
        max_tokens: int,
        texts: tuple[str, ...] = (),
        reasoning: bool = False,
    ):
        self.reasoning = reasoning
        torch.set_num_threads(1)
        self.policy = (SteeredPolicy if texts else VLMPolicy).from_pretrained(path)
        self.policy.texts = texts
        self.name = name
        self.max_tokens = max_tokens
        self.lock = threading.Lock()

    def image(self, url: str) -> np.ndarray:
        """A ``data:`` URL's image, cropped to sides that are multiples of the patch factor."""
        if not url.startswith("data:image/"):
            raise ValueError(f"expected a data:image/ URL, got {url[:40]!r}")
        raw = base64.b64decode(url.split(",", 1)[1])
        image = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        f = self.policy.patch_factor
        height, width = (max(f, side // f * f) for side in image.shape[:2])
        if image.shape[0] < height or image.shape[1] < width:
            image = np.asarray(Image.fromarray(image).resize((width, height)))
        return np.ascontiguousarray(image[:height, :width])

    def chat(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
        """The messages in the chat template's shape, and their images in order."""
        chat, images = [], []
        for message in messages:
            content = message.get("content") or ""
            if isinstance(content, str):
                chat.append({"role": message["role"], "content": content})
                continue
            parts = []
            for part in content:
                if part["type"] == "image_url":
                    images.append(self.image(part["image_url"]["url"]))
                    parts.append({"type": "image"})
                elif part["type"] == "text":
                    parts.append({"type": "text", "text": part["text"]})
            chat.append({"role": message["role"], "content": parts})
        return chat, images

    def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The chat completion of ``body`` and how many images it held."""
        chat, images = self.chat(body["messages"])
        policy = self.policy
        text = policy.tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=True
        )
        segment = policy.segment(text, images)
        limit = int(body.get("max_tokens") or self.max_tokens)
        settings = GenerationSettings(
            temperature=float(body.get("temperature", 1.0)), max_new_tokens=limit
        )
        turns = sum(message["role"] == "assistant" for message in chat)
        turn = TurnInput(
            segment.ids, segment.pixel_values, segment.image_grid_thw, limit, turn=turns
        )
        with self.lock:
            generator = torch.Generator().manual_seed(int(body.get("seed", 0)))
            out = policy.generate([turn], generator=generator, settings=settings)[0]
        usage = {
            "prompt_tokens": len(segment.ids),
            "completion_tokens": len(out.ids),
            "total_tokens": len(segment.ids) + len(out.ids),
        }
        message = {"role": "assistant", "content": out.text}
        head, sep, rest = out.text.partition("</think>")
        if self.reasoning and sep and head.startswith("<think>"):
            message = {**message, "content": rest, "reasoning_content": head[len("<think>") :]}
        reply = {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "length" if out.finish == "length" else "stop",
                }
            ],
            "usage": usage,
        }
        return reply, len(images)


class Stats:
    """What the server did, for ``GET /v1/stats``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values = {
            "requests": 0,
            "failed": 0,
            "in_flight": 0,
            "peak_in_flight": 0,
            "images": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }

    def add(self, **amounts: int) -> dict[str, int]:
        with self.lock:
            for key, amount in amounts.items():
                self.values[key] += amount
            self.values["peak_in_flight"] = max(
                self.values["peak_in_flight"], self.values["in_flight"]
            )
            return dict(self.values)


def handler(
    model: ChatModel, stats: Stats, fail_first: int, delay: float, api_key: str | None = None
) -> type:
    """The request handler class of one server."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                self.send(200, {"object": "list", "data": [{"id": model.name, "object": "model"}]})
            elif self.path == "/v1/stats":
                self.send(200, stats.add())
            else:
                self.send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if self.path != "/v1/chat/completions":
                self.send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if api_key and self.headers.get("Authorization") != f"Bearer {api_key}":
                self.send(401, {"error": {"message": "invalid API key"}})
                return
            if body.get("model") != model.name:
                self.send(404, {"error": {"message": f"model {body.get('model')!r} not found"}})
                return
            count = stats.add(requests=1, in_flight=1)["requests"]
            try:
                if count <= fail_first:
                    stats.add(failed=1)
                    self.send(503, {"error": {"message": "overloaded, try again"}})
                    return
                time.sleep(delay)
                try:
                    reply, images = model.complete(body)
                except Exception as error:  # a server answers 500 rather than hanging up
                    self.send(500, {"error": {"message": f"{type(error).__name__}: {error}"}})
                    return
                stats.add(images=images, **{k: reply["usage"][k] for k in _TOKENS})
                self.send(200, reply)
            finally:
                stats.add(in_flight=-1)

    return Handler


_TOKENS = ("prompt_tokens", "completion_tokens")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a local model folder")
    parser.add_argument("--name", default="tiny", help="the model name clients ask for")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    parser.add_argument("--max-tokens", type=int, default=64, help="default max_tokens")
    parser.add_argument("--write", action="append", default=[], help="steer turns to TEXT")
    parser.add_argument("--reasoning", action="store_true", help="split <think> off")
    parser.add_argument("--fail-first", type=int, default=0, help="answer these with 503")
    parser.add_argument("--api-key", help="require this key")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to hold each request")
    args = parser.parse_args(argv)
    model = ChatModel(args.model, args.name, args.max_tokens, tuple(args.write), args.reasoning)
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), handler(model, Stats(), args.fail_first, args.delay, args.api_key)
    )
    print(f"listening on http://127.0.0.1:{server.server_port}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
