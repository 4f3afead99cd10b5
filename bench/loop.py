"""Does the distil loop beat random selection at the same teacher spend? Two arms, side by side, in one run.

Both arms run ``distill-loop`` (flows/distill.py) against the same offline teacher, on the same images,
with the same request budget, student (the demo's random-weight Qwen2.5-VL, hidden 128 with BPE merges,
built once here for both: docs/training.md), tuner (full), steps per round, learning rate, seed and
rounds; only ``selection`` differs:

  loop    - rounds after the first ask targeted questions where the judge ranked the student below the
            teacher (a probe of training rows and the held-out verdicts) and the pool images the student
            is least sure about (mean token log-probability of its own answer);
  random  - rounds after the first ask as many random pool images as the loop asks units
            (targeted_items + doubt_images); no probe.
  one-shot (--one-shot) - random pool images all asked in round 0 (seed_count = the seed plus what random
            asks in later rounds), one training of rounds x max-steps steps: one-shot random selection.

Both arms split the images by content and seed, so their held-out images (and, the teacher being
deterministic, their held-out rows) are the same: the bench checks this and stops if not. The request
budget defaults to the loop's own largest spend (round 0's units at full price, then per round its
targeted units at 1 + targeted_questions requests and its doubted images at 1 + questions), so the
random arm, whose units all cost 1 + questions, is capped at the loop's spend.

Every Prefect task runs its body in this bench (PREFECT_TASKS_REFRESH_CACHE): each arm pays its own
requests, answered from its own ledger when repeated, and no verdict is lost to a cache hit filed in
the other arm's folder.

Printed: each arm's curve (teacher spend, rows added by reason, win-or-tie vs the teacher with its 95 %
Wilson interval, ROUGE-L, degenerate answers, judge spend apart), a side-by-side table at equal spend,
and the final differences loop minus random (at the last rounds, and at the lower of the two final
spends), with paired counts over the same held-out cases and an exact sign test; a PNG of
both curves is written into the output folder (curves.png: win-or-tie against USD; rouge.png: ROUGE-L
against requests), with summary.json beside it.

The photos are small camera-like pictures (illumination, texture, shapes, sensor noise; four sizes and
both orientations), not flat colours: the offline teacher answers and judges from what it measures in
them (colours, size, brightness, contrast, texture, brightest quarter, orientation).

Run: .venv/bin/python bench/loop.py [--images 24] [--rounds 3] [--max-steps 40] [--budget-requests N]
     [--one-shot] [--out DIR] [--seed 42]          # defaults: ~8-10 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.measure import print_table  # noqa: E402
from bench.photos import _illumination, _texture  # noqa: E402
from vqa_distill.cli.demo import (  # noqa: E402  the demo's student: it learns in ~120 CPU steps
    DEMO_HIDDEN,
    DEMO_LAYERS,
    DEMO_LEARNING_RATE,
    DEMO_MAX_PIXELS,
    DEMO_MERGES,
)
from vqa_distill.student.plots import figure_png, new_figure  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench-offline-not-a-real-key")
# Every task runs its body (the ledger of its own folder still answers a repeat for free). Without this,
# a judge call already made into another folder (both arms' round-0 students are the same model) is a
# Prefect cache hit that the evaluation never files into its own ledger: it counts as failed and the
# verdict is left out (tasks/judge.py ask_online drops the cached result).
os.environ["PREFECT_TASKS_REFRESH_CACHE"] = "true"

PROMPT = "Describe this picture."
PHOTO_SIZES = ((320, 240), (240, 320), (288, 288), (352, 224))  # landscape, portrait, square, wide
PHOTO_NOISE_SIGMA = 5.0
PHOTO_SHAPES = 8  # a small photo gets fewer shapes than a 12 MP one (bench/photos.SHAPES = 80)
HOLDOUT_SHARE = 0.2
SEED_IMAGES = 4
QUESTIONS = 3
TARGETED_ITEMS = 4
TARGETED_QUESTIONS = 2
DOUBT_IMAGES = 2
PROBE_ROWS = 12
ANSWER_TOKENS = 128  # the teacher's answers to one question are 30-90 tokens with the demo's tokenizer
WARMUP_RATIO = "0.1"  # the demo's: full tuning of random weights with no warm-up stalls
ARMS = ("loop", "random")


def write_photos(folder: Path, count: int) -> Path:
    """Write ``count`` small camera-like JPEGs (distinct bytes, four sizes) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rng = np.random.default_rng(7000 + index)
        width, height = PHOTO_SIZES[index % len(PHOTO_SIZES)]
        image = _illumination(rng, width, height)
        _draw_shapes(ImageDraw.Draw(image), rng, width, height)
        pixels = np.asarray(image, dtype=np.int16) + _texture(rng, width, height)[:, :, None]
        pixels += rng.normal(0.0, PHOTO_NOISE_SIGMA, (height, width, 3)).astype(np.int16)
        photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        photo.save(folder / f"photo_{index:03d}.jpg", format="JPEG", quality=92, subsampling="4:2:0")
    return folder


