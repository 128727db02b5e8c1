"""Measure the story's numbers with the plugin itself, on the test split and on dev.

    python story_check.py                     # every models/*.onnx, test and dev
    python story_check.py --splits dev        # dev only (what the v3 pick looks at)
    python story_check.py models/v2.onnx      # some models only

For each model and split it runs `pytest --erran-model=MODEL --erran-report=...` in this
folder with erran.toml (the test split), or with a copy of it that says `split = "dev"`
(for v1 the dev split of annotations_v1.json, the split v1 was developed on), and prints
recall per bucket and precision per class from the plugin's JSON report, as a Markdown
table. Nothing is computed here but the table, the dev pick of v3 and the story's checks.

The v3 pick (fixed before the candidates were trained): among v3_crop25, v3_crop50 and
v3_crop75, the candidates that pass every requirement of erran.toml on dev; of those (or
of all three, if none passes) the highest dev recall on `auto:edge`, the bucket the crop is
meant to fix; ties go to the higher dev recall on `tube`, then to the smaller crop
probability (the smaller change).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUCKETS = ["tube", "fin", "severe", "severe_tube", "auto:edge", "all"]
CANDIDATES = ["v3_crop25", "v3_crop50", "v3_crop75"]


def run(model: Path, split: str, tmp: Path) -> dict:
    # v1 was trained and developed on annotations_v1.json's splits (the test split is the same
    # images in both files, and so are the boxes): its coverage is counted on that train split.
    data = HERE / "data" / ("annotations_v1.json" if model.stem == "v1" else "annotations.json")
    config = HERE / "erran.toml"
    if split != "test":
        config = tmp / f"erran_{split}.toml"
        config.write_text(re.sub(r'(?m)^split = .*$', f'split = "{split}"', (HERE / "erran.toml").read_text()))
    report = tmp / f"{model.stem}_{split}.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--erran-model={model}",
           f"--erran-config={config}", f"--erran-data={data}", f"--erran-report={report}", "--erran-analyze",
           f"--erran-baseline={tmp / 'no-baseline.json'}"]
    done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return json.loads(report.read_text())


def buckets(rep: dict) -> dict:
    return {x["name"]: x for x in rep["buckets"]}


def failed(rep: dict) -> list[str]:
    return [r["id"] for r in rep["requirements"] if not r["passed"]]


def row(name: str, split: str, rep: dict) -> str:
    b = buckets(rep)
    cells = [name, split]
    for k in BUCKETS:
        x = b[k]
        cells.append(f"{x['recall']:.3f} ({x['hits']}/{x['positives']})")
    for k in ("tube", "fin"):
        x = b[k]
        cells.append(f"{x['precision']:.3f} ({x['true_positives']}/{x['true_positives'] + x['false_positives']})")
    cells.append(", ".join(failed(rep)) or "all pass")
    return "| " + " | ".join(cells) + " |"


def pick(dev: dict[str, dict]) -> str | None:
    """The v3 candidate picked on dev by the rule in this module's docstring."""
    have = [c for c in CANDIDATES if c in dev]
    if not have:
        return None
    passing = [c for c in have if not failed(dev[c])] or have

    def key(c):
        b = buckets(dev[c])
        return (-b["auto:edge"]["recall"], -b["tube"]["recall"], CANDIDATES.index(c))

    return min(passing, key=key)


def story(test: dict[str, dict]) -> list[tuple[bool, str]]:
    """The story's claims, checked on the test split."""
    checks = []
    r = {m: buckets(rep) for m, rep in test.items()}
    if "v1" in test:
        f = failed(test["v1"])
        checks.append((any("recall(tube)" in x for x in f) and any("recall(severe)" in x for x in f),
                       f"v1 fails the tube and severe requirements ({', '.join(f)})"))
    if {"v1", "v2", "v3"} <= set(test):
        t = [r[m]["tube"]["recall"] for m in ("v1", "v2", "v3")]
        checks.append((t[0] < t[1] < t[2], "tube recall rises v1 < v2 < v3 ({:.3f} < {:.3f} < {:.3f})".format(*t)))
    if "v1" in test:
        uncovered = test["v1"]["analysis"]["coverage"]["uncovered"]
        checks.append(("severe_tube" in uncovered, f"v1's coverage flags severe_tube (uncovered: {', '.join(uncovered)})"))
    if "v2" in test:
        f = failed(test["v2"])
        checks.append((not any("recall(tube)" in x for x in f), "v2 passes the tube requirement"))
        first = (test["v2"]["analysis"]["next"] or ["nothing"])[0]
        checks.append((first.split(" holds ")[0] in ("auto:edge", "tube & auto:edge") and "crop" in first
                       and r["v2"]["auto:edge"]["recall"] < 0.95, f"v2's analysis: try next: {first}"))
    if "v3" in test:
        f = failed(test["v3"])
        checks.append((not f, "v3 passes every requirement" + (f" (fails {', '.join(f)})" if f else "")))
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="default: every models/*.onnx")
    ap.add_argument("--splits", default="test,dev", help="comma-separated (default test,dev)")
    args = ap.parse_args()
    models = [Path(m).resolve() for m in args.models] or sorted((HERE / "models").glob("*.onnx"))
    head = ["model", "split"] + [f"recall {k}" for k in BUCKETS] + ["precision tube", "precision fin", "failed"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    reports: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as t:
        for split in args.splits.split(","):
            for m in models:
                rep = run(m, split, Path(t))
                reports.setdefault(split, {})[m.stem] = rep
                print(row(m.stem, split, rep), flush=True)
    if "dev" in reports:
        chosen = pick(reports["dev"])
        if chosen:
            same = (HERE / "models" / "v3.onnx").exists() and filecmp.cmp(
                HERE / "models" / f"{chosen}.onnx", HERE / "models" / "v3.onnx", shallow=False)
            print(f"\ndev pick for v3: {chosen} (models/v3.onnx is {'a copy of it' if same else 'NOT a copy of it'})")
    if "test" in reports:
        print()
        for ok, text in story(reports["test"]):
            print(f"{'ok  ' if ok else 'FAIL'} {text}")


if __name__ == "__main__":
    main()
