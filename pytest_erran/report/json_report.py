"""The JSON report: every bucket and requirement, validated against schemas/report.schema.json."""

from __future__ import annotations

from datetime import datetime, timezone

from ..files import portable_path
from ..vocabulary import Metric, Outcome, TaskName

REPORT_VERSION = 1


def report_document(evaluation) -> dict:
    document = {
        **_stamp(),
        "evaluated": True,
        "task": evaluation.task,
        "model": evaluation.model,
        "data": evaluation.data,
        "buckets": [_bucket(result) for result in evaluation.buckets.values()],
        "requirements": [_requirement(verdict) for verdict in evaluation.verdicts],
    }
    document.update(peer_metrics(evaluation))
    if evaluation.analysis is not None:
        document["analysis"] = evaluation.analysis
    if evaluation.baseline is not None:
        document["baseline"] = {
            "path": portable_path(evaluation.baseline.path, evaluation.settings.rootdir),
            "model": evaluation.baseline.document["model"],
            "created": evaluation.baseline.document["created"],
            **evaluation.drift,
        }
    return document


def error_document(message: str) -> dict:
    """What the report path holds when a run did not evaluate (bad input, a crash, or a run not
    finished yet): never the previous run's report, which a CI step would ship as this run's.
    It has no `requirements`, so no reader can take it for a run whose requirements all held."""
    return {**_stamp(), "evaluated": False, "error": message}


def _stamp() -> dict:
    from .. import __version__

    return {"erran_report": REPORT_VERSION, "erran_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _bucket(result) -> dict:
    entry = {
        "name": result.name,
        "positives": result.positives,
        "hits": result.hits,
        "recall": result.recall,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "missed": result.missed,
    }
    if result.true_positives is not None:
        entry.update(true_positives=result.true_positives, false_positives=result.false_positives,
                     precision=result.precision, fp_per_image=result.fp_per_image,
                     false_positive_images=result.false_positive_images)
    comparison = result.comparison
    if comparison is not None:
        entry.update(baseline_recall=comparison.baseline_recall, delta=comparison.delta,
                     newly_missed=comparison.newly_missed, newly_caught=comparison.newly_caught,
                     regression_p=comparison.regression_p, shared=comparison.shared,
                     added=comparison.added)
    return entry


def _requirement(verdict) -> dict:
    requirement = verdict.requirement
    return {
        "id": verdict.id,
        "bucket": requirement.bucket,
        "metric": requirement.metric,
        "threshold": requirement.max_drop if requirement.metric == Metric.DROP else requirement.threshold,
        "max_drop": requirement.max_drop,
        "gate": requirement.gate,
        "value": verdict.value,
        "passed": None if verdict.outcome == Outcome.NOT_RUN else verdict.passed,
        "outcome": verdict.outcome,
        "message": verdict.message,
        **({"positives_needed": verdict.needed} if verdict.needed else {}),
        **({"regression_p": verdict.raw_p} if verdict.raw_p is not None else {}),
        **({"adjusted_p": verdict.adjusted_p} if verdict.adjusted_p is not None else {}),
        **({"min_train": requirement.min_train} if requirement.min_train is not None else {}),
    }


def peer_metrics(evaluation) -> dict:
    """What other evaluation tools report too: classification's confusion matrix, detection's AP
    at the match IoU (COCOeval's, analysis/curves.py)."""
    if evaluation.task == TaskName.CLASSIFICATION:
        from ..analysis.confusion import confusion_matrix

        units = evaluation.units
        counts = confusion_matrix(units["label"].to_numpy(), units["_pred"].to_numpy(), evaluation.classes)
        return {"confusion_matrix": {"classes": list(evaluation.classes), "counts": counts.tolist()}}
    from ..analysis.curves import evaluation_curves, mean_ap

    curves = evaluation_curves(evaluation)
    return {"average_precision": {
        "iou_threshold": evaluation.settings.iou_threshold,
        "classes": {name: curve.ap for name, curve in curves.items()},
        "mean": mean_ap(curves),
        "lowest_score": min((c.lowest_score for c in curves.values() if c.lowest_score is not None), default=None),
    }}
