"""Write one example picture per built-in suite into docs/images/ (used by docs/tasks.md).

Run ``python scripts/make_doc_images.py``. For each suite it saves item 0 of seed 0 at difficulty 2
as ``<suite>.jpg`` (image 1 as the model first sees it) and ``<suite>_drawn.jpg`` (the first new
image after the env executed the item's key drawings), plus the question in ``examples.md``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from drawenv import Draw
from drawenv.env import DrawSpatialEnv
from drawenv.prompts import question_prompt
from drawenv.tasks import SUITES

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# Example items (seed 0, index 0, difficulty 2)", ""]
    for suite, generate in SUITES.items():
        record = generate(0, 0, 2)
        env = DrawSpatialEnv(task=[record])
        obs, _ = env.reset(seed=0)
        Image.fromarray(obs["images"][0]).save(OUT / f"{suite}.jpg", quality=85)
        if record.key_operations:
            obs, _, _, _, info = env.step(Draw(record.key_operations))
            drawn = obs["images"][info["new_image_indices"][0] - 1]
            Image.fromarray(drawn).save(OUT / f"{suite}_drawn.jpg", quality=85)
        sizes = [(image.shape[1], image.shape[0]) for image in record.images]
        lines += [f"## {suite}", "", "```text", question_prompt(record, sizes), "```"]
        lines += [f"Answer: `{record.answer}`", ""]
        print(f"wrote {OUT / suite}.jpg")
    (OUT / "examples.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
