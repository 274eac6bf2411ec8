"""Play DrawSpatial-v0 against a served model: any OpenAI-compatible chat-completions server.

:class:`ChatClient` sends one ``POST {api_base}/chat/completions`` request, with retries and
exponential backoff on 408, 429, 5xx and connection errors, and a timeout per attempt.
:class:`ServedAgent` keeps the chat of one episode: the env's system prompt, the question with its
images as ``data:`` URLs, then the model's turns and the env's observations (new images and
messages). :func:`evaluate_served` plays episodes on several threads at once, one request in
flight per thread, and returns records in the ``results.jsonl`` schema of
:func:`agents.evaluate.play_episode`, each with the token ``usage`` the server reported.
:func:`run_served_eval` is the body of ``drawenv eval --api-base URL --model NAME``.

Only the standard library talks to the server (urllib, threads): no torch, no client package.
"""

from __future__ import annotations

import base64
import functools
import http.client
import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from agents.base import Agent
from agents.evaluate import evaluate_suites, play_episode, print_progress, report
from drawenv.env import DrawSpatialEnv
from drawenv.errors import DrawEnvError

IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
"""``--image-format`` values and the PIL format each encodes to."""

MAX_BACKOFF = 60.0
"""Longest wait between two attempts, in seconds (a server's ``Retry-After`` included)."""

START_EXAMPLE = "`vllm serve Qwen/Qwen2.5-VL-3B-Instruct --port 8000`"


@dataclass
class Completion:
    """One answer of the server: the text, why it ended, and the token counts it reported."""

    text: str
    finish: str | None
    usage: dict[str, int] | None
    """``prompt_tokens`` and ``completion_tokens``; None when the server sent no ``usage``."""


def data_url(image: np.ndarray, image_format: str = "png") -> str:
    """``image`` (H, W, 3 uint8) as a base64 ``data:`` URL, PNG (lossless) or JPEG."""
    buffer = io.BytesIO()
    pil_format = IMAGE_FORMATS[image_format]
    options = {"quality": 90} if pil_format == "JPEG" else {"compress_level": 1}
    Image.fromarray(np.asarray(image)).convert("RGB").save(buffer, format=pil_format, **options)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{image_format};base64,{encoded}"


def user_message(
    images: Sequence[np.ndarray], text: str, image_format: str = "png"
) -> dict[str, Any]:
    """A user chat message: the images first (as ``image_url`` parts), then the text."""
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": data_url(image, image_format)}}
        for image in images
    ]
    parts.append({"type": "text", "text": text})
    return {"role": "user", "content": parts}


