"""The summary as GitHub-flavoured Markdown, for a pull-request comment and the job summary.

It fits GitHub's limits: a comment holds 65,536 characters, a step summary 1 MiB. Listings that
would not fit are cut between rows and end with "... and N more"; the verdict, the context line
and the link to the HTML gallery always stay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..vocabulary import ALL
from .analysis_lines import ranked_cells, ranked_entries, steps
from .terminal import ranked_rows, table_cells

COMMENT_LIMIT = 65_536  # characters in a GitHub issue or pull-request comment
STEP_SUMMARY_LIMIT = 1024 * 1024  # bytes in one step's $GITHUB_STEP_SUMMARY
MARKER = "<!-- pytest-erran -->"  # finds the comment to update instead of posting another
LINK_LABEL = "erran-html"  # [erran-html]: <target> is one line a CI step can rewrite
LISTED_PATHS = 10  # per bucket in the newly-missed table's "also in" cell
TOP_CAUSES = 5


@dataclass
class Section:
    """A titled table (or list) whose rows may be cut; `more(n)` is the row that says so."""

    title: list[str]
    head: list[str]
    rows: list[str]
    more: Callable[[int], str]
    tail: list[str] = field(default_factory=list)


def markdown_document(evaluation, *, html_link: str | None = None, limit: int = COMMENT_LIMIT,
                      size: Callable[[str], int] = len) -> str:
    """The Markdown of one evaluation, at most `limit` by `size` (characters by default)."""
    head = [MARKER, f"### {_verdict(evaluation)}", "", _context(evaluation), ""]
    tail = []
    if html_link is not None:
        tail = [f"The missed images, drawn: [gallery of misses][{LINK_LABEL}] (HTML).", "",
                f"[{LINK_LABEL}]: {_link_target(html_link)}"]
    sections = [_table_section(evaluation), _failures_section(evaluation), _newly_missed_section(evaluation),
                *_analysis_sections(getattr(evaluation, "analysis", None))]
    return assemble(head, [s for s in sections if s is not None and s.rows], tail, limit, size)


def append_step_summary(path: Path, evaluation, *, html_link: str | None = None) -> bool:
    """Append the comment's Markdown to GitHub's job summary file, cut to what is left of the
    step's 1 MiB when needed. False when not even the verdict fits."""
    try:
        used = path.stat().st_size
    except FileNotFoundError:
        used = 0
    room = STEP_SUMMARY_LIMIT - used - 1  # the blank line before it
    text = markdown_document(evaluation, html_link=html_link)
    if len(text.encode("utf-8")) > room:
        try:
            text = markdown_document(evaluation, html_link=html_link, limit=room,
                                     size=lambda t: len(t.encode("utf-8")))
        except ValueError:
            return False
    with path.open("a", encoding="utf-8") as f:
        f.write("\n" + text)
    return True


def assemble(head: list[str], sections: list[Section], tail: list[str], limit: int,
             size: Callable[[str], int] = len) -> str:
    """head, as many rows of each section as fit, tail: never more than `limit`."""
    def cost(lines: list[str]) -> int:
        return size("".join(line + "\n" for line in lines))

    used = cost(head) + cost(tail)
    if used > limit:
        raise ValueError(f"a Markdown summary needs at least {used} (limit {limit})")
    out = list(head)
    for section in sections:
        fixed = section.title + section.head
        closing = section.tail + [""]
        kept: list[str] = []
        rows = section.rows
        for i, row in enumerate(rows):
            left = len(rows) - i - 1
            extra = [section.more(left)] if left else []
            if used + cost(fixed + kept + [row] + extra + closing) > limit:
                break
            kept.append(row)
        cut = len(rows) - len(kept)
        lines = fixed + kept + ([section.more(cut)] if cut else []) + closing
        if used + cost(lines) > limit:  # not even the title and the "more" row: leave it out
            continue
        out += lines
        used += cost(lines)
    text = "".join(line + "\n" for line in out + tail)
    assert size(text) <= limit
    return text


def _verdict(evaluation) -> str:
    verdicts = evaluation.verdicts
    failed = [v for v in verdicts if not v.passed]
    if failed:
        return f"❌ erran: {len(failed)} of {len(verdicts)} requirements failed"
    warned = sum(v.warning for v in verdicts)
    note = f" ({warned} to look at)" if warned else ""
    return f"✅ erran: all {len(verdicts)} requirements held{note}"


def _context(evaluation) -> str:
    from .terminal import evaluated

    settings = evaluation.settings
    what, _, path = evaluated(settings).partition(" ")
    text = (f"{what} {code(evaluation.model['path'])} (`{evaluation.model['sha256'][:8]}`) on "
            f"{code(evaluation.data['path'])}: {len(evaluation.units)} units in "
            f"{len(evaluation.dataset.images)} images")
    baseline = evaluation.baseline
    if baseline is not None:
        drift = evaluation.drift
        text += (f"; baseline model `{baseline.document['model']['sha256'][:8]}` "
                 f"({baseline.document['created']}), {drift['shared']} shared, {drift['added']} added, "
                 f"{drift['removed']} removed positives")
    else:
        text += "; no baseline"
    return text


