"""The HTML trajectory viewer: escaping, embedded images, placeholders, and a real headless
Chromium run that checks the filters, the episode detail and the console."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from agents.viewer import TEXT_LIMIT, load_results, write_viewer

CHROMIUM = Path("/usr/bin/chromium")


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> None:
    """A small flat PNG with a darker square, so a screenshot shows which image is which."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    image.paste(tuple(c // 2 for c in color), (8, 8, 40, 40))
    image.save(path)


def record(
    episode: int,
    *,
    agent: str = "oracle",
    suite: str = "maze",
    correct: bool = True,
    termination: str = "answer",
    text: str = "<think>go right</think> Action: Object Mapper",
    images: tuple[str, ...] = (),
    new_images: tuple[str, ...] = (),
) -> dict:
    """One results record in the evaluation's schema, with one drawing turn and one answer turn."""
    prediction = "B" if correct else "C"
    return {
        "episode": episode,
        "agent": agent,
        "suite": suite,
        "task_id": f"{suite}-{episode}",
        "seed": episode,
        "prompt": "The index of the given image is 1 (width: 96, height: 64).\nWhich way?",
        "system_prompt": "You answer spatial questions by drawing.",
        "answer": "B",
        "answer_type": "multiple_choice",
        "prediction": prediction,
        "accuracy": 1.0 if correct else 0.0,
        "correct": correct,
        "reward": 1.0 if correct else 0.0,
        "reward_terms": {"accuracy": 1.0 if correct else 0.0, "format": 1.0},
        "termination": termination,
        "n_turns": 2,
        "n_operations": 2,
        "images": list(images),
        "turns": [
            {
                "text": text,
                "operations": [
                    {"kind": "box", "index": 1, "bbox": [10, 20, 30, 40], "label": "start"},
                    {"kind": "line", "index": 1, "start": [1, 2], "end": [3, 4], "label": "leg"},
                ],
                "new_images": list(range(2, 2 + len(new_images))),
                "new_image_paths": list(new_images),
                "errors": [],
                "message": "The index of the given image is 2.",
                "reward": 0.0,
            },
            {
                "text": f"<answer>{prediction}</answer>",
                "operations": [],
                "new_images": [],
                "new_image_paths": [],
                "errors": ["line 2 lies outside image 1"] if not correct else [],
                "message": "",
                "reward": 1.0 if correct else 0.0,
            },
        ],
    }


def build(tmp_path: Path, records: list[dict]) -> str:
    """Write the viewer for ``records`` (images under ``tmp_path``) and return its HTML."""
    out = write_viewer(records, tmp_path / "viewer.html", base_dir=tmp_path)
    return out.read_text(encoding="utf-8")


def rows(page: str) -> list[str]:
    """The opening ``<tr ...>`` tags of the episode table's body."""
    body = page.split('<table id="episodes">', 1)[1].split("<tbody>", 1)[1].split("</tbody>")[0]
    return re.findall(r"<tr\b[^>]*>", body)


# ---------------------------------------------------------------------------------------------
# Unit tests of the HTML


def test_model_text_is_escaped(tmp_path):
    hostile = '<script>alert(1)</script> "quoted" & ünïcödé ✓'
    page = build(tmp_path, [record(0, text=hostile, agent='<b onmouseover="x">')])
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp; ünïcödé ✓" in page
    assert '<b onmouseover="x">' not in page
    assert 'data-agent="&lt;b onmouseover=&quot;x&quot;&gt;"' in page
    # The page's own script is the only one.
    assert page.count("<script>") == 1


def test_huge_text_is_truncated_with_a_note(tmp_path):
    page = build(tmp_path, [record(0, text="x" * (TEXT_LIMIT * 3))])
    assert "x" * TEXT_LIMIT in page
    assert "x" * (TEXT_LIMIT + 1) not in page
    assert f"showing {TEXT_LIMIT:,} of {TEXT_LIMIT * 3:,} characters" in page


def test_missing_image_is_a_placeholder(tmp_path):
    page = build(tmp_path, [record(0, images=("images/nope.png",), new_images=("gone.png",))])
    assert page.count('class="img-missing"') == 2
    assert "images/nope.png" in page and "gone.png" in page
    assert "data:image" not in page


