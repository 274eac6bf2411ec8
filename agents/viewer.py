"""An HTML trajectory viewer for evaluation results.

``write_viewer`` turns results records (one dict per episode, as written to ``results.jsonl``) into
one HTML page that needs nothing but a browser: the styles and the filter script are inline, and a
Content-Security-Policy forbids any network access. Images are the files beside the page, linked
by relative URL and loaded only when their episode is opened; with ``embed=True`` (and by default
for runs whose images total at most :data:`EMBED_LIMIT` bytes) they are embedded as ``data:`` URIs
instead, so the page is one self-contained file. Image paths that lead outside the results folder
are not read: they show as a placeholder saying so.

The page has an index table of episodes with filters (suite, agent, correct, termination) and, for
the selected episode, its prompt, original images and a filmstrip of turns. The page state lives in
the URL fragment, so a view can be linked to and reproduced::

    viewer.html#suite=maze&correct=false&episode=3

Run it from the command line with ``drawenv view results.jsonl [--embed]``.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import mimetypes
import os
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from drawenv.errors import DrawEnvError

TEXT_LIMIT = 20_000
"""Characters of one text block (model turn, prompt, env message) shown before it is cut."""

CELL_LIMIT = 80
"""Characters of a prediction or answer shown in an index-table cell."""

FILTERS = ("suite", "agent", "correct", "termination")
"""Row attributes the page filters on; each has a ``select#filter-<name>``."""

EMBED_LIMIT = 1 << 20
"""Bytes of images up to which ``write_viewer`` embeds them by default (``embed=None``)."""

VERDICTS = {"true": "correct", "false": "incorrect", "unknown": "unscored"}
"""Words shown for the values of ``data-correct``; also the row's and the badge's CSS class."""


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``results.jsonl`` file: one JSON object per non-blank line."""
    records = []
    with Path(path).open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DrawEnvError(
                    f"Expected a JSON object on line {lineno} of {path}, got invalid JSON "
                    f"({error.msg}); give the results.jsonl an evaluation run wrote."
                ) from None
            if not isinstance(record, dict):
                raise DrawEnvError(
                    f"Expected a JSON object on line {lineno} of {path}, "
                    f"got {type(record).__name__}; each line must be one episode's record."
                )
            records.append(record)
    return records


def write_viewer(
    results: list[dict[str, Any]], out_path: Path, *, base_dir: Path, embed: bool | None = None
) -> Path:
    """Write the viewer for ``results`` to ``out_path`` and return that path.

    Image paths in the records are read relative to ``base_dir`` (usually the folder holding
    ``results.jsonl``) and must stay inside it; a file that is missing or outside is shown as a
    placeholder. ``embed``: True embeds the images in the page, False links them by relative
    URL, None (default) embeds them when they total at most :data:`EMBED_LIMIT` bytes.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    images = _ImageCache(Path(base_dir), out_path.parent)
    if embed is None:
        embed = images.total_bytes(_image_paths(results)) <= EMBED_LIMIT
    images.embed = embed
    out_path.write_text(_page(results, images), encoding="utf-8")
    return out_path


# ---------------------------------------------------------------------------------------------
# Values