def _draw_shapes(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    """Hard edges as in bench/photos (boxes, ellipses, lines), fewer of them for a small photo."""
    for _ in range(PHOTO_SHAPES):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle((x0, y0, x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 4)))


def default_budget(holdout: int, seed: int, rounds: int) -> int:
    """The loop's largest spend in requests: round 0 at 1 + questions per unit, then its targeted and doubted units."""
    per_image = 1 + QUESTIONS
    per_round = TARGETED_ITEMS * (1 + TARGETED_QUESTIONS) + DOUBT_IMAGES * per_image
    return (holdout + seed) * per_image + (rounds - 1) * per_round


def arm_params(
    name: str, args: argparse.Namespace, images: Path, out: Path, base_url: str, model: str
) -> Any:
    """The DistillParams of one arm: all the same but ``selection`` (and, one-shot, the rounds and seed size)."""
    from vqa_distill.loop.params import DistillParams
    from vqa_distill.student.handoff import StudentOptions
    from vqa_distill.teacher.params import TeacherParams

    one_shot = name == "one-shot"
    teacher = TeacherParams(
        images=str(images), out=str(out / name), prompts=[PROMPT], base_url=base_url, rpm=60_000,
        tpm=100_000_000, questions=QUESTIONS, retry_delay=0.05,
    )  # fmt: skip
    student = StudentOptions(
        model_id_or_path=model, cuda_devices="cpu", tuner=args.tuner, learning_rate=args.learning_rate,
        max_steps=args.max_steps * (args.rounds if one_shot else 1), gradient_accumulation_steps=args.accumulation,
        num_proc=1, max_length=1024, logging_steps=5, max_pixels=DEMO_MAX_PIXELS, eval_limit=0,
        data_seed=args.seed, swift_args=["--seed", str(args.seed), "--warmup_ratio", WARMUP_RATIO, "--save_only_model", "true"],
    )  # fmt: skip
    later = (args.rounds - 1) * (TARGETED_ITEMS + DOUBT_IMAGES)
    return DistillParams(
        teacher=teacher, student=student, rounds=1 if one_shot else args.rounds,
        seed_count=SEED_IMAGES + (later if one_shot else 0), holdout_share=HOLDOUT_SHARE,
        budget_requests=args.budget_requests, doubt_images=DOUBT_IMAGES, targeted_items=TARGETED_ITEMS,
        targeted_questions=TARGETED_QUESTIONS, probe_rows=PROBE_ROWS, eval_max_new_tokens=ANSWER_TOKENS,
        selection="loop" if name == "loop" else "random", seed=args.seed,
    )  # fmt: skip