def _table_section(evaluation) -> Section:
    head, body = table_cells(ranked_rows(evaluation), evaluation)
    align = ["---"] + ["---:"] * (len(head) - 3) + ["---", "---"]
    rows = []
    for cells, row in body:
        required = code(cells[-2]) if cells[-2] != "-" else "-"
        shown = [code(cells[0])] + [cell_text(c) for c in cells[1:-2]] + [required, cell_text(cells[-1])]
        if row.failing:
            shown[-1] = f"**{shown[-1]}**"
        rows.append(_row(shown))
    blank = [""] * (len(head) - 1)
    return Section([], [_row(head), _row(align)], rows, lambda n: _row([f"... and {n} more"] + blank))


def _failures_section(evaluation) -> Section:
    rows = [f"- {code(v.id)} {cell_text(f'{v.outcome}: {v.message}')}" for v in evaluation.verdicts
            if not v.passed or v.warning]
    return Section(["**What to look at**", ""], [], rows, lambda n: f"- ... and {n} more")


def _newly_missed_section(evaluation) -> Section | None:
    """Each unit the baseline model caught and this one misses, by path, with its buckets."""
    everything = evaluation.buckets.get(ALL)
    if everything is None or everything.comparison is None or not everything.comparison.newly_missed:
        return None
    units = evaluation.units
    path_of = dict(zip(units["id"], units["_display"]))
    label_of = dict(zip(units["id"], units["label"]))
    also: dict[str, list[str]] = {}
    for name, result in evaluation.buckets.items():
        if name != ALL and result.comparison is not None:
            for unit in result.comparison.newly_missed:
                also.setdefault(unit, []).append(name)
    rows = []
    for unit in everything.comparison.newly_missed:
        buckets = also.get(unit, [])
        shown = ", ".join(code(b) for b in buckets[:LISTED_PATHS])
        if len(buckets) > LISTED_PATHS:
            shown += f", ... and {len(buckets) - LISTED_PATHS} more"
        rows.append(_row([code(path_of.get(unit, unit)), code(label_of.get(unit, "")), shown]))
    title = [f"**Newly missed since the baseline** ({len(rows)})", ""]
    return Section(title, [_row(["unit", "true class", "buckets"]), _row(["---", "---", "---"])], rows,
                   lambda n: _row([f"... and {n} more", "", ""]))


def _analysis_sections(analysis) -> list[Section]:
    """The analysis' compare step, what to try next and its top causes as the terminal ranks
    them; for another document (a hook's), whatever list of records it holds under `causes` /
    `buckets` and `suggestions` (scalar fields only)."""
    if not isinstance(analysis, dict):
        return []
    ranked = ranked_entries(analysis)
    if ranked is not None:
        return _ranked_sections(analysis, ranked)
    sections = []
    for key, title in (("causes", "Top causes"), ("buckets", "Top causes"), ("suggestions", "Experiments to try")):
        records = analysis.get(key)
        if isinstance(records, dict):
            records = [{"name": name, **value} if isinstance(value, dict) else {"name": name, "value": value}
                       for name, value in records.items()]
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            continue
        if title == "Top causes" and any(s.title[0] == f"**{title}**" for s in sections):
            continue
        records = records[:TOP_CAUSES] if title == "Top causes" else records
        columns = [c for c in _columns(records) if all(_scalar(r.get(c)) for r in records)]
        if not columns:
            continue
        rows = [_row([cell_text(_format(r.get(c))) for c in columns]) for r in records]
        sections.append(Section([f"**{title}**", ""], [_row(columns), _row(["---"] * len(columns))], rows,
                                lambda n, width=len(columns): _row([f"... and {n} more"] + [""] * (width - 1))))
    return sections


CAUSE_COLUMNS = ["bucket", "misses", "positives", "miss rate", "lift", "q", "try"]  # of the terminal's


def _ranked_sections(analysis: dict, ranked: list[dict]) -> list[Section]:
    lines = [f"- **{cell_text(line)}**" if line.startswith("try next:") else f"- {cell_text(line)}"
             for line in steps(analysis)]
    causes = Section(["**Error analysis**", ""], [], lines, lambda n: f"- ... and {n} more")
    head, cells = ranked_cells(ranked[:TOP_CAUSES], compare=False)
    keep = [head.index(c) for c in CAUSE_COLUMNS]
    rows = [_row([code(row[0])] + [cell_text(row[i]) for i in keep[1:]]) for row in cells]
    table = Section(["**Top causes**", ""], [_row(CAUSE_COLUMNS), _row(["---"] + ["---:"] * 5 + ["---"])], rows,
                    lambda n: _row([f"... and {n} more"] + [""] * 6))
    return [causes, table]


def _columns(records: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            seen.setdefault(str(key), None)
    return list(seen)


def _scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def cell_text(text: str) -> str:
    """Plain text safe inside a table cell and outside code: no pipes, tags or line breaks."""
    text = " ".join(str(text).split())
    for plain, escaped in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("*", "\\*"),
                           ("_", "\\_"), ("[", "\\["), ("]", "\\]"), ("`", "\\`")):
        text = text.replace(plain, escaped)
    return text


def code(text: str) -> str:
    """A code span holding `text` verbatim (paths, ids), safe inside a table cell."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _link_target(link: str) -> str:
    """A link destination: angle brackets allow spaces; no line break can end the line early."""
    link = " ".join(link.split())
    return f"<{link}>" if (" " in link or "(" in link) and "<" not in link and ">" not in link else link