def test_images_are_embedded_as_base64(tmp_path):
    write_png(tmp_path / "images" / "ep0_img1.png", (200, 60, 60))
    write_png(tmp_path / "images" / "ep0_img2.png", (60, 60, 200))
    page = build(
        tmp_path,
        [record(0, images=("images/ep0_img1.png",), new_images=("images/ep0_img2.png",))],
    )
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 2
    expected = (tmp_path / "images" / "ep0_img1.png").read_bytes()
    assert base64.b64decode(uris[0]) == expected
    assert 'class="img-missing"' not in page


def test_one_row_and_one_detail_per_episode(tmp_path):
    records = [record(i, suite=("maze", "depth")[i % 2]) for i in range(5)]
    page = build(tmp_path, records)
    tags = rows(page)
    assert len(tags) == 5
    assert [re.search(r'data-suite="(\w+)"', t)[1] for t in tags] == [
        "maze",
        "depth",
        "maze",
        "depth",
        "maze",
    ]
    assert page.count('<article class="episode"') == 5
    assert page.count('<li class="turn"') == 10
    assert "<strong>5</strong> episodes" in page


def test_summary_line(tmp_path):
    records = [record(0), record(1), record(2), record(3, correct=False)]
    page = build(tmp_path, records)
    summary = re.search(r'<p id="summary">(.*?)</p>', page)[1]
    assert "mean reward <strong>0.75</strong>" in summary
    assert "accuracy <strong>75.0%</strong>" in summary


def test_empty_and_sparse_records_do_not_crash(tmp_path):
    page = build(tmp_path, [{}, {"turns": ["raw text", {"operations": ["odd"]}]}])
    assert len(rows(page)) == 2
    assert "<strong>2</strong> episodes" in page
    assert build(tmp_path, []).count("<tr") == 1  # only the header row


def test_load_results_reads_jsonl(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(record(0)) + "\n\n" + json.dumps(record(1)) + "\n")
    assert [r["episode"] for r in load_results(path)] == [0, 1]
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="Expected a JSON object on line 1"):
        load_results(path)


def test_page_needs_no_network(tmp_path):
    page = build(tmp_path, [record(0)])
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "default-src 'none'" in page


