"""Hardening of the agents side: file paths confined to their folder, a light viewer page,
checkpoint clean-up, and one-line errors for command-line mistakes."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import agents.viewer as viewer
from agents.evaluate import print_progress
from agents.viewer import load_results, write_viewer

DRAWENV = Path(sys.executable).with_name("drawenv")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DRAWENV), *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600
    )


def png(path: Path, color=(200, 60, 60), size=(96, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def episode(images: list[str], drawn: list[str] = ()) -> dict:
    turn = {"text": "<answer>1</answer>", "new_images": [2], "new_image_paths": list(drawn)}
    return {"episode": 0, "suite": "maze", "images": images, "turns": [turn]}


# -- the viewer --------------------------------------------------------------------------------


def test_viewer_does_not_read_paths_outside_the_results_folder(tmp_path):
    run_dir = tmp_path / "run"
    secret = tmp_path / "secret.png"
    png(secret, (1, 2, 3))
    png(run_dir / "images" / "ok.png")
    paths = ["/etc/hostname", "../secret.png", str(secret), "images/../../secret.png"]
    for embed in (True, False):
        page = write_viewer(
            [episode([*paths, "images/ok.png"])], run_dir / "index.html", base_dir=run_dir,
            embed=embed,
        ).read_text(encoding="utf-8")  # fmt: skip
        assert page.count("outside the results folder, not shown") == len(paths)
        assert page.count('class="img-missing"') == len(paths)
        assert 'secret.png"' not in page.replace("<code>", '"')  # never an img src
        assert len(re.findall(r"<img ", page)) == 1
    hostname = Path("/etc/hostname")
    if hostname.is_file() and hostname.read_bytes().strip():
        import base64

        assert base64.b64encode(hostname.read_bytes()).decode() not in page


def test_viewer_page_links_image_files_lazily(tmp_path):
    names = [f"images/ep0_img{k}.png" for k in (1, 2)]
    for name in names:
        png(tmp_path / name, size=(640, 480))
        # Noise: a realistic PNG size, so the page is clearly smaller than the images.
        Image.effect_noise((640, 480), 64).convert("RGB").save(tmp_path / name)
    total = sum((tmp_path / n).stat().st_size for n in names)
    page = write_viewer(
        [episode(names[:1], names[1:])], tmp_path / "index.html", base_dir=tmp_path, embed=False
    )
    text = page.read_text(encoding="utf-8")
    assert page.stat().st_size < total / 4
    assert "data:image" not in text
    assert re.findall(r'<img src="([^"]+)"[^>]*loading="lazy"', text) == names
    assert "img-src data: 'self'" in text


def test_viewer_embeds_small_runs_and_links_large_ones_by_default(tmp_path, monkeypatch):
    png(tmp_path / "images" / "a.png")
    records = [episode(["images/a.png"])]
    small = write_viewer(records, tmp_path / "small.html", base_dir=tmp_path).read_text()
    assert "data:image/png;base64," in small
    monkeypatch.setattr(viewer, "EMBED_LIMIT", 10)
    large = write_viewer(records, tmp_path / "large.html", base_dir=tmp_path).read_text()
    assert '<img src="images/a.png"' in large and "data:image" not in large
    forced = write_viewer(records, tmp_path / "f.html", base_dir=tmp_path, embed=True).read_text()
    assert "data:image/png;base64," in forced


def test_viewer_links_from_a_page_in_another_folder(tmp_path):
    png(tmp_path / "run" / "images" / "a b.png")
    page = write_viewer(
        [episode(["images/a b.png"])], tmp_path / "pages" / "v.html", base_dir=tmp_path / "run",
        embed=False,
    ).read_text()  # fmt: skip
    assert '<img src="../run/images/a%20b.png"' in page


def test_load_results_of_broken_json_is_one_clear_error(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"episode": 0}\n{"episode": \n')
    with pytest.raises(ValueError, match=r"line 2 of .*broken\.jsonl, got invalid JSON"):
        load_results(path)


# -- SFT chat images ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agents.vlm.policy import VLMPolicy
    from agents.vlm.testing import save_tiny_model

    return VLMPolicy.from_pretrained(save_tiny_model(tmp_path_factory.mktemp("m") / "model"))


def chat(image: str) -> dict:
    user = [{"type": "image", "image": image}, {"type": "text", "text": "How many?"}]
    return {
        "messages": [
            {"role": "system", "content": "Answer."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": "<answer>1</answer>"},
        ]
    }


@pytest.mark.parametrize("where", ["../outside.png", "img/../../outside.png", "ABSOLUTE"])
def test_sft_chat_images_must_stay_in_the_files_folder(tmp_path, tiny_policy, where):
    from agents.train.sft_examples import load_examples

    outside = png(tmp_path / "outside.png")
    image = str(outside) if where == "ABSOLUTE" else where
    data = tmp_path / "data" / "sft.jsonl"
    png(data.parent / "img" / "in.png", size=(56, 56))
    data.write_text(json.dumps(chat("img/in.png")) + "\n" + json.dumps(chat(image)) + "\n")
    with pytest.raises(ValueError, match=r"sft\.jsonl:2: Expected an image path inside") as error:
        load_examples(tiny_policy, data)
    assert repr(image) in str(error.value)
    data.write_text(json.dumps(chat("img/in.png")) + "\n")
    assert len(load_examples(tiny_policy, data)[0]) == 1


# -- checkpoints -------------------------------------------------------------------------------


def fake_checkpoint(folder: Path) -> Path:
    from agents.train.checkpoint import STATE_FILE

    folder.mkdir(parents=True)
    (folder / STATE_FILE).write_bytes(b"x")
    return folder


def test_remove_stale_and_prune_checkpoints_on_real_folders(tmp_path):
    from agents.train.checkpoint import prune_checkpoints, remove_stale

    for step in (1, 2, 3, 10):
        fake_checkpoint(tmp_path / f"checkpoint-{step}")
    stale = [
        tmp_path / ".checkpoint-4.tmp-ab12_x",
        tmp_path / ".final.tmp-zz",
        tmp_path / ".checkpoint-3.old-77",
    ]
    for path in stale:
        fake_checkpoint(path)
    # A crash between the two renames: the complete old folder is all there is of checkpoint-5.
    fake_checkpoint(tmp_path / ".checkpoint-5.old-12")
    (tmp_path / ".hidden").mkdir()
    assert sorted(remove_stale(tmp_path)) == sorted(stale)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".hidden", *(f"checkpoint-{s}" for s in (1, 10, 2, 3, 5))]
    deleted = prune_checkpoints(tmp_path, 2, keep=(tmp_path / "checkpoint-1",))
    assert sorted(p.name for p in deleted) == ["checkpoint-2", "checkpoint-3"]
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == [
        "checkpoint-1", "checkpoint-10", "checkpoint-5",
    ]  # fmt: skip
    assert prune_checkpoints(tmp_path, 0) == []


def test_keep_last_is_checked():
    pytest.importorskip("torch")
    from agents.train.config import SFTConfig
    from drawenv.errors import DrawEnvError

    assert SFTConfig(model="m", data="d.jsonl").keep_last == 3
    with pytest.raises(DrawEnvError, match="keep_last"):
        SFTConfig(model="m", data="d.jsonl", keep_last=-1)


def test_sft_run_keeps_the_newest_checkpoints_and_cleans_up_on_resume(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agents.train.config import SFTConfig
    from agents.train.sft import train_sft
    from agents.train.sft_data import export_sft
    from agents.vlm.testing import save_tiny_model

    torch.set_num_threads(1)
    model = save_tiny_model(tmp_path / "model")
    data, _ = export_sft(["counting"], episodes=2, out=tmp_path / "data" / "sft.jsonl")
    run_dir = tmp_path / "run"
    settings = {"model": str(model), "data": str(data), "batch_size": 1, "epochs": 3}
    settings |= {"dtype": "float32", "device": "cpu", "save_every": 1, "output_dir": str(run_dir)}
    train_sft(SFTConfig(**settings, steps=5, keep_last=2))
    # Steps 1-4 were saved (the last step is the final model); the newest two stay.
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    stale = [run_dir / ".checkpoint-9.tmp-k3j_x1", run_dir / ".checkpoint-4.old-123"]
    for path in stale:
        fake_checkpoint(path)
    # Resumed from checkpoint-3 with keep_last=1: it writes checkpoint-4 and 5 again, and the
    # checkpoint it resumed from stays beside the newest one.
    resumed = {**settings, "steps": 6, "keep_last": 1, "resume": str(run_dir / "checkpoint-3")}
    train_sft(SFTConfig(**resumed))
    assert not any(path.exists() for path in stale)
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-5"]
    assert (run_dir / "final" / "model.safetensors").is_file()


# -- progress bars -----------------------------------------------------------------------------


def test_progress_without_a_terminal_is_one_line_at_the_end(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    for done in range(1, 4):
        print_progress("oracle on maze", done, 3)
    assert "\r" not in stream.getvalue()
    assert stream.getvalue().splitlines() == [f"{'oracle on maze':<28} 3/3"]


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["demo", "-n", "0"], "-n"),
        (["demo", "-n", "-5"], "-n"),
        (["eval", "--agent", "oracle", "--task", "maze", "-n", "0"], "-n"),
        (["eval", "--agent", "oracle", "--task", "maze", "--max-turns", "0"], "--max-turns"),
        (["eval", "--agent", "oracle", "--task", "maze", "--max-pixels", "-1"], "--max-pixels"),
        (["eval", "--agent", "vlm", "--model", "m", "--k", "0"], "--k"),
        (["eval", "--agent", "vlm", "--model", "m", "--batch-size", "0"], "--batch-size"),
        (["export-sft", "--out", "x.jsonl", "-n", "0"], "-n"),
    ],
)
def test_non_positive_counts_are_refused(tmp_path, args, flag):
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2
    command = args[0]
    assert done.stderr.startswith(f"drawenv {command}: Invalid `{flag}`: expected an integer >= 1")
    assert len(done.stderr.strip().splitlines()) == 1
    assert list((tmp_path / "runs" / "demo").iterdir()) == []


def test_eval_on_a_small_jsonl_file_plays_each_record_once(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_hardening_drawenv import two_record_file

    path = two_record_file(tmp_path)
    out = tmp_path / "out"
    done = run("eval", "--agent", "random", "--task", str(path), "-n", "100", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 records, so -n 100 plays each record once" in done.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == ["q1", "q2"]


def test_view_of_a_broken_file_and_a_missing_model_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    done = run("view", str(broken))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("drawenv view: Expected a JSON object on line 1")
    done = run("eval", "--agent", "vlm", "--model", str(tmp_path / "nonexistent"), "--task", "maze")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("drawenv eval: Invalid `--model`: expected a local model folder")


def test_view_embed_flag_makes_one_self_contained_file(tmp_path):
    png(tmp_path / "images" / "a.png")
    (tmp_path / "results.jsonl").write_text(json.dumps(episode(["images/a.png"])) + "\n")
    assert run("view", str(tmp_path / "results.jsonl"), "--embed").returncode == 0
    assert "data:image/png;base64," in (tmp_path / "index.html").read_text()


@pytest.mark.parametrize("stage", ["init", "sft", "reflect", "grpo"])
def test_train_stage_help_names_the_command(stage):
    done = run("train", stage, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: drawenv train {stage} ")