def run_arm(params: Any) -> tuple[list[Any], float]:
    """Run one arm's ``distill-loop`` to the end; its round records and wall seconds."""
    from flows.distill import distill_loop
    from vqa_distill.flow_state import run_flow
    from vqa_distill.loop.state import RoundRecord

    started = time.perf_counter()
    run = run_flow(distill_loop(params, return_state=True))
    if run.result is None or isinstance(run.result, BaseException):
        raise SystemExit(f"the {params.selection} arm failed: {run.result}")
    records = [r if isinstance(r, RoundRecord) else RoundRecord.model_validate(r) for r in run.result]
    return records, time.perf_counter() - started


def judge_spend(arm_out: Path, number: int) -> tuple[float, int]:
    """The judge's spend in one round (held-out verdicts and the probe), from their ledgers: USD, requests."""
    from vqa_distill.loop.budget import teacher_spend
    from vqa_distill.loop.state import round_dir
    from vqa_distill.teacher.ledger.records import Ledger

    usd, requests = 0.0, 0
    for part in ("eval", "probe"):
        folder = round_dir(arm_out, number) / part
        if (folder / "ledger.sqlite").is_file():
            with Ledger(folder) as ledger:
                spend = teacher_spend(ledger)
            usd, requests = usd + spend.usd, requests + spend.requests
    return usd, requests


def held_out_rows(arm_out: Path) -> list[tuple[str, str, str]]:
    """The fixed held-out rows of an arm as (image sha256, question, teacher's answer), in file order."""
    rows = []
    meta = (arm_out / "holdout.meta.jsonl").read_text(encoding="utf-8").splitlines()
    for line, meta_line in zip(
        (arm_out / "holdout.jsonl").read_text(encoding="utf-8").splitlines(), meta, strict=True
    ):
        messages = json.loads(line)["messages"]
        question = next(m["content"] for m in messages if m["role"] == "user").replace("<image>", "")
        answer = next(m["content"] for m in messages if m["role"] == "assistant")
        rows.append((str(json.loads(meta_line).get("sha256", "")), question, answer))
    return rows


def judged_cases(arm_out: Path, number: int) -> dict[tuple[str, str], tuple[str | None, float | None]]:
    """Each held-out case of a round: (outcome vs the teacher or None when unjudged, ROUGE-L), by (sha256, question)."""
    document = json.loads(
        (arm_out / "rounds" / f"r{number}" / "eval" / "eval.json").read_text(encoding="utf-8")
    )
    cases = {}
    for case in document.get("cases", []):
        verdict = case.get("verdicts", {}).get("teacher")
        key = (case["case"].get("sha256") or "", case["case"]["question"])
        cases[key] = (None if verdict is None else verdict["outcome"], case.get("rouge_l", {}).get("student"))
    return cases


def sign_test(first_only: int, second_only: int) -> float:
    """Two-sided exact sign test on discordant pairs (McNemar's exact test): the p-value of no difference."""
    n = first_only + second_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(first_only, second_only) + 1)) / 2**n
    return min(1.0, 2 * tail)


def rate_text(record: Any) -> str:
    if record is None or record.win_or_tie is None:
        return "-"
    return f"{record.win_or_tie:.2f} [{record.win_or_tie_low or 0:.2f}, {record.win_or_tie_high or 0:.2f}]"


def curve_rows(records: list[Any], arm_out: Path) -> list[list[Any]]:
    rows = []
    for record in records:
        judge_usd, judge_requests = judge_spend(arm_out, record.round)
        unjudged = sum(outcome is None for outcome, _ in judged_cases(arm_out, record.round).values())
        rows.append([
            record.round, f"{record.spend_usd:.4f}", record.requests,
            ", ".join(f"{reason} {count}" for reason, count in record.rows_added.items()) or "none",
            record.train_rows, record.left_out_units, rate_text(record),
            "-" if record.rouge_l is None else f"{record.rouge_l:.3f}", f"{record.degenerate} of {record.cases}", unjudged,
            f"{judge_usd:.4f} / {judge_requests}", record.stop_reason or "",
        ])  # fmt: skip
    return rows


