"""Match detections to ground truth exactly as pycocotools' COCOeval does at one IoU threshold.

Semantics (class-aware, areaRng "all", no maxDets cap): within each (image, class), predictions
at or above their class's score threshold are taken in descending score order (stable sort, as
pycocotools), and each takes the still-unmatched non-crowd ground truth with the highest
IoU >= the threshold; on equal IoU the later ground truth wins, as in pycocotools' loop. Only
when no non-crowd ground truth qualifies may a prediction fall back to a crowd box (IoU there is
intersection / prediction area); crowd boxes can absorb any number of predictions, and those
predictions are ignored rather than counted as false positives.

Deliberate difference: pycocotools drops objects outside the area range; here nothing is
dropped, so an inverted box (x2 < x1, negative "area") is simply unmatched: a false positive
or a missed ground truth, where pycocotools would ignore it.

Everything but the greedy step is vectorised over all images at once. The greedy step runs over
"the k-th best prediction of every (image, class) group" for k = 0, 1, ..., so its Python loop
is as long as the largest group, not as the number of predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...units import Match

BELOW_THRESHOLD, TRUE_POSITIVE, FALSE_POSITIVE, IGNORED = (
    Match.BELOW_THRESHOLD, Match.TRUE_POSITIVE, Match.FALSE_POSITIVE, Match.IGNORED)

# Upper bound on (prediction, ground truth) pairs whose IoU is computed at once; bounds memory
# (a few arrays of this many float64) when one image holds thousands of boxes.
_PAIR_CHUNK = 2_000_000
# An (image, class) group with more pairs than this gets its own broadcast IoU matrix.
_LARGE_GROUP = 10_000


@dataclass(frozen=True)
class DetectionMatch:
    """Per-object outcome of matching.

    gt_hit: [G] bool, True for a non-crowd ground truth matched by a prediction (crowd: False).
    pred_outcome: [P] int8, one of BELOW_THRESHOLD, TRUE_POSITIVE, FALSE_POSITIVE, IGNORED.
    pred_gt: [P] int64, the ground truth a TRUE_POSITIVE matched (its index), else -1.
    pred_iou: [P] float64, the IoU of that pair, else NaN.
    """

    gt_hit: np.ndarray
    pred_outcome: np.ndarray
    pred_gt: np.ndarray
    pred_iou: np.ndarray


def iou_matrix(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """[A, B] IoU between x1y1x2y2 boxes `a` (predictions) and `b` (ground truth).

    Where `crowd[j]` is set, column j is intersection / area(a) instead (pycocotools iscrowd).
    Continuous coordinates, no +1; arithmetic ordered as in pycocotools' C code so that ties
    and threshold hits come out bit-identical.
    """
    a = _as_boxes(a, "a")
    b = _as_boxes(b, "b")
    crowd = None if crowd is None else np.asarray(crowd, dtype=bool)[None, :]
    return _pair_iou(a[:, None, :], b[None, :, :], crowd)


def crowd_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[A, B] intersection / area(a): pycocotools' overlap of a prediction with a crowd box."""
    b = _as_boxes(b, "b")
    return iou_matrix(a, b, crowd=np.ones(len(b), bool))