def _esc(value: Any) -> str:
    """Escape any value for HTML text or a double-quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _clip(text: Any, limit: int = TEXT_LIMIT) -> tuple[str, int]:
    """``text`` as a string cut to ``limit`` characters, and its full length."""
    text = "" if text is None else str(text)
    return text[:limit], len(text)


def _pre(text: Any, cls: str) -> str:
    """A pre-wrapped text block, cut at ``TEXT_LIMIT`` with a note saying so."""
    shown, total = _clip(text)
    note = ""
    if total > len(shown):
        note = (
            f'<p class="truncated">Truncated: showing {len(shown):,} of {total:,} characters.</p>'
        )
    return f'<pre class="{cls}">{_esc(shown)}</pre>{note}'


def _cell(text: Any) -> str:
    """A short table-cell rendering of a value, the full value (cut) in the tooltip."""
    text = "" if text is None else str(text)
    if len(text) <= CELL_LIMIT:
        return _esc(text)
    return f'<span title="{_esc(text[:1000])}">{_esc(text[: CELL_LIMIT - 1])}…</span>'


def _num(value: Any) -> str:
    """A number with at most three decimals and no trailing zeros; other values as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–" if value is None else str(value)
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _correct(record: dict[str, Any]) -> str:
    """``"true"``, ``"false"`` or ``"unknown"``: the record's ``correct``, else its accuracy."""
    correct = record.get("correct")
    if isinstance(correct, bool):
        return "true" if correct else "false"
    accuracy = record.get("accuracy")
    if isinstance(accuracy, int | float) and not isinstance(accuracy, bool):
        return "true" if accuracy >= 1.0 else "false"
    return "unknown"


def _mean(values: Iterable[Any]) -> float | None:
    """Mean of the numeric values, ``None`` when there are none."""
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(numbers) / len(numbers) if numbers else None


def _summary(results: list[dict[str, Any]]) -> str:
    """The line under the title: episode count, mean reward, accuracy."""
    mean_reward = _mean(r.get("reward") for r in results)
    accuracies = [r.get("accuracy") for r in results]
    if all(a is None for a in accuracies):
        accuracies = [{"true": 1.0, "false": 0.0}.get(_correct(r)) for r in results]
    accuracy = _mean(accuracies)
    parts = [
        f"<strong>{len(results)}</strong> episode{'s' if len(results) != 1 else ''}",
        f"mean reward <strong>{_num(mean_reward)}</strong>",
        f"accuracy <strong>{'–' if accuracy is None else f'{accuracy:.1%}'}</strong>",
    ]
    return " · ".join(parts)


# ---------------------------------------------------------------------------------------------
# Images


def _image_paths(results: list[dict[str, Any]]) -> set[str]:
    """Every image path the records name: the originals and each turn's new images."""
    paths: set[str] = set()
    for record in results:
        paths.update(p for p in record.get("images") or [] if isinstance(p, str))
        for turn in record.get("turns") or []:
            if isinstance(turn, dict):
                paths.update(p for p in turn.get("new_image_paths") or [] if isinstance(p, str))
    return paths


class _ImageCache:
    """Finds image files under ``base_dir`` once each and renders them as ``<figure>``s: linked
    relative to the page's folder ``page_dir``, or embedded (``embed``)."""

    def __init__(self, base_dir: Path, page_dir: Path, embed: bool = True) -> None:
        self.base_dir = base_dir.resolve()
        self.page_dir = page_dir.resolve()
        self.embed = embed
        self.files: dict[str, Path | str] = {}
        self.uris: dict[str, str | None] = {}

    def file(self, path: str) -> Path | str:
        """The image file of ``path``, or why it is not shown: "missing" or "outside"."""
        if path not in self.files:
            try:
                resolved = (self.base_dir / path).resolve()
            except (OSError, ValueError, RuntimeError):
                self.files[path] = "missing"
            else:
                # Results files are data: a path in one must not pull in files from elsewhere.
                if not resolved.is_relative_to(self.base_dir):
                    self.files[path] = "outside"
                else:
                    self.files[path] = resolved if resolved.is_file() else "missing"
        return self.files[path]

    def total_bytes(self, paths: Iterable[str]) -> int:
        """Bytes of the shown image files among ``paths``."""
        found = {self.file(p) for p in paths} - {"missing", "outside"}
        return sum(f.stat().st_size for f in found if isinstance(f, Path))

    def uri(self, path: str) -> str | None:
        """A relative URL of the file, or the file as a base64 ``data:`` URI (``embed``);
        ``None`` when it is missing, outside ``base_dir`` or cannot be read."""
        if path not in self.uris:
            found = self.file(path)
            if not isinstance(found, Path):
                self.uris[path] = None
            elif not self.embed:
                relative = Path(os.path.relpath(found, self.page_dir)).as_posix()
                self.uris[path] = urllib.parse.quote(relative)
            else:
                try:
                    data = found.read_bytes()
                except OSError:
                    self.uris[path] = None
                else:
                    mime = mimetypes.guess_type(path)[0] or "image/png"
                    encoded = base64.b64encode(data).decode("ascii")
                    self.uris[path] = f"data:{mime};base64,{encoded}"
        return self.uris[path]

    def figure(self, path: Any, caption: str) -> str:
        """One image with its caption, or a placeholder saying why it is not shown."""
        uri = self.uri(str(path)) if isinstance(path, str) and path else None
        if uri is None:
            outside = isinstance(path, str) and path and self.file(path) == "outside"
            why = "outside the results folder, not shown" if outside else "image missing"
            body = f'<div class="img-missing">{why}<br><code>{_esc(path)}</code></div>'
        else:
            body = f'<img src="{uri}" alt="{_esc(caption)}" loading="lazy">'
        return (
            f'<figure class="image">{body}'
            f"<figcaption>{_esc(caption)} <code>{_esc(path)}</code></figcaption></figure>"
        )