CURVE_HEADER = [
    "round", "teacher USD", "teacher req", "rows added", "train rows", "left out", "win-or-tie [95% CI]",
    "ROUGE-L", "degenerate", "unjudged", "judge USD / req", "stop",
]  # fmt: skip


def at_spend(records: list[Any], requests: int) -> Any:
    """The arm's last round finished within ``requests`` teacher requests (None: none was)."""
    within = [r for r in records if r.requests <= requests]
    return within[-1] if within else None


def equal_spend_rows(arms: dict[str, list[Any]]) -> list[list[Any]]:
    """Per spend level (every round's request total of either arm): each arm's student as of that spend."""
    levels = sorted({r.requests for records in arms.values() for r in records})
    rows = []
    for level in levels:
        row: list[Any] = [level]
        found = {name: at_spend(records, level) for name, records in arms.items()}
        for name in arms:
            record = found[name]
            row += ["-" if record is None else f"r{record.round}", rate_text(record)]
        loop, random_ = found.get("loop"), found.get("random")
        both = loop is not None and random_ is not None and None not in (loop.win_or_tie, random_.win_or_tie)
        row.append(f"{loop.win_or_tie - random_.win_or_tie:+.2f}" if both else "-")  # type: ignore[union-attr]
        rows.append(row)
    return rows


def compare(label: str, loop: Any, other: Any, outs: tuple[Path, Path]) -> tuple[list[Any], dict[str, Any]]:
    """Loop against another arm's round on the same held-out cases: rates, differences, paired counts."""
    mine, theirs = judged_cases(outs[0], loop.round), judged_cases(outs[1], other.round)
    shared = sorted(set(mine) & set(theirs))
    good = {"win", "tie"}
    judged = [k for k in shared if mine[k][0] is not None and theirs[k][0] is not None]
    wot = (sum(mine[k][0] in good and theirs[k][0] not in good for k in judged),
           sum(theirs[k][0] in good and mine[k][0] not in good for k in judged))  # fmt: skip
    scored = [k for k in shared if mine[k][1] is not None and theirs[k][1] is not None]
    rouge = (sum(mine[k][1] > theirs[k][1] for k in scored), sum(theirs[k][1] > mine[k][1] for k in scored))  # type: ignore[operator]
    diff = None if None in (loop.win_or_tie, other.win_or_tie) else loop.win_or_tie - other.win_or_tie
    means = None if None in (loop.rouge_l, other.rouge_l) else (loop.rouge_l, other.rouge_l)
    ratio = f" (x{means[0] / means[1]:.2f})" if means and means[1] else ""
    row = [
        label, f"r{loop.round} / r{other.round}", f"{loop.requests} / {other.requests}",
        f"{loop.spend_usd:.4f} / {other.spend_usd:.4f}", "-" if diff is None else f"{diff:+.2f}",
        f"{wot[0]} / {wot[1]} of {len(judged)}, p {sign_test(*wot):.2f}",
        "-" if means is None else f"{means[0] - means[1]:+.3f}{ratio}",
        f"{rouge[0]} / {rouge[1]} of {len(scored)}, p {sign_test(*rouge):.2f}",
        f"{loop.degenerate - other.degenerate:+d}",
    ]  # fmt: skip
    summary = {
        "rounds": [loop.round, other.round], "requests": [loop.requests, other.requests],
        "usd": [loop.spend_usd, other.spend_usd], "win_or_tie": [loop.win_or_tie, other.win_or_tie],
        "win_or_tie_diff": diff, "won_or_tied_by_one_only": list(wot), "judged_pairs": len(judged),
        "rouge_l": list(means) if means else None, "rouge_l_higher": list(rouge), "scored_pairs": len(scored),
        "degenerate": [loop.degenerate, other.degenerate],
    }  # fmt: skip
    return row, summary