def match_detections(
    gt_image: np.ndarray,
    gt_label: np.ndarray,
    gt_box: np.ndarray,
    gt_crowd: np.ndarray,
    pred_image: np.ndarray,
    pred_label: np.ndarray,
    pred_box: np.ndarray,
    pred_score: np.ndarray,
    score_thresholds: np.ndarray,
    iou_threshold: float = 0.5,
) -> DetectionMatch:
    """Match predictions to ground truth as COCOeval does at `iou_threshold` (see module doc).

    A prediction counts only if its score >= score_thresholds[its label]. Images are any int ids;
    labels index `score_thresholds`. Boxes are x1, y1, x2, y2.
    """
    gt_image, gt_label, gt_box, gt_crowd = _check_objects(
        "ground truth", gt_image, gt_label, gt_box, ("crowd", gt_crowd, bool)
    )
    pred_image, pred_label, pred_box, pred_score = _check_objects(
        "prediction", pred_image, pred_label, pred_box, ("score", pred_score, np.float64)
    )
    score_thresholds = np.asarray(score_thresholds, dtype=np.float64).reshape(-1)
    if len(pred_label) and (pred_label.min() < 0 or pred_label.max() >= len(score_thresholds)):
        raise ValueError(
            f"prediction labels must lie in [0, {len(score_thresholds)}) to index score_thresholds"
        )

    pred_outcome = np.full(len(pred_label), BELOW_THRESHOLD, dtype=np.int8)
    gt_hit = np.zeros(len(gt_label), dtype=bool)
    pred_gt = np.full(len(pred_label), -1, dtype=np.int64)
    pred_iou = np.full(len(pred_label), np.nan)
    kept = np.flatnonzero(pred_score >= score_thresholds[pred_label])  # NaN scores drop out
    if len(kept) == 0:
        return DetectionMatch(gt_hit, pred_outcome, pred_gt, pred_iou)

    gt_group, pred_group = _group_ids(gt_image, gt_label, pred_image[kept], pred_label[kept])
    # Ground truth by group, predictions by group and best score first. Both stable: equal
    # scores and equal IoUs are then resolved by input order, as in pycocotools. (Crowd boxes
    # are handled apart, so they need not be sorted last.)
    gt_order = np.argsort(gt_group, kind="stable")
    local = np.argsort(-pred_score[kept], kind="stable")
    local = local[np.argsort(pred_group[local], kind="stable")]
    pred_order, pred_group_sorted = kept[local], pred_group[local]
    gt_group_sorted = gt_group[gt_order]

    pred_pos, gt_pos, iou = _candidate_pairs(
        pred_box[pred_order],
        pred_group_sorted,
        gt_box[gt_order],
        gt_group_sorted,
        gt_crowd[gt_order],
        min(iou_threshold, 1 - 1e-10),  # pycocotools' starting "best"
    )
    crowd_pair = gt_crowd[gt_order][gt_pos]
    # Rank of each prediction inside its group: the greedy step processes rank k of all groups.
    group_start = np.searchsorted(pred_group_sorted, pred_group_sorted, side="left")
    rank = np.arange(len(pred_order)) - group_start

    match = _greedy_non_crowd(
        pred_pos[~crowd_pair], gt_pos[~crowd_pair], iou[~crowd_pair], rank, len(gt_order)
    )
    outcome = np.where(match >= 0, TRUE_POSITIVE, FALSE_POSITIVE).astype(np.int8)
    # Crowd boxes never get used up, so falling back to one does not depend on the order.
    fallback = np.unique(pred_pos[crowd_pair])
    outcome[fallback[match[fallback] < 0]] = IGNORED

    pred_outcome[pred_order] = outcome
    matched = np.flatnonzero(match >= 0)
    gt_hit[gt_order[match[matched]]] = True
    pred_gt[pred_order[matched]] = gt_order[match[matched]]
    pred_iou[pred_order[matched]] = _pair_iou(pred_box[pred_order[matched]], gt_box[gt_order[match[matched]]], None)
    return DetectionMatch(gt_hit, pred_outcome, pred_gt, pred_iou)


