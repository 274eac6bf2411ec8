"""The ``drawenv`` command line: demo, eval, view, show, export-sft, train (``docs/cli.md``)."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

from agents.evaluate import evaluate, evaluate_suites, report
from agents.scripted import AGENTS, make_agent
from drawenv import VILASR_ENV_ID
from drawenv.errors import DrawEnvError, check_choice, invalid_argument
from drawenv.rewards.scores import MRA_CONVENTIONS
from drawenv.tasks import SUITES

DEMO_EPISODES = 30  # per agent and suite: the demo takes about two minutes on 2 CPU cores


def run_and_report(
    agents: list[str], suites: list[str], episodes: int, seed: int, out: Path | None, **env_kwargs
) -> list[dict]:
    """Evaluate every agent on every suite, print the table, write results and the viewer."""
    results: list[dict] = []
    for name in agents:
        play = functools.partial(
            evaluate, make_agent(name), episodes=episodes, seed=seed, **env_kwargs
        )
        results += evaluate_suites(play, suites, out, first_episode=len(results))
    report(results, out)
    return results


def check_counts(args: argparse.Namespace, **options: str) -> None:
    """Refuse a count option below 1: ``options`` maps each attribute of ``args`` to its flag
    (an unset optional count, None, is left alone)."""
    for attribute, flag in options.items():
        value = getattr(args, attribute)
        if value is not None and not (isinstance(value, int) and value >= 1):
            hint = f"Give a positive count, e.g. `{flag} 10`."
            raise invalid_argument(flag, value, "an integer >= 1", hint)


def jsonl_episodes(path: str, episodes: int) -> int:
    """Episodes to play from the JSONL task file ``path``: each record at most once, so ``-n``
    above its record count plays every record once (and says so)."""
    from drawenv.tasks.jsonl import load_jsonl

    size = len(load_jsonl(path))
    if episodes > size:
        print(
            f"--task {path}: {size} record{'s' if size != 1 else ''}, so -n {episodes} plays "
            "each record once.",
            file=sys.stderr,
        )
    return min(episodes, size)


def cmd_demo(args: argparse.Namespace) -> None:
    check_counts(args, episodes="-n")
    out = Path(args.out) if args.out else Path("runs") / "demo"
    print(
        f"DrawSpatial-v0 demo: {len(AGENTS)} agents x {len(SUITES)} suites x {args.episodes} "
        f"episodes (seed {args.seed}, difficulty {args.difficulty})"
    )
    run_and_report(
        list(AGENTS), list(SUITES), args.episodes, args.seed, out, difficulty=args.difficulty
    )


def check_player(args: argparse.Namespace) -> None:
    """``eval`` plays ``--agent NAME`` or a served model (``--api-base URL --model NAME``)."""
    if args.api_base is None:
        if args.agent is None:
            raise DrawEnvError(
                f"`drawenv eval` needs `--agent` (one of {', '.join([*AGENTS, 'vlm'])}) or a "
                "served model, e.g. `--api-base http://127.0.0.1:8000/v1 --model NAME`."
            )
        check_choice("--agent", args.agent, [*AGENTS, "vlm"])
        return
    if args.agent is not None:
        raise DrawEnvError(
            f"`--api-base` plays the served `--model`; leave out `--agent {args.agent}`."
        )
    if not args.model:
        raise DrawEnvError(
            "`--api-base` needs `--model NAME`, a model the server serves, e.g. "
            "`--api-base http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-VL-3B-Instruct`."
        )
    check_counts(args, concurrency="--concurrency", max_tokens="--max-tokens")
    if not args.retries >= 0:
        raise invalid_argument("--retries", args.retries, "an integer >= 0", "e.g. `--retries 4`.")
    if not args.timeout > 0:
        raise invalid_argument("--timeout", args.timeout, "seconds > 0", "e.g. `--timeout 120`.")
    check_choice("--image-format", args.image_format, ["png", "jpeg"])
    if args.temperature is not None and not args.temperature >= 0:
        raise DrawEnvError(
            f"`--temperature` must be >= 0 (0 is greedy), got {args.temperature}, e.g. "
            "`--temperature 0.7`."
        )


def eval_served(args: argparse.Namespace, suites: list[str], out: Path | None, **env_kwargs):
    """``drawenv eval --api-base URL --model NAME``: episodes against a chat-completions server."""
    from agents.served import run_served_eval

    run_served_eval(
        args.api_base,
        args.model,
        suites=suites,
        episodes=args.n,
        seed=args.seed,
        out=out,
        concurrency=args.concurrency,
        timeout=args.timeout,
        retries=args.retries,
        max_tokens=args.max_tokens,
        temperature=0.0 if args.temperature is None else args.temperature,
        image_format=args.image_format,
        coords=args.coords or "pixel",
        **env_kwargs,
    )


def cmd_eval(args: argparse.Namespace) -> None:
    check_player(args)
    check_counts(args, n="-n", k="--k", batch_size="--batch-size", max_turns="--max-turns")
    check_counts(args, max_pixels="--max-pixels")
    suites = list(SUITES) if args.task == "all" else [args.task]
    for suite in suites:
        if not suite.endswith(".jsonl"):
            check_choice("--task", suite, [*SUITES, "mixed"])
    if args.task.endswith(".jsonl"):
        args.n = jsonl_episodes(args.task, args.n)
    out = Path(args.out) if args.out else None
    env_kwargs = {"protocol": args.protocol, "difficulty": args.difficulty}
    if check_choice("--mra", args.mra, MRA_CONVENTIONS) != "drawenv":
        env_kwargs["reward_kwargs"] = {"mra": args.mra}  # the default preset, vilasr, takes it
    if args.max_pixels is not None:
        env_kwargs["max_pixels"] = args.max_pixels
    if args.max_turns is not None:
        env_kwargs["max_turns"] = args.max_turns
    if check_choice("--env", args.env, ["DrawSpatial-v0", VILASR_ENV_ID]) == VILASR_ENV_ID:
        if args.api_base is not None or args.agent == "vlm" or args.mra != "drawenv":
            raise DrawEnvError(
                f"`--env {VILASR_ENV_ID}` plays the scripted agents (`--agent NAME`) and pays "
                "ViLaSR's own reward: leave out `--api-base`, `--agent vlm` and `--mra`."
            )
        env_kwargs = {k: v for k, v in env_kwargs.items() if k != "protocol"}
        env_kwargs.update(env_id=VILASR_ENV_ID, vilasr_repo=args.vilasr_repo)
        run_and_report([args.agent], suites, args.n, args.seed, out, **env_kwargs)
        return
    if args.api_base is not None:
        eval_served(args, suites, out, **env_kwargs)
        return
    if args.agent != "vlm":
        env_kwargs["coords"] = args.coords or "pixel"
        run_and_report([args.agent], suites, args.n, args.seed, out, **env_kwargs)
        return
    if not args.model:
        raise DrawEnvError(
            "`--agent vlm` needs `--model PATH`, a local model folder, e.g. "
            "`drawenv eval --agent vlm --model ~/models/Qwen2.5-VL-3B-Instruct --task maze`."
        )
    if args.temperature is not None and not args.temperature >= 0:
        raise DrawEnvError(
            f"`--temperature` must be >= 0 (0 is greedy), got {args.temperature}, e.g. "
            "`--temperature 0.7`."
        )
    if not Path(args.model).expanduser().is_dir():
        raise DrawEnvError(
            f"Invalid `--model`: expected a local model folder, got {args.model!r}, which is "
            "not a folder. Give the folder holding config.json and the weights."
        )
    from agents.vlm.evaluate import run_vlm_eval  # torch and transformers: the `agents` extra

    run_vlm_eval(
        args.model,
        suites=suites,
        episodes=args.n,
        k=args.k,
        temperature=args.temperature,
        seed=args.seed,
        out=out,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        decode=args.decode,
        coords=args.coords,
        **env_kwargs,
    )


def cmd_view(args: argparse.Namespace) -> None:
    from agents.viewer import load_results, write_viewer

    results_path = Path(args.results)
    if not results_path.is_file():
        raise DrawEnvError(
            f"No results file at {str(results_path)!r}. Give the results.jsonl that "
            "`drawenv eval --out DIR` or `drawenv demo` wrote, e.g. "
            "`drawenv view runs/demo/results.jsonl`."
        )
    page = write_viewer(
        load_results(results_path),
        results_path.with_name("index.html"),
        base_dir=results_path.parent,
        embed=True if args.embed else None,
    )
    print(f"viewer: {page}")


def cmd_show(args: argparse.Namespace) -> None:
    from PIL import Image

    from drawenv.prompts import question_prompt

    check_choice("--task", args.task, SUITES)
    record = SUITES[args.task](args.seed, args.index, args.difficulty)
    out = Path(args.out or f"{args.task}-{args.index}.png")
    paths = []
    for k, image in enumerate(record.images, start=1):
        path = out if len(record.images) == 1 else out.with_name(f"{out.stem}-{k}{out.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(path)
    sizes = [(image.shape[1], image.shape[0]) for image in record.images]
    print(question_prompt(record, sizes))
    print(f"answer: {record.answer}")
    for path in paths:
        print(f"wrote {path}")


def cmd_export_sft(args: argparse.Namespace) -> None:
    from agents.train.sft_data import export_sft

    check_counts(args, n="-n", max_pixels="--max-pixels")
    suites = list(SUITES) if args.task == "mixed" else args.task.split(",")
    for suite in suites:
        check_choice("--task", suite, [*SUITES, "mixed"])
    path, stats = export_sft(
        suites,
        episodes=args.n,
        seed=args.seed,
        out=Path(args.out),
        corrections=args.corrections,
        protocol=args.protocol,
        coords=args.coords or "pixel",
        difficulty=args.difficulty,
        max_pixels=args.max_pixels,
    )
    print(
        f"wrote {stats['episodes']} trajectories ({stats['reflective']} with self-corrections) "
        f"to {path}"
    )


def cmd_convert(args: argparse.Namespace) -> None:
    from drawenv.tasks.convert import FORMATS, convert_file

    fmt = check_choice("--format", args.format, FORMATS)
    count = convert_file(args.src, args.dst, fmt, image_root=args.image_root)
    print(f"wrote {count} task record{'s' if count != 1 else ''} to {args.dst}")


TRAIN_STAGES = {
    "init": "agents.train.scratch",
    "sft": "agents.train.sft",
    "reflect": "agents.train.reflect",
    "grpo": "agents.train.grpo",
}
"""``drawenv train STAGE`` runs the ``main`` of this module with the rest of the command line."""


def cmd_train(args: argparse.Namespace) -> None:
    import importlib

    module = importlib.import_module(TRAIN_STAGES[args.stage])
    code = module.main(args.args)
    if code:
        sys.exit(code)


def _add_item_options(p: argparse.ArgumentParser, seed_help: str = "first episode seed") -> None:
    """Which items a command plays: the seed and the procedural difficulty."""
    p.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default 0)")
    p.add_argument("--difficulty", type=int, default=1, help="1, 2 or 3 (default 1)")


def _add_env_options(p: argparse.ArgumentParser) -> None:
    """The env settings every playing command takes, with one set of defaults."""
    _add_item_options(p)
    p.add_argument("--protocol", default="vilasr", help="vilasr or tool_call (default vilasr)")
    p.add_argument(
        "--coords",
        help="pixel or norm1000 (default: pixel; with --agent vlm the model family's own)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        help="env image budget: images are resized to at most this many pixels (default 200704)",
    )


def _add_demo(commands: Any) -> None:
    p = commands.add_parser("demo", help="run every baseline on every built-in suite")
    p.add_argument(
        "-n",
        "--episodes",
        type=int,
        default=DEMO_EPISODES,
        help=f"episodes per agent and suite (default {DEMO_EPISODES})",
    )
    _add_item_options(p)
    p.add_argument("--out", help="output folder (default runs/demo)")
    p.set_defaults(run=cmd_demo)


def _add_eval(commands: Any) -> None:
    p = commands.add_parser("eval", help="evaluate one agent (or a local VLM) on a suite")
    p.add_argument(
        "--agent", help=f"one of {', '.join(AGENTS)}, vlm (or a served model: --api-base)"
    )
    p.add_argument(
        "--task", default="all", help=f"a suite ({', '.join(SUITES)}), mixed, all, or a .jsonl file"
    )
    p.add_argument("-n", type=int, default=20, help="episodes per suite (default 20)")
    p.add_argument("--out", help="write results.jsonl, images and index.html here")
    p.add_argument("--max-turns", type=int, help="model turns per episode (default: the suite's)")
    p.add_argument(
        "--env",
        default="DrawSpatial-v0",
        help=f"DrawSpatial-v0 (default) or {VILASR_ENV_ID} (ViLaSR's rollout and reward; "
        "ViLaSR-converted records also get ViLaSR's per-type evaluation table)",
    )
    p.add_argument(
        "--vilasr-repo",
        help=f"with --env {VILASR_ENV_ID}: a local ViLaSR checkout to read its prompts from",
    )
    p.add_argument(
        "--mra",
        default="drawenv",
        help="MRA convention of numeric accuracy: drawenv, vilasr (ViLaSR's training reward), "
        "vsi (VSI-Bench's scorer) or vilasr_eval (ViLaSR's eval script) (default drawenv; "
        "docs/rewards.md)",
    )
    _add_env_options(p)
    vlm = p.add_argument_group("with --agent vlm")
    vlm.add_argument(
        "--model",
        help="a local model folder (nothing downloads); with --api-base the served model's name",
    )
    vlm.add_argument("--k", type=int, default=1, help="samples per task, pass@k (default 1)")
    vlm.add_argument(
        "--temperature",
        type=float,
        help="sample at this temperature (default: greedy for --k 1, the model's sampling "
        "settings for --k above 1)",
    )
    vlm.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, … (default cpu)")
    vlm.add_argument(
        "--dtype", default="float32", help="float32, bfloat16, float16 (default float32)"
    )
    vlm.add_argument(
        "--batch-size", type=int, default=32, help="episodes per rollout batch (default 32)"
    )
    vlm.add_argument(
        "--decode",
        choices=("auto", "static", "eager"),
        default="auto",
        help="static: a fixed-length cache, each step a CUDA graph on CUDA; eager: a growing "
        "cache; auto: static on CUDA, eager elsewhere (default auto)",
    )
    served = p.add_argument_group("a served model: --api-base URL --model NAME")
    served.add_argument(
        "--api-base",
        help="API root of an OpenAI-compatible chat-completions server, e.g. "
        "http://127.0.0.1:8000/v1 (key: the OPENAI_API_KEY variable)",
    )
    served.add_argument(
        "--concurrency", type=int, default=8, help="requests in flight at once (default 8)"
    )
    served.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per request (default 120)"
    )
    served.add_argument(
        "--retries",
        type=int,
        default=4,
        help="retries after 408/429/5xx, timeouts and connection errors, with exponential "
        "backoff from 1 s (default 4)",
    )
    served.add_argument(
        "--max-tokens", type=int, default=1024, help="most tokens per model turn (default 1024)"
    )
    served.add_argument(
        "--image-format", default="png", help="png or jpeg: how images are sent (default png)"
    )
    p.set_defaults(run=cmd_eval)


def _add_view(commands: Any) -> None:
    p = commands.add_parser("view", help="build the HTML viewer from a results.jsonl")
    p.add_argument("results", help="path to results.jsonl")
    p.add_argument(
        "--embed",
        action="store_true",
        help="embed every image: one self-contained index.html (default: link the image files "
        "beside it, embedding them only when they total at most 1 MiB)",
    )
    p.set_defaults(run=cmd_view)


def _add_show(commands: Any) -> None:
    p = commands.add_parser("show", help="write one task's image(s) and print its prompt")
    p.add_argument("--task", required=True, help=f"a suite: {', '.join(SUITES)}")
    p.add_argument("--index", type=int, default=0, help="item index (default 0)")
    _add_item_options(p, seed_help="suite seed")
    p.add_argument("--out", help="PNG path (default <task>-<index>.png)")
    p.set_defaults(run=cmd_show)


def _add_export_sft(commands: Any) -> None:
    p = commands.add_parser("export-sft", help="write oracle trajectories as chat-message JSONL")
    p.add_argument("--task", default="mixed", help="mixed, a suite, or suites joined by commas")
    p.add_argument("-n", type=int, default=50, help="episodes per suite (default 50)")
    p.add_argument("--out", required=True, help="output .jsonl; images go in a folder beside it")
    p.add_argument(
        "--corrections",
        type=float,
        default=0.5,
        help="share of episodes with an injected self-correction (default 0.5)",
    )
    _add_env_options(p)
    p.set_defaults(run=cmd_export_sft)


def _add_convert(commands: Any) -> None:
    p = commands.add_parser(
        "convert",
        help="convert a ViLaSR or VSI-Bench file into a drawenv task JSONL",
        description="Convert a JSON list or JSONL of ViLaSR RL/evaluation items or VSI-Bench "
        "items (with extracted frames) into a JSONL dataset for --task (docs/tasks.md).",
    )
    p.add_argument("src", help="the source .json or .jsonl file")
    p.add_argument("dst", help="the .jsonl to write, in a folder that contains every image")
    p.add_argument("--format", default="auto", help="auto, vilasr or vsibench (default auto)")
    p.add_argument(
        "--image-root", help="the folder relative image paths start from (default: src's folder)"
    )
    p.set_defaults(run=cmd_convert)


def _add_train(commands: Any) -> None:
    p = commands.add_parser(
        "train",
        help="train a VLM: init (from scratch), sft (cold start), reflect or grpo",
        description="drawenv train STAGE --config FILE [key=value ...]; "
        "`drawenv train STAGE --help` lists every setting of the stage (docs/training.md).",
    )
    p.add_argument("stage", choices=list(TRAIN_STAGES), help="init, sft, reflect or grpo")
    p.add_argument("args", nargs=argparse.REMAINDER, help="--config FILE and key=value settings")
    p.set_defaults(run=cmd_train)


def build_parser() -> argparse.ArgumentParser:
    """The ``drawenv`` parser: one sub-command per ``_add_<command>``."""
    parser = argparse.ArgumentParser(
        prog="drawenv",
        description="Evaluate agents in DrawSpatial-v0 and inspect what they did.",
        epilog="Start with `drawenv demo`; see docs/cli.md for every command.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_demo,
        _add_eval,
        _add_view,
        _add_show,
        _add_export_sft,
        _add_convert,
        _add_train,
    ):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``drawenv`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except DrawEnvError as error:
        print(f"drawenv {args.command}: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