def final_rows(arms: dict[str, list[Any]], outs: dict[str, Path]) -> tuple[list[list[Any]], dict[str, Any]]:
    """Loop against each other arm: at their last rounds, and at the lower of their final spends."""
    rows, summary = [], {}
    loop = arms["loop"]
    for name, records in arms.items():
        if name == "loop":
            continue
        pair = (outs["loop"], outs[name])
        row, summary[f"{name}, last rounds"] = compare(f"vs {name}, last rounds", loop[-1], records[-1], pair)
        rows.append(row)
        level = min(loop[-1].requests, records[-1].requests)
        mine, theirs = at_spend(loop, level), at_spend(records, level)
        if mine is not None and theirs is not None and (mine, theirs) != (loop[-1], records[-1]):
            label = f"vs {name}, <= {level} requests"
            row, summary[f"{name}, equal spend"] = compare(label, mine, theirs, pair)
            rows.append(row)
    return rows, summary


FINAL_HEADER = [
    "loop minus", "rounds", "teacher req", "teacher USD", "win-or-tie diff",
    "won-or-tied by one arm only (loop / other)", "ROUGE-L diff (ratio)", "ROUGE-L higher (loop / other)",
    "degenerate diff",
]  # fmt: skip


def rouge_curves(arms: dict[str, list[Any]]) -> bytes:
    """Mean ROUGE-L against the teacher's answers on the held-out rows, per round, against teacher requests."""
    figure = new_figure()
    axes = figure.add_subplot()
    for name, records in arms.items():
        shown = [r for r in records if r.rouge_l is not None]
        axes.plot([r.requests for r in shown], [r.rouge_l for r in shown], marker="o", label=name)
    axes.set_xlabel("teacher requests")
    axes.set_ylabel("ROUGE-L vs teacher (held out)")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure_png(figure, tight=True)


def check_same_holdout(outs: dict[str, Path]) -> list[tuple[str, str, str]]:
    """The arms' held-out splits and rows, which must be identical; SystemExit if not."""
    from vqa_distill.loop.state import load_state

    splits = {name: load_state(out).split for name, out in outs.items()}  # type: ignore[union-attr]
    rows = {name: held_out_rows(out) for name, out in outs.items()}
    first = next(iter(outs))
    for name in outs:
        if splits[name].holdout != splits[first].holdout or rows[name] != rows[first]:
            raise SystemExit(f"held-out split differs between {first} and {name}: the comparison is void")
    return rows[first]