# ---------------------------------------------------------------------------------------------
# Page parts


def _index_row(record: dict[str, Any], pos: int) -> str:
    """One ``<tr>`` of the episode table; its ``data-*`` attributes drive the filters."""
    correct = _correct(record)
    mark = {"true": "✓", "false": "✗"}.get(correct, "?")
    attrs = " ".join(
        f'data-{name}="{_esc(value)}"'
        for name, value in (
            ("pos", pos),
            ("suite", record.get("suite", "")),
            ("agent", record.get("agent", "")),
            ("correct", correct),
            ("termination", record.get("termination", "")),
        )
    )
    cells = [
        f'<td class="num"><a href="#episode={pos}">{_esc(record.get("episode", pos))}</a></td>',
        f"<td>{_cell(record.get('agent'))}</td>",
        f"<td>{_cell(record.get('suite'))}</td>",
        f'<td class="task">{_cell(record.get("task_id"))}</td>',
        f'<td class="verdict {VERDICTS[correct]}"><span class="mark">{mark}</span> '
        f"{_cell(record.get('prediction'))} <span class='vs'>vs</span> "
        f"{_cell(record.get('answer'))}</td>",
        f'<td class="num">{_num(record.get("reward"))}</td>',
        f'<td class="num">{_num(record.get("n_turns"))}</td>',
        f'<td class="num">{_num(record.get("n_operations"))}</td>',
        f'<td><span class="term">{_cell(record.get("termination"))}</span></td>',
    ]
    return f'<tr id="row-{pos}" class="{VERDICTS[correct]}" {attrs}>{"".join(cells)}</tr>'


def _filter(name: str, label: str, values: Iterable[tuple[str, str]]) -> str:
    """A ``<select id="filter-<name>">`` with "all" and one option per ``(value, text)``."""
    options = ['<option value="">all</option>']
    options += [
        f'<option value="{_esc(v)}">{_esc(text or "(none)")}</option>' for v, text in values
    ]
    return (
        f'<label for="filter-{name}">{_esc(label)}</label>'
        f'<select id="filter-{name}" data-filter="{name}">{"".join(options)}</select>'
    )


def _geometry(op: dict[str, Any]) -> str:
    """The shape of one operation: its box, its segment, or its remaining fields."""
    if "bbox" in op:
        return f"box {_esc(op['bbox'])}"
    if "start" in op or "end" in op:
        return f"{_esc(op.get('start'))} → {_esc(op.get('end'))}"
    rest = {k: v for k, v in op.items() if k not in ("kind", "index", "label")}
    return _esc(json.dumps(rest, ensure_ascii=False, default=str)) if rest else ""