# ---------------------------------------------------------------------------------------------
# Headless Chromium


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Chromium's path. ``scripts/test.sh`` installs it before the tests run; installing it here
    would race for the dpkg lock under pytest-xdist. A missing browser fails the browser tests."""
    fix = "Install it with `bash scripts/install_chromium.sh` (or `apt-get install chromium`)."
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"The browser tests need Chromium at {CHROMIUM}, which is missing. {fix}")
    try:
        done = subprocess.run(
            [str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{CHROMIUM} --version` did not answer within 60 s. {fix}")
    if done.returncode != 0:
        pytest.fail(
            f"`{CHROMIUM} --version` exited with {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()[-500:]} {fix}"
        )
    return CHROMIUM


def run_chromium(
    chromium: Path, tmp_path: Path, url: str, *extra: str
) -> subprocess.CompletedProcess:
    """Open ``url`` in headless Chromium with console messages logged to stderr."""
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    command = [
        str(chromium),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2000",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    """Lines of Chromium's log that come from the page's console or an uncaught error."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def dump_dom(chromium: Path, tmp_path: Path, url: str) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the console messages it logged."""
    done = run_chromium(chromium, tmp_path, url, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, console_messages(done.stderr)


@pytest.fixture
def six_episodes(tmp_path) -> Path:
    """A viewer over six episodes: 2 suites, 2 agents, one incorrect, two termination reasons."""
    specs = [
        ("oracle", "maze", True, "answer"),
        ("oracle", "depth", True, "answer"),
        ("random", "maze", False, "answer"),
        ("random", "depth", True, "max_turns"),
        ("oracle", "maze", True, "max_turns"),
        ("random", "maze", True, "answer"),
    ]
    colors = [(220, 80, 80), (80, 160, 80), (80, 80, 220), (200, 160, 40), (140, 60, 180)]
    records = []
    for i, (agent, suite, correct, termination) in enumerate(specs):
        original = f"images/ep{i}_img1.png"
        drawn = f"images/ep{i}_img2.png"
        write_png(tmp_path / original, colors[i % len(colors)])
        write_png(tmp_path / drawn, colors[(i + 1) % len(colors)])
        records.append(
            record(
                i,
                agent=agent,
                suite=suite,
                correct=correct,
                termination=termination,
                images=(original,),
                new_images=(drawn,),
                text="<think>The start is at the top left.</think> Action: Object Mapper\n"
                '```json\n[{"bbox_2d": [10, 20, 30, 40], "label": "start"}]\n```',
            )
        )
    records[2]["images"].append("images/missing.png")
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return write_viewer(load_results(path), tmp_path / "viewer.html", base_dir=tmp_path)


def dom_rows(dom: str) -> dict[int, str]:
    """Each table row's opening tag in a dumped DOM, by its position."""
    return {int(pos): tag for tag, pos in re.findall(r'(<tr id="row-(\d+)"[^>]*>)', dom)}


def hidden_rows(dom: str) -> set[int]:
    """Positions of the rows that the dumped DOM hides."""
    return {pos for pos, tag in dom_rows(dom).items() if re.search(r"\shidden(=|\s|>)", tag)}


def test_console_errors_are_detected(chromium, tmp_path):
    # Guards the other browser tests: an empty console list must mean a quiet page.
    page = tmp_path / "noisy.html"
    page.write_text("<!DOCTYPE html><script>console.error('canary'); undefinedName();</script>")
    _, messages = dump_dom(chromium, tmp_path, page.as_uri())
    assert any("canary" in m for m in messages)
    assert any("Uncaught" in m for m in messages)


def test_browser_shows_every_episode_without_console_errors(chromium, tmp_path, six_episodes):
    dom, messages = dump_dom(chromium, tmp_path, six_episodes.as_uri())
    assert messages == []
    assert sorted(dom_rows(dom)) == list(range(6))
    assert hidden_rows(dom) == set()
    assert "showing 6 of 6" in dom
    # No episode is open until one is chosen.
    assert len(re.findall(r'<article class="episode"[^>]*\shidden', dom)) == 6


@pytest.mark.parametrize(
    ("fragment", "expected_hidden"),
    [
        ("suite=maze", {1, 3}),
        ("agent=random", {0, 1, 4}),
        ("correct=false", {0, 1, 3, 4, 5}),
        ("termination=max_turns", {0, 1, 2, 5}),
        ("suite=maze&agent=oracle", {1, 2, 3, 5}),
        # An unknown value falls back to "all" rather than hiding everything.
        ("suite=nonexistent", set()),
    ],
)
def test_browser_filters_hide_non_matching_rows(
    chromium, tmp_path, six_episodes, fragment, expected_hidden
):
    dom, messages = dump_dom(chromium, tmp_path, f"{six_episodes.as_uri()}#{fragment}")
    assert messages == []
    assert hidden_rows(dom) == expected_hidden
    assert f"showing {6 - len(expected_hidden)} of 6" in dom


def test_browser_opens_the_chosen_episode(chromium, tmp_path, six_episodes):
    dom, messages = dump_dom(chromium, tmp_path, f"{six_episodes.as_uri()}#episode=2")
    assert messages == []
    articles = dict(re.findall(r'<article class="episode" id="episode-(\d+)"([^>]*)>', dom))
    assert [pos for pos, attrs in articles.items() if "hidden" not in attrs] == ["2"]
    assert re.search(r'<tr id="row-2" class="[^"]*\bselected\b', dom)
    detail = dom.split('id="episode-2"', 1)[1].split("</article>", 1)[0]
    assert detail.count('class="turn"') == 2
    assert detail.count("data:image/png;base64,") == 2
    assert detail.count('class="img-missing"') == 1


def test_browser_screenshot(chromium, tmp_path, six_episodes):
    shot = tmp_path / "viewer.png"
    done = run_chromium(
        chromium,
        tmp_path,
        f"{six_episodes.as_uri()}#episode=2",
        f"--screenshot={shot}",
        "--hide-scrollbars",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    assert shot.stat().st_size > 10_000
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        # A blank page is one color; the viewer's text, tables and images are many
        # (``getcolors`` answers None when there are more than ``maxcolors``).
        colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 50
