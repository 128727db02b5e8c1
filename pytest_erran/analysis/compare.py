"""The compare step: what the new model did to each bucket against the baseline, and one line per
experiment outcome ("auto:edge: 9 newly caught, 1 newly missed (p = 0.011): the change worked
there; no other bucket got significantly worse (Holm)").

Per bucket, over the units both runs share: newly caught (c) and newly missed (b); the exact
one-sided McNemar p-values that it improved (P(X <= b), X ~ Binomial(b + c, 1/2)) and that it
got worse (P(X <= c)). "Got worse" is judged on Holm-adjusted p-values over every bucket
examined, so that forty buckets do not produce a false alarm by chance.
"""

from __future__ import annotations

import numpy as np

from .baseline import Baseline
from .metrics import regression_p
from .ranking import Ranked
from .results import compare_units
from .stats import holm

SHOWN = 3


def compare_buckets(examined: list[Ranked], ids: np.ndarray, hit: np.ndarray, labels: np.ndarray,
                    baseline: Baseline, alpha: float) -> list[str]:
    """Adds newly_caught, newly_missed, improved_p, worse_p and worse_p_holm to each bucket's
    `extra`; returns the outcome lines."""
    worse = {}
    for entry in examined:
        members = entry.members
        comparison = compare_units(ids[members], hit[members], labels[members], baseline)
        caught, missed = len(comparison.newly_caught), len(comparison.newly_missed)
        entry.flips = (frozenset(comparison.newly_caught), frozenset(comparison.newly_missed))
        entry.extra.update(shared=comparison.shared, newly_caught=caught, newly_missed=missed,
                           improved_p=regression_p(caught, missed), worse_p=regression_p(missed, caught))
        worse[entry.name] = entry.extra["worse_p"]
    adjusted = holm(worse)
    for entry in examined:
        entry.extra["worse_p_holm"] = adjusted[entry.name]
    return outcome_lines(examined, alpha)


def outcome_lines(examined: list[Ranked], alpha: float) -> list[str]:
    improved = [e for e in examined if e.extra["newly_caught"] > e.extra["newly_missed"]
                and e.extra["improved_p"] < alpha]
    improved.sort(key=lambda e: (e.extra["improved_p"], e.order))
    distinct, seen = [], set()
    for entry in improved:  # nested buckets with the very same flips: the first (broadest) one
        if entry.flips in seen:
            continue
        seen.add(entry.flips)
        distinct.append(entry)
    worse = sorted((e for e in examined if e.extra["worse_p_holm"] < alpha),
                   key=lambda e: (e.extra["worse_p_holm"], e.order))

    def worse_clause(other_than: Ranked | None) -> str:
        found = [e for e in worse if e is not other_than]
        if not found:
            return f"no {'other ' if other_than else ''}bucket got significantly worse (Holm)"
        listed = ", ".join(f"{e.name} ({e.extra['newly_missed']} newly missed, {e.extra['newly_caught']} "
                           f"newly caught, p = {e.extra['worse_p']:.2g}, Holm {e.extra['worse_p_holm']:.2g})"
                           for e in found[:SHOWN])
        return f"but {listed} got significantly worse"

    if not distinct:
        return [f"no bucket improved significantly (alpha {alpha:g}); {worse_clause(None)}"]
    return [f"{e.name}: {e.extra['newly_caught']} newly caught, {e.extra['newly_missed']} newly missed "
            f"(p = {e.extra['improved_p']:.2g}): the change worked there; {worse_clause(e)}"
            for e in distinct[:SHOWN]]
