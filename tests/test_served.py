"""``drawenv eval --api-base URL --model NAME`` against real local chat-completions servers.

Each server is a real process on 127.0.0.1 started here: ``tests/chat_server.py`` around the tiny
random Qwen2.5-VL (``agents/vlm/testing.py``), steered to draw so that episodes run several turns
with drawn images sent back. Nothing is mocked: the client talks HTTP to the process, which runs
the model on the images it decoded from the requests.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.cli import main
from agents.served import ChatClient, evaluate_served
from drawenv.actions import Box, Draw
from drawenv.errors import DrawEnvError
from drawenv.protocol import get_protocol
from tests.test_viewer import chromium, dom_rows, dump_dom  # noqa: F401  (chromium: a fixture)

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "tests" / "chat_server.py"

FORMAT = get_protocol("vilasr").format
DRAWS = [
    FORMAT(Draw([Box(1, (10, 10, 60, 60), "a")], thought="mark it")),
    FORMAT(Draw([Box(2, (20, 20, 80, 70), "b")], thought="again")),
    FORMAT(Draw([Box(3, (5, 30, 50, 90), "c")], thought="once more")),
]
"""What the steered model writes on turns 1, 2, 3: each draws on the newest image."""


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    from agents.vlm.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("served") / "tiny")


class Server:
    """A ``tests/chat_server.py`` process; ``url`` is its API root."""

    def __init__(self, model: Path, *args: str):
        command = [sys.executable, str(SERVER), "--model", str(model), "--port", "0", *args]
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        # A file, not a pipe: a pipe left unread could fill and block the server.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        line = _read_line(self.process, self.log, timeout=180)
        assert line.startswith("listening on http://127.0.0.1:"), line
        self.url = line.split()[-1]

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=30) as response:
            return json.load(response)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.process.stdout.close()
        self.log.close()


def _read_line(process: subprocess.Popen, log: Any, timeout: float) -> str:
    """The first stdout line of ``process``; fails with its log when it ends or stays silent."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))
    reader.start()
    reader.join(timeout)
    if not lines or not lines[0]:
        process.kill()
        process.wait(timeout=30)
        log.seek(0)
        raise AssertionError(f"the server did not start: {log.read()[-3000:]}")
    return lines[0].strip()


@pytest.fixture
def server(tiny_folder, request) -> Iterator[Server]:
    """A server with the options of ``@pytest.mark.parametrize("server", [[...]], indirect)``."""
    started = Server(tiny_folder, *getattr(request, "param", ()))
    yield started
    started.stop()


def steering(*texts: str) -> list[str]:
    return [arg for text in texts for arg in ("--write", text)]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def doc_commands(block: int) -> list[list[str]]:
    """The commands of the ``block``-th bash block of docs/integrations.md's served-model
    section, split as a shell would (line continuations joined, a trailing ``&`` dropped)."""
    section = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = section.split("\n## Served models\n", 1)[1]
    code = re.findall(r"```bash\n(.*?)```", section, re.S)[block].replace("\\\n", " ")
    return [shlex.split(line.strip().removesuffix("&")) for line in code.splitlines() if line]


def doc_command(block: int, program: str, swap: dict[str, str]) -> list[str]:
    """The arguments of the docs' ``program`` command in ``block``, its values in ``swap``
    (the docs' port, folders) replaced by this test's."""
    (command,) = [c for c in doc_commands(block) if c[0] == program]
    return [swap.get(arg, arg) for arg in command[1:]]


DOC_URL = "http://127.0.0.1:8000/v1"
"""The server address the docs' commands use; the tests swap in their server's."""


