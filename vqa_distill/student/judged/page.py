"""The evaluation's page, ``eval.html``: the summary table, then every case with its answers, scores and verdicts.

One self-contained file (inline CSS and script, thumbnails as JPEG data URLs from ``review.thumbnail_url``)
so it opens from disk or an artifact store with no network. Cases come worst first (lost to the teacher,
then the lowest rubric, then the lowest ROUGE-L): the page is for finding what the student gets wrong.
Two selects filter by kind and by the verdict against the teacher; without script every case shows.
Every string from a model or a dataset is escaped: answers may hold markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

from vqa_distill.atomic import atomic_write_text
from vqa_distill.dataset.review import thumbnail_url
from vqa_distill.student.judged.results import MODELS, OPPONENTS, CaseResult, PairVerdict

EVAL_PAGE_FILE = "eval.html"
NOT_JUDGED = "none"  # data-outcome of a case with no verdict against the teacher
OUTCOME_RANK = {"loss": 0, "tie": 1, "win": 2, NOT_JUDGED: 3}  # worst first
MISSING_RUBRIC = 0  # below any 1-5 score: a case with no score (often a degenerate answer) sorts first
ANSWER_COLUMNS = ("teacher", "student", "base")

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem} [hidden]{display:none!important}
table.summary{border-collapse:collapse;margin-bottom:1rem;background:#fff}
.summary th,.summary td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
.summary th{background:#eee}
.filters{margin:1rem 0;display:flex;gap:1rem;align-items:center} #shown-count{color:#555}
.case{display:flex;gap:1rem;background:#fff;border:1px solid #ddd;border-left:6px solid #999;
 border-radius:6px;padding:.8rem;margin:.6rem 0}
.case.outcome-loss{border-left-color:#d33} .case.outcome-tie{border-left-color:#d9a400}
.case.outcome-win{border-left-color:#2a2}
.thumb{flex:none;width:192px} .thumb img{max-width:192px;height:auto;background:#eee}
.noimage{width:180px;height:120px;display:flex;align-items:center;justify-content:center;text-align:center;
 background:#eee;color:#900;border:1px dashed #c66;font-size:.85rem;padding:4px;word-break:break-all}
.path{font-family:monospace;font-size:.75rem;color:#666;word-break:break-all}
.body{flex:1;min-width:0} .head{font-size:.85rem;color:#555} .kind{font-weight:700;color:#333}
.q{font-weight:600;margin:.3rem 0 .5rem}
.answers{display:flex;gap:.6rem} .answer{flex:1;min-width:0;border:1px solid #eee;border-radius:4px;padding:.4rem}
.who{font-weight:700;font-size:.85rem} .text{white-space:pre-wrap;overflow-wrap:anywhere;max-height:18em;overflow:auto}
.metrics{margin-top:.3rem;font-size:.8rem;color:#555} .metrics span{margin-right:.6rem}
.flag{color:#b00;font-weight:700}
.verdicts{margin-top:.5rem;font-size:.85rem} .verdict{margin:.2rem 0}
.badge{display:inline-block;padding:0 .4rem;border-radius:3px;color:#fff;font-weight:700}
.badge.loss{background:#d33} .badge.tie{background:#b98a00} .badge.win{background:#2a2}
.reason{color:#444;margin-left:1rem}
"""

# Shows the cases whose kind and outcome match both selects, and counts them.
_SCRIPT = """
(()=>{const kind=document.getElementById("kind-filter"),outcome=document.getElementById("outcome-filter"),
count=document.getElementById("shown-count"),cases=Array.from(document.querySelectorAll(".case"));
function apply(){let shown=0;for(const c of cases){const ok=(kind.value==="all"||c.dataset.kind===kind.value)
&&(outcome.value==="all"||c.dataset.outcome===outcome.value);c.hidden=!ok;if(ok)shown++;}
count.textContent=shown+" of "+cases.length+" shown";}
kind.addEventListener("change",apply);outcome.addEventListener("change",apply);apply();})();
"""