class ChatClient:
    """Chat completions of ``model`` at ``api_base`` (the API root, e.g.
    ``http://127.0.0.1:8000/v1``); safe to share between threads.

    Args:
        api_base: the server's API root; requests go to ``{api_base}/chat/completions``.
        model: the model name the server knows (its ``/models`` list).
        api_key: sent as ``Authorization: Bearer …``; default the ``OPENAI_API_KEY`` variable.
        timeout: seconds one attempt may take.
        retries: further attempts after a 408, 429, 5xx, a timeout or a connection error.
        backoff: seconds before the first retry, doubled for each one after (at most
            :data:`MAX_BACKOFF`); a ``Retry-After`` header, when sent, is waited for instead.
        max_tokens: most tokens per answer (``max_tokens`` of the request); None: the server's.
        temperature: sampling temperature of the request; None: the server's default.
    """

    def __init__(
        self,
        api_base: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 1.0,
        max_tokens: int | None = 1024,
        temperature: float | None = 0.0,
    ):
        if not api_base.startswith(("http://", "https://")):
            raise DrawEnvError(
                f"Invalid `--api-base`: expected an http:// or https:// URL, got {api_base!r}, "
                "e.g. `--api-base http://127.0.0.1:8000/v1`."
            )
        self.api_base = api_base.rstrip("/")
        self.url = f"{self.api_base}/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.attempts = 0
        """Requests sent so far, retries included."""
        self._lock = threading.Lock()

    def body(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The JSON body of a request for the next assistant turn of ``messages``."""
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def complete(self, messages: list[dict[str, Any]]) -> Completion:
        """The next assistant turn of ``messages``; raises :class:`DrawEnvError` with the fix
        when the server cannot be reached or refuses the request."""
        data = json.dumps(self.body(messages)).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            with self._lock:
                self.attempts += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                return self._parse(raw)
            except urllib.error.HTTPError as error:
                detail = _detail(error)
                if not _retryable(error.code) or attempt == self.retries:
                    raise self._refused(error.code, detail, attempt + 1) from None
                wait = _retry_after(error.headers.get("Retry-After"))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                if attempt == self.retries:
                    raise self._unreachable(error, attempt + 1) from None
                wait = None
            delay = self.backoff * 2**attempt if wait is None else wait
            time.sleep(min(delay, MAX_BACKOFF))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _parse(self, raw: bytes) -> Completion:
        try:
            reply = json.loads(raw)
            choice = reply["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise DrawEnvError(
                f"The server at `--api-base {self.api_base}` answered {self.url} with something "
                f"that is not a chat completion: {raw[:300]!r}. Give the API root of an "
                "OpenAI-compatible server (the URL that /chat/completions follows)."
            ) from None
        text = message.get("content") or ""
        # Servers that split reasoning off (vLLM's reasoning parsers, hosted reasoning models)
        # return it beside the content; the env judges the whole turn, so it is put back.
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning and "<think>" not in text:
            text = f"<think>{reasoning}</think>{text}"
        usage = reply.get("usage")
        counts = None
        if isinstance(usage, dict):
            counts = {
                key: int(usage.get(key) or 0) for key in ("prompt_tokens", "completion_tokens")
            }
        return Completion(text=str(text), finish=choice.get("finish_reason"), usage=counts)

    def _unreachable(self, error: Exception, attempts: int) -> DrawEnvError:
        reason = getattr(error, "reason", None) or error
        tried = f"{reason}; {attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
            return DrawEnvError(
                f"Could not reach the chat-completions server at `--api-base {self.api_base}` "
                f"({tried}). Start the server first (e.g. {START_EXAMPLE}) and give its API "
                "root, e.g. `--api-base http://127.0.0.1:8000/v1`."
            )
        return DrawEnvError(
            f"The chat-completions server at `--api-base {self.api_base}` did not answer "
            f"({tried}). Check that it is running and serving `--model {self.model}`; for a "
            "slow server raise `--timeout` (seconds per request) or `--retries`."
        )

    def _refused(self, code: int, detail: str, attempts: int) -> DrawEnvError:
        where = f"The server at `--api-base {self.api_base}` answered HTTP {code}"
        if code in (401, 403):
            fix = "Set OPENAI_API_KEY to the server's API key."
        elif code == 404:
            fix = (
                "Check that `--api-base` is the API root (the URL that /chat/completions "
                f"follows, e.g. http://127.0.0.1:8000/v1) and that `--model {self.model}` is a "
                f"model it serves ({self.api_base}/models lists them)."
            )
        elif _retryable(code):
            fix = (
                f"It still failed after {attempts} attempts: raise `--retries` or lower "
                "`--concurrency`."
            )
        else:
            fix = "The request was refused as sent; the server's message above says why."
        return DrawEnvError(f"{where}: {detail or '(no message)'}. {fix}")


def _retryable(code: int) -> bool:
    return code in (408, 429) or code >= 500


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header given in seconds (an HTTP date is ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _detail(error: urllib.error.HTTPError) -> str:
    """The server's error message, from an OpenAI-style ``{"error": {"message"}}`` body or the
    start of the body."""
    try:
        raw = error.read()
    except OSError:
        return ""
    try:
        body = json.loads(raw)
        message = body.get("error", body)
        message = message.get("message", message) if isinstance(message, dict) else message
        return str(message)[:500]
    except (ValueError, AttributeError):
        return raw[:500].decode("utf-8", "replace").strip()


class ServedAgent(Agent):
    """A served model playing one episode at a time: the chat so far, one request per turn.

    The chat is the env's system prompt, the question with the task's images, then alternating
    assistant turns and user observations (the images the turn drew, then the env's message).
    ``completions`` holds the server's answer of each turn of the current episode.
    """

    def __init__(self, client: ChatClient, image_format: str = "png"):
        self.client = client
        self.name = client.model
        self.image_format = image_format
        self.messages: list[dict[str, Any]] = []
        self.completions: list[Completion] = []

    def begin(self, obs: dict[str, Any], info: dict[str, Any], task: Any) -> None:
        self.messages = [
            {"role": "system", "content": info["system_prompt"]},
            user_message(obs["images"], obs["text"], self.image_format),
        ]
        self.completions = []

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> str:
        if self.turn > 0:
            new = [obs["images"][k - 1] for k in info["new_image_indices"]]
            self.messages.append(user_message(new, obs["text"], self.image_format))
        completion = self.client.complete(self.messages)
        self.messages.append({"role": "assistant", "content": completion.text})
        self.completions.append(completion)
        self.turn += 1
        return completion.text


def add_usage(record: dict[str, Any], completions: Sequence[Completion]) -> dict[str, Any]:
    """Put each turn's ``finish`` and ``usage`` into ``record``, and the episode's totals:
    ``usage`` (``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``requests``; None
    when the server reported none) and ``n_generated_tokens``."""
    for turn, completion in zip(record["turns"], completions):
        turn["finish"] = completion.finish
        turn["usage"] = completion.usage
    reported = [c.usage for c in completions if c.usage is not None]
    usage = None
    if reported:
        prompt = sum(u["prompt_tokens"] for u in reported)
        generated = sum(u["completion_tokens"] for u in reported)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": generated,
            "total_tokens": prompt + generated,
            "requests": len(completions),
        }
    record["usage"] = usage
    record["n_generated_tokens"] = usage["completion_tokens"] if usage else None
    return record


def evaluate_served(
    client: ChatClient,
    *,
    task: Any = "mixed",
    episodes: int = 10,
    seed: int = 0,
    concurrency: int = 8,
    image_format: str = "png",
    image_dir: Path | None = None,
    first_episode: int = 0,
    progress: bool = False,
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """Play ``episodes`` episodes (seeds ``seed, seed + 1, …``; item ``i`` of a finite source)
    on ``concurrency`` threads, each with its own env and one request in flight; records in
    episode order, as :func:`agents.evaluate.play_episode` writes them plus the token usage
    (:func:`add_usage`)."""
    local = threading.local()

    def env() -> DrawSpatialEnv:
        if not hasattr(local, "env"):
            local.env = DrawSpatialEnv(task=task, **env_kwargs)
        return local.env

    finite = DrawSpatialEnv(task=task, **env_kwargs).source.size is not None

    def play(i: int) -> dict[str, Any]:
        agent = ServedAgent(client, image_format)
        record = play_episode(
            env(),
            agent,
            seed=seed + i,
            index=i if finite else None,
            image_dir=image_dir,
            episode=first_episode + i,
        )
        return add_usage(record, agent.completions)

    results: dict[int, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {pool.submit(play, i): i for i in range(episodes)}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if progress:
                    print_progress(f"{client.model} on {task}", len(results), episodes)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return [results[i] for i in range(episodes)]


def usage_table(results: Sequence[dict[str, Any]]) -> str:
    """Token totals over ``results``: requests, prompt and completion tokens, per episode."""
    usages = [r["usage"] for r in results if r.get("usage")]
    if not usages:
        return "tokens: the server reported no usage"
    requests = sum(u["requests"] for u in usages)
    prompt = sum(u["prompt_tokens"] for u in usages)
    generated = sum(u["completion_tokens"] for u in usages)
    n = len(usages)
    return (
        f"tokens: {requests} requests, {prompt} prompt + {generated} completion "
        f"({prompt / n:.0f} + {generated / n:.0f} per episode)"
    )


def run_served_eval(
    api_base: str,
    model: str,
    *,
    suites: Sequence[Any],
    episodes: int = 20,
    seed: int = 0,
    out: Path | None = None,
    concurrency: int = 8,
    timeout: float = 120.0,
    retries: int = 4,
    max_tokens: int | None = 1024,
    temperature: float | None = 0.0,
    image_format: str = "png",
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """Evaluate the served ``model`` on every suite, print the summary and token tables, and
    with ``out`` write ``results.jsonl``, images and the viewer."""
    client = ChatClient(
        api_base,
        model,
        timeout=timeout,
        retries=retries,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    play = functools.partial(
        evaluate_served,
        client,
        episodes=episodes,
        seed=seed,
        concurrency=concurrency,
        image_format=image_format,
        **env_kwargs,
    )
    results = evaluate_suites(play, suites, out)
    report(results, out, usage_table(results))
    return results


__all__ = [
    "ChatClient",
    "Completion",
    "ServedAgent",
    "add_usage",
    "data_url",
    "evaluate_served",
    "run_served_eval",
    "usage_table",
    "user_message",
]