@pytest.mark.parametrize("server", [[*steering(*DRAWS), "--delay", "0.2"]], indirect=True)
def test_eval_plays_episodes_against_the_server(
    server,
    tiny_folder,
    tmp_path,
    capsys,
    chromium,  # noqa: F811
):
    out = tmp_path / "run"
    # The docs' command, against this server, the random model steered as the docs say.
    assert doc_commands(1)[1] == [
        *("PYTHONPATH=.", "python", "tests/chat_server.py"),
        *("--model", "runs/tiny-vlm", "--port", "8000"),
    ]
    main(doc_command(1, "drawenv", {DOC_URL: server.url, "runs/served": str(out)}))
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in records] == [0, 1, 2]
    assert [r["seed"] for r in records] == [0, 1, 2]
    stats = server.stats()
    for r in records:
        # The model wrote the steered drawings; each drew a new image the next turn was shown.
        assert r["agent"] == "tiny"
        assert [t["text"] for t in r["turns"]] == DRAWS
        assert [t["new_images"] for t in r["turns"]] == [[2], [3], [4]]
        assert r["termination"] == "max_turns"
        assert r["n_operations"] == 3
        assert [t["finish"] for t in r["turns"]] == ["stop"] * 3
        # Usage per turn is what the server reported; the episode's usage is their sum.
        turns = [t["usage"] for t in r["turns"]]
        assert r["usage"] == {
            "prompt_tokens": sum(u["prompt_tokens"] for u in turns),
            "completion_tokens": sum(u["completion_tokens"] for u in turns),
            "total_tokens": sum(u["prompt_tokens"] + u["completion_tokens"] for u in turns),
            "requests": 3,
        }
        assert r["n_generated_tokens"] == r["usage"]["completion_tokens"]
        # Each turn's prompt holds the whole chat so far: it grows turn by turn.
        prompts = [u["prompt_tokens"] for u in turns]
        assert prompts[0] < prompts[1] < prompts[2]
    # Every request the server answered is one turn: 3 episodes x 3 turns, images 1 + 2 + 3 per
    # episode (the chat is resent whole, the last turn's drawing is never shown), and the token
    # counts the records hold are the ones it served.
    assert stats["requests"] == 9
    assert stats["failed"] == 0
    assert stats["images"] == 3 * (1 + 2 + 3)
    assert stats["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in records)
    assert stats["completion_tokens"] == sum(r["usage"]["completion_tokens"] for r in records)
    # Three episodes at once: their requests overlapped at the server.
    assert stats["peak_in_flight"] >= 2
    prompt, completion = stats["prompt_tokens"], stats["completion_tokens"]
    assert f"tokens: 9 requests, {prompt} prompt + {completion} completion" in printed
    # Same completion counts the tiny tokenizer gives the steered texts (+1 end token).
    from agents.vlm.policy import load_processor

    tokenizer = load_processor(tiny_folder).tokenizer
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1 for text in DRAWS]
    assert [[t["usage"]["completion_tokens"] for t in r["turns"]] for r in records] == [lengths] * 3
    # The viewer shows the three episodes, with their images, and no console errors.
    dom, messages = dump_dom(chromium, tmp_path, (out / "index.html").as_uri())
    assert messages == []
    assert sorted(dom_rows(dom)) == [0, 1, 2]
    assert (out / "images" / "ep2_img4.png").is_file()
    dom, messages = dump_dom(chromium, tmp_path, f"{(out / 'index.html').as_uri()}#episode=1")
    assert messages == []
    detail = dom.split('id="episode-1"', 1)[1].split("</article>", 1)[0]
    usage = records[1]["usage"]
    shown = f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens"
    assert shown in detail
    for turn in records[1]["turns"]:
        u = turn["usage"]
        assert f"{u['prompt_tokens']} prompt + {u['completion_tokens']} completion tokens" in detail
    assert detail.count("<img") == 4  # the maze image and the three drawn ones


@pytest.mark.parametrize("server", [["--fail-first", "2", *steering(DRAWS[0])]], indirect=True)
def test_503s_are_retried_with_backoff(server):
    client = ChatClient(server.url, "tiny", retries=2, backoff=0.01)
    (record,) = evaluate_served(client, task="maze", episodes=1, max_turns=1)
    assert client.attempts == 3
    assert server.stats()["requests"] == 3
    assert server.stats()["failed"] == 2
    assert record["turns"][0]["text"] == DRAWS[0]
    assert record["usage"]["requests"] == 1