def start_prefect_server(work: Path) -> Any:
    """A dedicated Prefect server for the bench (its own home and result storage), stopped at the end."""
    from vqa_distill.ops.prefect_server import SERVER_SETTINGS, free_port, start_server

    port = free_port()
    os.environ.update(SERVER_SETTINGS, PREFECT_HOME=str(work / "prefect-home"))
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(work / "prefect-home" / "storage")
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = (
        "false"  # the server goes with the bench; logs go to stderr
    )
    return start_server(port, os.environ, work / "logs")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=24, help="photos in the folder (default 24)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per arm, round 0 included (default 3)")
    parser.add_argument("--max-steps", type=int, default=40, help="optimizer steps per round (default 40)")
    parser.add_argument("--accumulation", type=int, default=1, help="rows per optimizer step (default 1)")
    parser.add_argument("--learning-rate", type=float, default=DEMO_LEARNING_RATE, help="peak learning rate")
    parser.add_argument("--tuner", default="full", help="full (default: the tiny student is random) or lora")
    parser.add_argument(
        "--budget-requests", type=int, help="teacher request cap of each arm (default: the loop's max)"
    )
    parser.add_argument(
        "--one-shot", action="store_true", help="add the one-shot random arm (all in round 0)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: a new one under /tmp, kept)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split, every choice and training")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="bench-loop-"))
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: give a new --out (a loop there would resume, not rerun)")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-loop-work-"))
    server = start_prefect_server(work) if "PREFECT_API_URL" not in os.environ else None
    started = time.perf_counter()
    try:
        from vqa_distill.offline_teacher.process import running_teacher_server
        from vqa_distill.student.tiny_model import build_tiny_model

        images = write_photos(out / "images", args.images)
        model = str(
            build_tiny_model(work / "student", hidden=DEMO_HIDDEN, layers=DEMO_LAYERS, merges=DEMO_MERGES)
        )
        holdout = min(args.images - 1, max(1, math.ceil(args.images * HOLDOUT_SHARE)))
        if args.budget_requests is None:
            args.budget_requests = default_budget(holdout, SEED_IMAGES, args.rounds)
        names = [*ARMS, "one-shot"] if args.one_shot else list(ARMS)
        arms: dict[str, list[Any]] = {}
        walls: dict[str, float] = {}
        outs = {name: out / name for name in names}
        with running_teacher_server() as teacher:
            for name in names:
                arms[name], walls[name] = run_arm(
                    arm_params(name, args, images, out, teacher.base_url, model)
                )
                print(f"arm {name}: {len(arms[name])} round(s) in {walls[name]:.0f} s", flush=True)

        held = check_same_holdout(outs)
        print(f"\n{args.images} photos; held out: {holdout} images, {len(held)} rows, the same in every arm "
              f"(checked: split and rows); seed {SEED_IMAGES} images; pool {args.images - holdout - SEED_IMAGES}")  # fmt: skip
        print(f"each arm: budget {args.budget_requests} teacher requests, {args.rounds} round(s) (one-shot: 1), "
              f"{args.max_steps} steps/round x {args.accumulation} rows, lr {args.learning_rate:g}, tuner {args.tuner}, "
              f"seed {args.seed}; per round the loop asks <= {TARGETED_ITEMS} targeted units "
              f"({TARGETED_QUESTIONS} questions) + {DOUBT_IMAGES} doubted images, random "
              f"{TARGETED_ITEMS + DOUBT_IMAGES} images ({QUESTIONS} questions)")  # fmt: skip
        for name in names:
            print_table(
                f"arm {name} (wall {walls[name]:.0f} s)", curve_rows(arms[name], outs[name]), CURVE_HEADER
            )
        pair = {name: arms[name] for name in names}
        header = ["teacher req <="]
        for name in names:
            header += [f"{name} round", f"{name} win-or-tie"]
        print_table("at equal spend (each arm's student as of its last round within that many requests)",
                    equal_spend_rows(pair), [*header, "loop - random"])  # fmt: skip
        rows, summary = final_rows(pair, outs)
        print_table("loop minus each other arm", rows, FINAL_HEADER)

        from vqa_distill.loop.report import curve_png

        points: dict[str, Sequence[tuple[float, float, float, float]]] = {
            name: [(r.spend_usd, r.win_or_tie, r.win_or_tie_low or 0.0, r.win_or_tie_high or 1.0)
                   for r in records if r.win_or_tie is not None]
            for name, records in arms.items()
        }  # fmt: skip
        png = out / "curves.png"
        png.write_bytes(curve_png(points, title="win-or-tie vs teacher against teacher spend, same budget",
                                  x_label="teacher spend (USD)"))  # fmt: skip
        rouge_png = out / "rouge.png"
        rouge_png.write_bytes(rouge_curves(arms))
        total = time.perf_counter() - started
        document = {
            "arms": {name: [r.model_dump() for r in records] for name, records in arms.items()},
            "final": summary, "walls_s": walls, "total_s": total, "budget_requests": args.budget_requests,
        }  # fmt: skip
        (out / "summary.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
        print(f"\ncurves: {png}, {rouge_png}\nsummary: {out / 'summary.json'}\ntotal wall: {total:.0f} s")
        return 0
    finally:
        if server is not None:
            from vqa_distill.supervisor import stop_process

            stop_process(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