_BLANK_RUN = re.compile(r"\n\s*\n(?:\s*\n)+")  # three newlines or more, with only spaces between


def outcome_vs_teacher(result: CaseResult) -> str:
    """The student's outcome against the teacher, or ``none`` when that pair was not judged."""
    verdict = result.verdicts.get("teacher")
    return verdict.outcome if verdict is not None else NOT_JUDGED


def worst_first(cases: Sequence[CaseResult]) -> list[CaseResult]:
    """Order cases loss, tie, win against the teacher; within each, lower student rubric, then lower ROUGE-L."""

    def key(result: CaseResult) -> tuple[int, int, float, int]:
        rubric = result.rubric.get("student")
        return (
            OUTCOME_RANK[outcome_vs_teacher(result)],
            MISSING_RUBRIC if rubric is None else rubric,
            result.rouge_l.get("student", 0.0),
            result.case.index,
        )

    return sorted(cases, key=key)


def shown_count_text(shown: int, total: int) -> str:
    """The counter's text, the same as the page's script writes it."""
    return f"{shown} of {total} shown"


def _summary_html(rows: Sequence[dict[str, str]]) -> str:
    if not rows:
        return '<p class="summary">No summary.</p>'
    keys = list(dict.fromkeys(key for row in rows for key in row))  # first row's order; extra keys kept
    esc = html.escape
    head = "".join(f"<th>{esc(key)}</th>" for key in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(str(row.get(key, '')))}</td>" for key in keys) + "</tr>" for row in rows
    )
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _filters_html(kinds: Sequence[str], outcomes: Sequence[str], total: int) -> str:
    esc = html.escape
    kind_options = "".join(f'<option value="{esc(k)}">{esc(k)}</option>' for k in ["all", *kinds])
    outcome_options = "".join(f'<option value="{esc(o)}">{esc(o)}</option>' for o in ["all", *outcomes])
    return (
        '<div class="filters">'
        f'<label>kind <select id="kind-filter">{kind_options}</select></label>'
        f'<label>vs teacher <select id="outcome-filter">{outcome_options}</select></label>'
        f'<span id="shown-count">{shown_count_text(total, total)}</span></div>'
    )


def _image_html(path: str, thumbnail: str | None, source: str | None = None) -> str:
    esc = html.escape
    name = esc(Path(source or path).name)
    shown = (
        f'<img src="{thumbnail}" alt="{name}">'
        if thumbnail
        else f'<div class="noimage">image unavailable: {name}</div>'
    )
    return f'<div class="thumb">{shown}<div class="path" title="{esc(path)}">{esc(source or path)}</div></div>'


def _metrics_html(result: CaseResult, model: str) -> str:
    if model not in MODELS:
        return '<div class="metrics"><span>reference</span></div>'
    parts = []
    reason = result.degenerate.get(model)
    if reason:
        parts.append(f'<span class="flag">degenerate: {html.escape(reason)}</span>')
    if model in result.rouge_l:
        parts.append(f"<span>ROUGE-L {result.rouge_l[model]:.2f}</span>")
    exact = result.exact.get(model)
    if exact is not None:
        parts.append(f"<span>exact match: {'yes' if exact else 'no'}</span>")
    rubric = result.rubric.get(model)
    parts.append(f"<span>rubric {rubric}/5</span>" if rubric is not None else "<span>rubric -</span>")
    return f'<div class="metrics">{"".join(parts)}</div>'


def visible_text(answer: str) -> str:
    """The answer as shown: a run of blank lines becomes one mark saying how many, an empty answer says so.

    An untrained model often answers with a hundred newlines before anything else: shown as they are,
    they push everything else of the row out of sight.
    """
    if not answer.strip():
        return f"(empty: {len(answer)} whitespace character(s))" if answer else "(empty)"
    return _BLANK_RUN.sub(lambda m: f"\n[{m.group(0).count(chr(10))} blank lines]\n", answer)