@pytest.mark.parametrize("server", [["--reasoning", *steering(DRAWS[0])]], indirect=True)
def test_reasoning_split_off_by_the_server_is_put_back(server):
    client = ChatClient(server.url, "tiny")
    request = urllib.request.Request(
        f"{server.url}/chat/completions",
        data=json.dumps(client.body([{"role": "user", "content": "go"}])).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        message = json.load(response)["choices"][0]["message"]
    assert message["reasoning_content"] == " mark it "
    assert message["content"].startswith(" Action: Object Mapper")
    (record,) = evaluate_served(client, task="maze", episodes=1, max_turns=1)
    assert record["turns"][0]["text"] == DRAWS[0]  # the env judged the turn as written
    assert record["turns"][0]["operations"][0]["label"] == "a"


@pytest.mark.parametrize("server", [["--fail-first", "5"]], indirect=True)
def test_retries_run_out_with_a_clear_error(server):
    client = ChatClient(server.url, "tiny", retries=1, backoff=0.01)
    with pytest.raises(DrawEnvError, match=r"answered HTTP 503: overloaded.*raise `--retries`"):
        evaluate_served(client, task="maze", episodes=1, max_turns=1)
    assert server.stats()["requests"] == 2


@pytest.mark.parametrize("server", [["--delay", "5"]], indirect=True)
def test_a_slow_server_times_out(server):
    client = ChatClient(server.url, "tiny", timeout=0.2, retries=1, backoff=0.01)
    with pytest.raises(DrawEnvError, match=r"did not answer \(timed out; 2 attempts\).*--timeout"):
        evaluate_served(client, task="maze", episodes=1, max_turns=1)


@pytest.mark.parametrize("server", [["--api-key", "k-123"]], indirect=True)
def test_the_api_key_comes_from_openai_api_key(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(DrawEnvError, match=r"HTTP 401: invalid API key\. Set OPENAI_API_KEY"):
        evaluate_served(ChatClient(server.url, "tiny"), task="maze", episodes=1, max_turns=1)
    monkeypatch.setenv("OPENAI_API_KEY", "k-123")
    (record,) = evaluate_served(ChatClient(server.url, "tiny"), task="maze", episodes=1)
    assert record["usage"]["requests"] == 1
    assert server.stats()["requests"] == 1  # the refused request never reached the model


def test_unknown_model_names_the_fix(server):
    client = ChatClient(server.url, "not-served", retries=3, backoff=0.01)
    with pytest.raises(DrawEnvError, match=r"HTTP 404.*`--model not-served`.*/models lists"):
        evaluate_served(client, task="maze", episodes=1, max_turns=1)
    assert server.stats()["requests"] == 0  # refused before the model; a 404 is not retried


def test_unreachable_server_names_api_base_and_the_fix(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit) as exit:
        main([*doc_command(1, "drawenv", {DOC_URL: url, "runs/served": out}), "--retries", "1"])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert f"Could not reach the chat-completions server at `--api-base {url}`" in error
    assert "Connection refused; 2 attempts" in error
    assert "Start the server first" in error
    assert not (tmp_path / "run" / "results.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "tiny"], "needs `--agent`"),
        (["--api-base", "http://127.0.0.1:1/v1"], "needs `--model NAME`"),
        (["--api-base", "http://127.0.0.1:1/v1", "--model", "m", "--agent", "oracle"], "leave out"),
        (["--api-base", "127.0.0.1:8000/v1", "--model", "m"], "http:// or https:// URL"),
        (["--api-base", "http://127.0.0.1:1/v1", "--model", "m", "--concurrency", "0"], "integer"),
        (["--api-base", "http://127.0.0.1:1/v1", "--model", "m", "--retries", "-1"], "integer"),
        (["--api-base", "http://127.0.0.1:1/v1", "--model", "m", "--image-format", "gif"], "png"),
    ],
)
def test_usage_mistakes_are_refused(args, message, capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--task", "maze", "-n", "1", *args])
    assert message in capsys.readouterr().err


def image_only_copy(folder: Path, to: Path) -> Path:
    """A copy of the model folder whose processor transformers builds without torchvision:
    drawenv's image-only Qwen2.5-VL processor, loaded as the folder's own code."""
    import shutil

    from transformers import AutoImageProcessor, AutoTokenizer

    from drawenv.integrations.qwen import Qwen2_5_VLImageProcessor

    shutil.copytree(folder, to)
    tokenizer = AutoTokenizer.from_pretrained(to, local_files_only=True)
    image_processor = AutoImageProcessor.from_pretrained(to, local_files_only=True)
    Qwen2_5_VLImageProcessor(image_processor, tokenizer).save_pretrained(to)
    (to / "processing_drawenv.py").write_text(
        "from drawenv.integrations.qwen import Qwen2_5_VLImageProcessor\n"
    )
    config = json.loads((to / "processor_config.json").read_text())
    config["auto_map"] = {"AutoProcessor": "processing_drawenv.Qwen2_5_VLImageProcessor"}
    (to / "processor_config.json").write_text(json.dumps(config))
    return to


def test_eval_against_transformers_serve(tiny_folder, tmp_path):
    """transformers' own ``transformers serve`` (the ``serve`` extra) on the tiny model."""
    for module in ("fastapi", "uvicorn", "openai"):
        pytest.importorskip(module, reason="`transformers serve` needs the `serve` extra")
    folder = image_only_copy(tiny_folder, tmp_path / "tiny")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "run"
    # The docs' commands, with this test's folder, port and output folder.
    swap = {
        "runs/tiny-vlm-serve": str(folder),
        "8000": str(port),
        DOC_URL: f"{url}/v1",
        "runs/served-transformers": str(out),
    }
    serve = doc_command(2, "transformers", swap)
    assert serve[:2] == ["serve", str(folder)]
    command = [
        *(sys.executable, "-c", "from transformers.cli.transformers import main; main()"),
        *serve,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)
        try:
            for _ in range(360):  # up to about 3 minutes for the server to load
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    if process.poll() is not None:
                        break
                    time.sleep(0.5)
            else:
                log.seek(0)
                pytest.fail(f"transformers serve did not start: {log.read()[-3000:]}")
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"transformers serve ended: {log.read()[-3000:]}")
            main(doc_command(2, "drawenv", swap))
        finally:
            process.terminate()
            process.wait(timeout=60)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for r in records:
        assert r["usage"]["requests"] == r["n_turns"] >= 1
        for turn in r["turns"]:
            # The 448x448 maze image is 16 x 16 merged patches: 256 image tokens in the prompt.
            assert turn["usage"]["prompt_tokens"] > 256
            assert 1 <= turn["usage"]["completion_tokens"] <= 8
    assert (out / "index.html").is_file()


def test_the_client_needs_no_torch():
    code = "import sys, agents.cli, agents.served; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_images_travel_as_data_urls():
    import base64
    import io

    import numpy as np
    from PIL import Image

    from agents.served import data_url, user_message

    image = np.zeros((28, 56, 3), np.uint8)
    image[:, 28:] = (200, 30, 10)
    url = data_url(image)
    assert url.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(decoded, image)  # PNG is lossless
    assert data_url(image, "jpeg").startswith("data:image/jpeg;base64,")
    message = user_message([image, image], "Which is red?")
    assert message["role"] == "user"
    assert [part["type"] for part in message["content"]] == ["image_url", "image_url", "text"]
    assert message["content"][0]["image_url"]["url"] == url
    assert message["content"][2]["text"] == "Which is red?"


def test_retry_after_is_read_in_seconds():
    from agents.served import _retry_after

    assert _retry_after("2") == 2.0
    assert _retry_after("0.5") == 0.5
    assert _retry_after(None) is None
    assert _retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None  # a date: the backoff applies