def _operations(ops: list[Any]) -> str:
    """The parsed operations of one turn as a small table."""
    if not ops:
        return '<p class="none">No operations.</p>'
    rows = []
    for i, op in enumerate(ops, 1):
        if not isinstance(op, dict):
            op = {"value": op}
        rows.append(
            f'<tr><td class="num">{i}</td><td>{_esc(op.get("kind", ""))}</td>'
            f'<td class="num">{_esc(op.get("index", ""))}</td><td>{_geometry(op)}</td>'
            f"<td>{_cell(op.get('label', ''))}</td></tr>"
        )
    return (
        '<table class="ops"><thead><tr><th>#</th><th>kind</th><th>image</th>'
        f"<th>geometry</th><th>label</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _tokens(usage: Any) -> str | None:
    """A served model's ``usage`` (of a turn or an episode) in words; None without one."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens", "?"), usage.get("completion_tokens", "?")
    return f"{prompt} prompt + {completion} completion tokens"


def _turn(turn: dict[str, Any], number: int, images: _ImageCache) -> str:
    """One frame of the filmstrip: text, operations, new images, errors, the env's message."""
    tokens = _tokens(turn.get("usage"))
    parts = [
        f'<header><span class="turn-no">Turn {number}</span>'
        f'<span class="turn-reward">reward {_num(turn.get("reward"))}</span>'
        + (f'<span class="turn-tokens">{_esc(tokens)}</span>' if tokens else "")
        + "</header>",
        "<h4>Model</h4>",
        _pre(turn.get("text", ""), "model-text"),
        "<h4>Operations</h4>",
        _operations(list(turn.get("operations") or [])),
    ]
    paths = list(turn.get("new_image_paths") or [])
    if paths:
        indices = list(turn.get("new_images") or [])
        figures = [
            images.figure(p, f"image {indices[i] if i < len(indices) else '?'}")
            for i, p in enumerate(paths)
        ]
        parts += ["<h4>New images</h4>", f'<div class="images">{"".join(figures)}</div>']
    errors = list(turn.get("errors") or [])
    if errors:
        items = "".join(f"<li>{_pre(e, 'error')}</li>" for e in errors)
        parts += ["<h4>Errors</h4>", f'<ul class="errors">{items}</ul>']
    if turn.get("message"):
        parts += ["<h4>Env message</h4>", _pre(turn["message"], "env-message")]
    return f'<li class="turn" data-turn="{number}">{"".join(parts)}</li>'


def _outcome(record: dict[str, Any]) -> str:
    """The end of an episode: its reward terms and why it ended."""
    terms = record.get("reward_terms") or {}
    rows = "".join(
        f'<tr><th scope="row">{_esc(k)}</th><td class="num">{_num(v)}</td></tr>'
        for k, v in (terms.items() if isinstance(terms, dict) else [])
    )
    rows += (
        f'<tr class="total"><th scope="row">reward</th>'
        f'<td class="num">{_num(record.get("reward"))}</td></tr>'
    )
    return (
        '<section class="outcome"><h3>Outcome</h3>'
        f'<table class="reward-terms"><tbody>{rows}</tbody></table>'
        f'<p>Termination: <span class="term termination">'
        f"{_esc(record.get('termination', '–'))}</span></p></section>"
    )


def _episode(record: dict[str, Any], pos: int, images: _ImageCache) -> str:
    """The detail of one episode: meta, prompt, original images, filmstrip, outcome."""
    correct = _correct(record)
    meta = [
        ("agent", record.get("agent")),
        ("suite", record.get("suite")),
        ("task", record.get("task_id")),
        ("seed", record.get("seed")),
        ("answer type", record.get("answer_type")),
        ("answer", record.get("answer")),
        ("prediction", record.get("prediction")),
        ("accuracy", _num(record.get("accuracy"))),
        ("reward", _num(record.get("reward"))),
        ("turns", record.get("n_turns")),
        ("operations", record.get("n_operations")),
        ("termination", record.get("termination")),
    ]
    if _tokens(record.get("usage")):
        meta.append(("tokens", _tokens(record["usage"])))
    dl = "".join(f"<div><dt>{_esc(k)}</dt><dd>{_cell(v)}</dd></div>" for k, v in meta)
    parts = [
        f"<header><h2>Episode {_esc(record.get('episode', pos))} "
        f'<span class="badge {VERDICTS[correct]}">{VERDICTS[correct]}</span></h2>'
        '<a class="back" href="#">back to the table ↑</a></header>',
        f'<dl class="meta">{dl}</dl>',
    ]
    if record.get("system_prompt"):
        parts.append(
            '<details class="system"><summary>System prompt</summary>'
            f"{_pre(record['system_prompt'], 'system-prompt')}</details>"
        )
    parts += ["<h3>Prompt</h3>", _pre(record.get("prompt", ""), "prompt")]
    originals = list(record.get("images") or [])
    figures = "".join(images.figure(p, f"image {i}") for i, p in enumerate(originals, 1))
    parts += ["<h3>Images</h3>", f'<div class="images">{figures or "<p>No images.</p>"}</div>']
    turns = [t if isinstance(t, dict) else {"text": t} for t in record.get("turns") or []]
    frames = "".join(_turn(t, n, images) for n, t in enumerate(turns, 1))
    parts += [
        f"<h3>Turns <small>({len(turns)})</small></h3>",
        f'<ol class="filmstrip">{frames}</ol>' if frames else '<p class="none">No turns.</p>',
        _outcome(record),
    ]
    return (
        f'<article class="episode" id="episode-{pos}" data-pos="{pos}" hidden>'
        f"{''.join(parts)}</article>"
    )


def _page(results: list[dict[str, Any]], images: _ImageCache) -> str:
    """The whole HTML document."""
    rows = "".join(_index_row(r, pos) for pos, r in enumerate(results))
    seen = {name: {str(r.get(name, "")) for r in results} for name in FILTERS}
    seen["correct"] = {_correct(r) for r in results}
    values = {name: [(v, v) for v in sorted(seen[name])] for name in FILTERS}
    values["correct"] = [(v, text) for v, text in VERDICTS.items() if v in seen["correct"]]
    labels = {"suite": "Suite", "agent": "Agent", "correct": "Correct", "termination": "Ended by"}
    filters = "".join(_filter(n, labels[n], values[n]) for n in FILTERS)
    episodes = "".join(_episode(r, pos, images) for pos, r in enumerate(results))
    head = (
        "<th>episode</th><th>agent</th><th>suite</th><th>task</th><th>prediction vs answer</th>"
        "<th>reward</th><th>turns</th><th>ops</th><th>termination</th>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP if images.embed else _CSP_LINKED}">
<link rel="icon" href="data:,">
<title>drawenv trajectories</title>
<style>{_CSS}</style>
</head>
<body>
<header id="top">
<h1>drawenv trajectories</h1>
<p id="summary">{_summary(results)}</p>
</header>
<main>
<form id="filters" autocomplete="off">{filters}
<span id="shown-count" aria-live="polite"></span></form>
<table id="episodes">
<thead><tr>{head}</tr></thead>
<tbody>{rows}</tbody>
</table>
<p id="no-match" hidden>No episode matches the filters.</p>
<section id="details">{episodes}</section>
</main>
<script>{_JS}</script>
</body>
</html>
"""


_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; form-action 'none'; base-uri 'none'"
)

# Linked images are same-origin files beside the page ('self' also matches file: pages).
_CSP_LINKED = _CSP.replace("img-src data:", "img-src data: 'self'")

_CSS = """
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg2: #f6f8fa; --ok: #1a7f37;
  --bad: #cf222e; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); }
#top { padding: 16px 24px 8px; border-bottom: 1px solid var(--line); background: var(--bg2); }
h1 { margin: 0 0 4px; font-size: 22px; }
#summary { margin: 0; color: var(--muted); }
main { padding: 12px 24px 48px; }
#filters { display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: center; margin: 4px 0 12px; }
#filters label { font-weight: 600; margin-right: -10px; }
#filters select { padding: 3px 6px; border: 1px solid var(--line); border-radius: 6px;
  background: #fff; font: inherit; }
#shown-count { color: var(--muted); margin-left: auto; }
table { border-collapse: collapse; }
#episodes { width: 100%; }
#episodes th, #episodes td { padding: 5px 10px; border-bottom: 1px solid var(--line);
  text-align: left; vertical-align: baseline; }
#episodes thead th { background: var(--bg2); font-weight: 600; position: sticky; top: 0; }
#episodes tbody tr { cursor: pointer; }
#episodes tbody tr:hover { background: #eef4fb; }
#episodes tbody tr.selected { background: #ddeafc; }
#episodes td.task { font-family: ui-monospace, monospace; font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
#episodes td.num { text-align: right; }
.verdict .mark { font-weight: 700; }
.verdict.correct .mark, .badge.correct { color: var(--ok); }
.verdict.incorrect .mark, .badge.incorrect { color: var(--bad); }
.vs { color: var(--muted); font-size: 12px; }
.term { display: inline-block; padding: 0 6px; border-radius: 10px; background: #eaeef2;
  font-size: 12px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
#no-match { color: var(--muted); }
.episode { margin-top: 24px; padding-top: 8px; border-top: 3px solid var(--accent); }
.episode > header { display: flex; align-items: baseline; justify-content: space-between; }
.episode h2 { margin: 6px 0; font-size: 20px; }
.badge { font-size: 13px; font-weight: 600; border: 1px solid currentColor; border-radius: 10px;
  padding: 1px 8px; margin-left: 8px; vertical-align: middle; }
.episode h3 { margin: 18px 0 6px; font-size: 16px; }
.meta { display: flex; flex-wrap: wrap; gap: 4px 20px; margin: 8px 0; }
.meta div { display: flex; gap: 6px; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; font-weight: 600; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; padding: 8px 10px;
  background: var(--bg2); border: 1px solid var(--line); border-radius: 6px;
  font: 12px/1.45 ui-monospace, "SFMono-Regular", Menlo, monospace; }
pre.prompt { max-width: 900px; }
pre.model-text { max-height: 320px; overflow-y: auto; }
pre.env-message { max-height: 200px; overflow-y: auto; background: #fff8e6; }
pre.error { background: #ffebe9; border-color: #ffc1ba; }
.truncated { color: var(--bad); font-size: 12px; margin: 2px 0; }
.images { display: flex; flex-wrap: wrap; gap: 12px; }
figure.image { margin: 0; }
figure.image img { display: block; max-width: 420px; height: auto;
  border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 2px; }
.img-missing { width: 200px; height: 120px; display: flex; flex-direction: column;
  align-items: center; justify-content: center; text-align: center; color: var(--muted);
  border: 2px dashed var(--line); border-radius: 4px; font-size: 12px; overflow-wrap: anywhere;
  padding: 6px; }
.filmstrip { list-style: none; margin: 0; padding: 4px 0 12px; display: flex; gap: 14px;
  overflow-x: auto; align-items: flex-start; }
.turn { flex: 0 0 452px; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px;
  background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
.turn > header { display: flex; justify-content: space-between; font-weight: 600;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.turn-reward, .turn-tokens { color: var(--muted); font-weight: 400; }
.turn h4 { margin: 10px 0 4px; font-size: 13px; color: var(--muted); }
.turn .none { color: var(--muted); margin: 0; }
table.ops { font-size: 12px; width: 100%; }
table.ops th, table.ops td { border: 1px solid var(--line); padding: 2px 6px; text-align: left; }
table.ops th { background: var(--bg2); }
ul.errors { margin: 0; padding-left: 18px; }
.outcome table.reward-terms th, .outcome table.reward-terms td { padding: 2px 12px 2px 0;
  border-bottom: 1px solid var(--line); text-align: left; font-weight: 400; }
.outcome tr.total th, .outcome tr.total td { font-weight: 700; }
details.system { margin: 8px 0; }
details.system summary { cursor: pointer; color: var(--muted); }
"""

# The page state lives in the URL fragment ("suite=maze&episode=3"): filters and row clicks write
# it, and every change of it (also on load, and on the back button) re-renders from it.
_JS = """
"use strict";
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("#episodes tbody tr"));
  var selects = Array.prototype.slice.call(document.querySelectorAll("#filters select"));
  var count = document.getElementById("shown-count");
  var noMatch = document.getElementById("no-match");

  function readState() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    var state = { episode: params.get("episode") };
    selects.forEach(function (s) { state[s.dataset.filter] = params.get(s.dataset.filter) || ""; });
    return state;
  }

  function writeState(state) {
    var params = new URLSearchParams();
    selects.forEach(function (s) {
      if (state[s.dataset.filter]) { params.set(s.dataset.filter, state[s.dataset.filter]); }
    });
    if (state.episode !== null && state.episode !== undefined) {
      params.set("episode", state.episode);
    }
    var hash = "#" + params.toString();
    if (location.hash !== hash) { location.hash = hash; }
    else { render(false); }
  }

  function render(scroll) {
    var state = readState();
    selects.forEach(function (s) {
      var want = state[s.dataset.filter];
      var known = Array.prototype.some.call(s.options, function (o) { return o.value === want; });
      s.value = known ? want : "";
    });
    var shown = 0;
    rows.forEach(function (row) {
      var match = selects.every(function (s) {
        return !s.value || row.dataset[s.dataset.filter] === s.value;
      });
      row.hidden = !match;
      row.classList.toggle("selected", row.dataset.pos === state.episode);
      if (match) { shown += 1; }
    });
    count.textContent = "showing " + shown + " of " + rows.length;
    noMatch.hidden = shown > 0 || rows.length === 0;
    var open = null;
    document.querySelectorAll("#details .episode").forEach(function (ep) {
      var isOpen = ep.dataset.pos === state.episode;
      ep.hidden = !isOpen;
      if (isOpen) { open = ep; }
    });
    if (scroll && open) { open.scrollIntoView({ block: "start" }); }
  }

  selects.forEach(function (s) {
    s.addEventListener("change", function () {
      var state = readState();
      state[s.dataset.filter] = s.value;
      writeState(state);
    });
  });
  rows.forEach(function (row) {
    row.addEventListener("click", function (event) {
      event.preventDefault();
      var state = readState();
      state.episode = row.dataset.pos;
      writeState(state);
    });
  });
  document.querySelectorAll(".episode a.back").forEach(function (a) {
    a.addEventListener("click", function (event) {
      event.preventDefault();
      var state = readState();
      state.episode = null;
      writeState(state);
      window.scrollTo(0, 0);
    });
  });
  window.addEventListener("hashchange", function () { render(true); });
  render(true);
})();
"""


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m agents.viewer results.jsonl [-o viewer.html] [--embed]``."""
    parser = argparse.ArgumentParser(description="Write an HTML viewer for a results.jsonl file.")
    parser.add_argument("results", type=Path, help="results.jsonl written by an evaluation run")
    parser.add_argument(
        "-o", "--out", type=Path, help="output HTML file (default: viewer.html next to results)"
    )
    parser.add_argument(
        "--embed", action="store_true", help="embed the images: one self-contained HTML file"
    )
    args = parser.parse_args(argv)
    out = args.out or args.results.with_name("viewer.html")
    embed = True if args.embed else None
    path = write_viewer(load_results(args.results), out, base_dir=args.results.parent, embed=embed)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