def per_class_counts(
    pred_label: np.ndarray, pred_outcome: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(true positives [C], false positives [C]) among the predictions, per class."""
    pred_label = np.asarray(pred_label, dtype=np.int64).reshape(-1)
    pred_outcome = np.asarray(pred_outcome).reshape(-1)
    counted = pred_label[(pred_outcome == TRUE_POSITIVE) | (pred_outcome == FALSE_POSITIVE)]
    if len(counted) and (counted.min() < 0 or counted.max() >= num_classes):
        raise ValueError(f"prediction labels must lie in [0, {num_classes})")
    tp = np.bincount(pred_label[pred_outcome == TRUE_POSITIVE], minlength=num_classes)
    fp = np.bincount(pred_label[pred_outcome == FALSE_POSITIVE], minlength=num_classes)
    return tp, fp


def _pair_iou(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None) -> np.ndarray:
    """Elementwise IoU of broadcastable x1y1x2y2 arrays `a` (predictions) and `b`."""
    # Same operation order as pycocotools' bbIou: w, h clipped at 0, union = da + ga - i.
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    if crowd is not None:
        union = np.where(crowd, area_a, union)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def _group_ids(
    gt_image: np.ndarray, gt_label: np.ndarray, pred_image: np.ndarray, pred_label: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Dense (image, class) group ids shared by ground truth and predictions."""
    _, image = np.unique(np.concatenate([gt_image, pred_image]), return_inverse=True)
    _, label = np.unique(np.concatenate([gt_label, pred_label]), return_inverse=True)
    _, group = np.unique(image.astype(np.int64) * (label.max() + 1) + label, return_inverse=True)
    group = group.reshape(-1)
    return group[: len(gt_image)], group[len(gt_image) :]


def _candidate_pairs(
    pred_box: np.ndarray,
    pred_group: np.ndarray,
    gt_box: np.ndarray,
    gt_group: np.ndarray,
    gt_crowd: np.ndarray,
    min_iou: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All same-group (prediction, ground truth) pairs with IoU >= min_iou, in no set order.

    Inputs are sorted by group and returned positions index them. Small groups (the usual
    case: a few objects per image and class) are batched into flat pair lists; a large group
    gets its own broadcast IoU matrix, which avoids gathering a box per pair.
    """
    groups, d_start, d_count = np.unique(pred_group, return_index=True, return_counts=True)
    g_start = np.searchsorted(gt_group, groups, side="left")
    g_count = np.searchsorted(gt_group, groups, side="right") - g_start
    large = d_count * g_count > _LARGE_GROUP
    pieces = []
    small_pred = np.flatnonzero(np.repeat(~large, d_count))
    first_gt, n_gt = np.repeat(g_start, d_count), np.repeat(g_count, d_count)
    for chunk in _chunks(small_pred, n_gt[small_pred]):
        pieces.append(
            _pairs_flat(chunk, first_gt[chunk], n_gt[chunk], pred_box, gt_box, gt_crowd, min_iou)
        )
    for d0, dn, g0, gn in zip(d_start[large], d_count[large], g_start[large], g_count[large]):
        rows = max(1, _PAIR_CHUNK // gn)
        for r0 in range(d0, d0 + dn, rows):
            r1 = min(r0 + rows, d0 + dn)
            gts = slice(g0, g0 + gn)
            iou = _pair_iou(pred_box[r0:r1, None], gt_box[None, gts], gt_crowd[None, gts])
            d, g = np.nonzero(iou >= min_iou)
            pieces.append((r0 + d, g0 + g, iou[d, g]))
    if not pieces:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return tuple(np.concatenate(parts) for parts in zip(*pieces))


def _chunks(pred: np.ndarray, pairs: np.ndarray):
    """Split `pred` into runs of at most _PAIR_CHUNK pairs (at least one prediction each)."""
    total = np.concatenate([[0], np.cumsum(pairs)])
    start = 0
    while start < len(pred):
        stop = np.searchsorted(total, total[start] + _PAIR_CHUNK, side="right") - 1
        stop = min(max(stop, start + 1), len(pred))
        yield pred[start:stop]
        start = stop


def _pairs_flat(pred, first_gt, n_gt, pred_box, gt_box, gt_crowd, min_iou):
    """Candidate pairs of the predictions `pred`, whose ground truths are first_gt + range(n_gt)."""
    pred_pos = np.repeat(pred, n_gt)
    # Offset of each pair inside its prediction's run of ground truths.
    offsets = np.arange(n_gt.sum()) - np.repeat(np.cumsum(n_gt) - n_gt, n_gt)
    gt_pos = np.repeat(first_gt, n_gt) + offsets
    iou = _pair_iou(pred_box[pred_pos], gt_box[gt_pos], gt_crowd[gt_pos])
    keep = iou >= min_iou
    return pred_pos[keep], gt_pos[keep], iou[keep]


def _greedy_non_crowd(
    pred_pos: np.ndarray, gt_pos: np.ndarray, iou: np.ndarray, rank: np.ndarray, num_gt: int
) -> np.ndarray:
    """Ground-truth position matched by each prediction (-1: none), non-crowd pairs only.

    Step k settles the k-th prediction of every group at once: groups share no ground truth,
    so the predictions of one step cannot compete with each other.
    """
    match = np.full(len(rank), -1, dtype=np.int64)
    if len(pred_pos) == 0:
        return match
    # Within a step, order each prediction's pairs so that its best pair comes last: highest
    # IoU, then the later ground truth (pycocotools replaces its candidate on equal IoU).
    order = np.lexsort((gt_pos, iou, pred_pos, rank[pred_pos]))
    pred_pos, gt_pos = pred_pos[order], gt_pos[order]
    pair_rank = rank[pred_pos]
    taken = np.zeros(num_gt, dtype=bool)
    bounds = np.searchsorted(pair_rank, np.arange(pair_rank[-1] + 2))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        free = lo + np.flatnonzero(~taken[gt_pos[lo:hi]])
        if len(free) == 0:
            continue
        p, g = pred_pos[free], gt_pos[free]
        last = np.flatnonzero(np.append(p[1:] != p[:-1], True))
        match[p[last]] = g[last]
        taken[g[last]] = True
    return match


def _as_boxes(boxes: np.ndarray, what: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"{what}: boxes must have shape [N, 4] (x1, y1, x2, y2), got {boxes.shape}"
        )
    return boxes


def _check_objects(what: str, image, label, box, extra: tuple):
    """(image, label, box, extra) as numpy arrays of one length; extra is (name, values, dtype)."""
    extra_name, extra, extra_dtype = extra
    image = np.asarray(image).reshape(-1)
    label = np.asarray(label).reshape(-1)
    box = _as_boxes(box, what)
    extra = np.asarray(extra, dtype=extra_dtype).reshape(-1)
    if len({len(image), len(label), len(box), len(extra)}) != 1:
        raise ValueError(
            f"{what}: image, label, box and {extra_name} arrays differ in length "
            f"({len(image)}, {len(label)}, {len(box)}, {len(extra)})"
        )
    for name, values in (("image", image), ("label", label)):
        if len(values) and not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{what}: {name} indices must be integers, got {values.dtype}")
    return image.astype(np.int64), label.astype(np.int64), box, extra