def _answers_html(result: CaseResult) -> str:
    esc = html.escape
    columns = [who for who in ANSWER_COLUMNS if who in result.answers]
    return (
        '<div class="answers">'
        + "".join(
            f'<div class="answer" data-who="{esc(who)}"><div class="who">{esc(who)}</div>'
            f'<div class="text">{esc(visible_text(result.answers[who]))}</div>{_metrics_html(result, who)}</div>'
            for who in columns
        )
        + "</div>"
    )


def _pick_text(pick: str | None, opponent: str) -> str:
    return {"student": "student", "opponent": opponent, "tie": "tie", None: "not asked"}.get(pick, str(pick))


def _verdict_html(verdict: PairVerdict) -> str:
    esc = html.escape
    opponent = esc(verdict.opponent)
    first, second = (_pick_text(pick, verdict.opponent) for pick in verdict.picks)
    picks = (
        f"student shown first: {esc(first)} · student shown second: {esc(second)}"
        if verdict.judged
        else "decided without a judge"
    )
    if len(set(verdict.reasons)) == 1:  # a verdict decided without a judge gives the same reason twice
        labelled = [("reason", verdict.reasons[0])]
    else:
        labelled = list(zip(("student first", "student second"), verdict.reasons, strict=True))
    reasons = "".join(f'<div class="reason">{label}: {esc(text)}</div>' for label, text in labelled if text)
    return (
        f'<div class="verdict" data-opponent="{opponent}">vs {opponent}: '
        f'<span class="badge {esc(verdict.outcome)}">{esc(verdict.outcome)}</span> {picks}{reasons}</div>'
    )


def _case_html(result: CaseResult, thumbnail: str | None) -> str:
    esc = html.escape
    case = result.case
    outcome = outcome_vs_teacher(result)
    prompt = f" · prompt: {esc(case.prompt)}" if case.prompt != case.question else ""
    ordered = [result.verdicts[o] for o in OPPONENTS if o in result.verdicts]
    ordered += [v for o, v in result.verdicts.items() if o not in OPPONENTS]
    verdicts = "".join(_verdict_html(v) for v in ordered) or '<div class="verdict">not judged</div>'
    return (
        f'<article class="case outcome-{esc(outcome)}" data-kind="{esc(case.kind)}" data-outcome="{esc(outcome)}" '
        f'data-index="{case.index}">{_image_html(case.image, thumbnail, case.source)}<div class="body">'
        f'<div class="head">#{case.index} · <span class="kind">{esc(case.kind)}</span>{prompt}</div>'
        f'<div class="q">{esc(case.question)}</div>{_answers_html(result)}'
        f'<div class="verdicts">{verdicts}</div></div></article>'
    )


def render_eval_page(
    cases: Sequence[CaseResult], summary_rows: Sequence[dict[str, str]], *, title: str
) -> str:
    """Return the page: ``title``, the summary table, the filters, then every case worst first."""
    ordered = worst_first(cases)
    thumbnails: dict[str, str | None] = {}
    for result in ordered:  # each distinct picture decoded once, however many questions it has
        if result.case.image not in thumbnails:
            thumbnails[result.case.image] = thumbnail_url(result.case.image)
    kinds = sorted({r.case.kind for r in ordered})
    present = {outcome_vs_teacher(r) for r in ordered}
    outcomes = ["win", "tie", "loss"] + ([NOT_JUDGED] if NOT_JUDGED in present else [])
    esc = html.escape
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>{_summary_html(summary_rows)}{_filters_html(kinds, outcomes, len(ordered))}"
        '<div id="cases">'
        + "".join(_case_html(r, thumbnails[r.case.image]) for r in ordered)
        + f"</div><script>{_SCRIPT}</script></body></html>"
    )


def write_eval_page(
    path: Path, cases: Sequence[CaseResult], summary_rows: Sequence[dict[str, str]], *, title: str
) -> Path:
    """Write the page to ``path`` atomically (a reader never sees half a page); returns ``path``."""
    atomic_write_text(path, render_eval_page(cases, summary_rows, title=title))
    return path
