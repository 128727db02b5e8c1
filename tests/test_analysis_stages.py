"""The error analysis stage by stage, on hand-built tables: ranking, false positives, label errors,
coverage, leakage, calibrated thresholds, suggestions, the review sheet's choice, the compare
lines. Expectations by hand, by brute force or by scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pytest_erran.analysis import auto, coverage, false_positives, label_errors, leakage, ranking, review
from pytest_erran.analysis.baseline import Baseline
from pytest_erran.analysis.compare import compare_buckets
from pytest_erran.analysis.suggestions import Suggestions, shipped
from pytest_erran.config import Requirement
from pytest_erran.vocabulary import EVERY, Metric


# --- ranking --------------------------------------------------------------------------------------

def test_ranked_buckets_hold_the_numbers_by_hand_and_scipy():
    # 40 positives; "dark" (12) holds 8 of the 10 misses, "edge" (6) 1, "dark_copy" = "dark"
    n = 40
    hit = np.ones(n, bool)
    missed_rows = [0, 1, 2, 3, 4, 5, 6, 7, 20, 30]
    hit[missed_rows] = False
    labels = np.array(["dent"] * 20 + ["pit"] * 20, object)
    dark = np.zeros(n, bool)
    dark[:12] = True
    edge = np.zeros(n, bool)
    edge[[20, 21, 22, 23, 24, 25]] = True
    found = ranking.candidates(labels, ["dent", "pit"], {"dark": dark, "dark_copy": dark.copy(), "edge": edge}, {}, {})
    ranked, examined = ranking.rank(found, np.ones(n, bool), hit, min_positives=10)
    by_name = {r.name: r for r in ranked}
    top = ranked[0]
    assert top.name in ("dark", "dent & dark") and top.misses == 8
    # "dark" and "dark_copy" (and "dent & dark": dark holds dents only) are one hypothesis; the
    # class "dent" holds the same 8 misses among 20: merged under the smaller, more telling bucket
    assert {top.name, *top.merged} == {"dark", "dark_copy", "dent & dark", "dent & dark_copy", "dent"}
    assert top.name == "dark"
    assert top.positives == 12 and top.miss_rate == pytest.approx(8 / 12) and top.share == pytest.approx(0.8)
    assert top.lift == pytest.approx((8 / 12) / (2 / 28))
    assert top.p == pytest.approx(stats.fisher_exact([[8, 4], [2, 26]], alternative="greater").pvalue)
    # q: BH over every distinct bucket examined (identical positives counted once)
    assert top.q == pytest.approx(stats.false_discovery_control([e.p for e in examined])[
        [e.name for e in examined].index(top.name)])
    # edge: 6 positives < 10: too small, listed after every ranked bucket
    assert by_name["edge"].too_small or "edge" in sum((r.merged for r in ranked), [])
    assert all(not r.too_small for r in ranked[:ranked.index(next(r for r in ranked if r.too_small))])


def test_buckets_with_the_same_misses_merge_under_the_most_telling_one():
    n = 30
    hit = np.ones(n, bool)
    hit[[0, 1, 2]] = False
    labels = np.array(["dent"] * n, object)
    wide = np.zeros(n, bool)
    wide[:25] = True  # the same three misses in 25
    narrow = np.zeros(n, bool)
    narrow[:12] = True  # ... and in 12: a smaller p
    ranked, _ = ranking.rank(ranking.candidates(labels, ["dent"], {"wide": wide, "narrow": narrow}, {}, {}),
                             np.ones(n, bool), hit, min_positives=10)
    assert len(ranked) == 1  # the class bucket (every positive) is `all` again and not examined
    # narrow's twin "dent & narrow" (every positive is a dent), then wide and its twin
    assert ranked[0].name == "narrow" and ranked[0].merged == ["dent & narrow", "wide", "dent & wide"]
    assert ranked[0].title == "narrow = dent & narrow = wide = dent & wide"
    assert ranking.merged_title("a", ["b", "c", "d", "e", "f"]) == "a = b = c = d (+2 more with the same misses)"


def test_tags_and_crosses_are_examined():
    units = pd.DataFrame({"tags": [("glare",), (), ("glare", "night"), ()]})
    masks = ranking.tag_masks(units)
    assert list(masks) == ["tag:glare", "tag:night"] and masks["tag:glare"].tolist() == [True, False, True, False]
    found = ranking.candidates(np.array(["a", "b", "a", "b"], object), ["a", "b"], {}, {}, masks)
    assert [c.name for c in found] == ["a", "b", "tag:glare", "tag:night", "a & tag:glare", "a & tag:night",
                                       "b & tag:glare", "b & tag:night"]


# --- false positives --------------------------------------------------------------------------------

def brute_force_threshold(scores, correct, target):
    best = None
    for t in sorted(set(scores)):
        kept = scores >= t
        if kept.any() and correct[kept].mean() >= target - 1e-12 and best is None:
            best = (t, int(kept.sum()), int(correct[kept].sum()))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_the_threshold_sweep_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(40), 1)  # ties
    correct = rng.random(40) < scores  # higher scores right more often
    for target in (0.5, 0.8, 0.95):
        assert false_positives.lowest_threshold(scores, correct, target) == brute_force_threshold(scores, correct, target)


def test_false_positive_entry_by_hand():
    sweep = false_positives.Sweep("dent", np.array([0.9, 0.8, 0.7, 0.6, 0.55]), np.array([True, True, False, True, False]),
                                  positives=5, threshold=0.5)
    entry = false_positives.analyse(sweep, 0.75, "default", "class_thresholds.dent")
    # keeping >= 0.6: 3 right of 4 = 0.75; recall 3/5 -> 3/5, nothing lost
    assert (entry["false_positives"], entry["precision"], entry["suggested_threshold"]) == (2, 0.6, 0.6)
    assert (entry["precision_at"], entry["recall"], entry["recall_at"], entry["hits_lost"]) == (0.75, 0.6, 0.6, 0)
    entry = false_positives.analyse(sweep, 0.9, "default", "class_thresholds.dent")
    assert (entry["suggested_threshold"], entry["recall_at"], entry["hits_lost"]) == (0.8, 0.4, 1)
    assert "0.8 reaches precision 1.000" in false_positives.describe(entry)


# --- label errors ---------------------------------------------------------------------------------

def test_label_error_candidates_by_hand():
    # classes 0, 1; t_0 = mean(0.9, 0.7) = 0.8, t_1 = mean(0.6) = 0.6
    label = np.array([0, 0, 1, 1, 0, 1])
    top = np.array([0, 0, 1, 0, 1, 0])
    score = np.array([0.9, 0.7, 0.6, 0.85, 0.75, 0.75])
    found, means = label_errors.candidates(label, top, score, 2)
    assert means.tolist() == pytest.approx([0.8, 0.6])
    # unit 3: labelled 1, top 0 at 0.85 >= 0.8 (margin 0.05); unit 4: labelled 0, top 1 at 0.75 >= 0.6
    # (margin 0.15); unit 5: labelled 1, top 0 at 0.75 < 0.8. The widest margin first.
    assert found.tolist() == [4, 3]


# --- coverage -------------------------------------------------------------------------------------

def test_split_coverage_counts_and_flags_by_hand():
    evaluated = {"all": np.ones(4, bool), "tube": np.array([1, 1, 0, 0], bool), "fin": np.array([0, 0, 1, 1], bool)}
    others = {"all": np.ones(5, bool), "tube": np.array([0, 0, 0, 1, 0], bool), "fin": None}
    split = np.array(["train", "train", "train", "test", "test"], object)
    found = coverage.split_coverage(evaluated, others, np.ones(4, bool), np.ones(5, bool), split, "dev", "train", 1,
                                    warned={"all", "tube", "fin"})
    counts = {e["name"]: e["positives"] for e in found["buckets"]}
    assert counts["tube"] == {"dev": 2, "test": 1, "train": 0}
    assert counts["fin"] == {"dev": 2, "test": None, "train": None}  # cannot be told there: not flagged
    assert found["uncovered"] == ["tube"] and found["splits"] == ["dev", "test", "train"]
    assert coverage.describe(found, "tube") == "tube has 2 positives in dev but 0 in train"
    verdict = coverage.every_bucket_verdict(Requirement(EVERY, Metric.COVERAGE, 1.0), found)
    assert not verdict.passed and "tube has 2 positives in dev but 0 in train" in verdict.message
    assert coverage.bucket_verdict(Requirement("all", Metric.COVERAGE, 3.0), 3, "train").passed
    assert not coverage.bucket_verdict(Requirement("all", Metric.COVERAGE, 4.0), 3, "train").passed


# --- leakage --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [0, 2, 4, 9])
def test_near_duplicates_equal_a_brute_force_comparison(bits):
    rng = np.random.default_rng(bits)
    a = rng.integers(0, 2 ** 63, (60, 2), dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2 ** 63, (80, 2), dtype=np.int64).astype(np.uint64)
    for k, flips in enumerate([0, 1, 3, 4, 5, 8, 10]):  # copies of a[k] with `flips` of its 128 bits changed
        words = [int(a[k, 0]), int(a[k, 1])]
        for bit in rng.choice(128, flips, replace=False):
            words[int(bit) // 64] ^= 1 << (int(bit) % 64)
        b[k] = words
    b[7] = [a[7, 0], ~a[7, 1]]  # alike along the rows, unlike down the columns: not near

    def distance(x, y):
        return sum(bin(int(u) ^ int(v)).count("1") for u, v in zip(x, y))

    pixels_a = np.arange(120, dtype=np.uint64).reshape(60, 2)
    pixels_b = np.arange(1000, 1160, dtype=np.uint64).reshape(80, 2)
    pixels_b[0] = pixels_a[0]  # a[0] and b[0]: identical pixels too
    found = leakage.duplicates([f"e{i}" for i in range(60)], a, pixels_a, "dev", [f"o{j}" for j in range(80)],
                               ["train"] * 80, b, pixels_b, bits)
    expected = {(f"e{i}", f"o{j}") for i in range(60) for j in range(80)
                if distance(a[i], b[j]) <= bits}
    assert {(e["image"], e["other"]) for e in found} == expected
    assert ("e0", "o0") in expected and found[0]["kind"] == "identical" and found[0]["distance"] == 0
    assert all(e["kind"] == "near" for e in found[1:])
    assert ("e7", "o7") not in expected


# --- thresholds -----------------------------------------------------------------------------------

def test_unset_thresholds_are_the_train_percentiles_and_say_so():
    rng = np.random.default_rng(0)
    train = {"brightness": rng.normal(120, 30, 400), "blur": rng.gamma(2, 50, 400), "contrast": np.arange(5.0)}
    found = auto.thresholds({"low_contrast": 12}, [s for s in auto.SPECS if not s.objects], train)
    assert found["auto:dark"].value == pytest.approx(np.percentile(train["brightness"], 5))
    assert found["auto:bright"].value == pytest.approx(np.percentile(train["brightness"], 95))
    assert found["auto:blurry"].value == pytest.approx(np.percentile(train["blur"], 5))
    assert (found["auto:dark"].source, found["auto:dark"].calibrated_on) == ("train", 400)
    assert (found["auto:low_contrast"].source, found["auto:low_contrast"].value) == ("config", 12.0)
    without = auto.thresholds({}, [s for s in auto.SPECS if s.key == "low_contrast"], {"contrast": np.arange(5.0)})
    assert (without["auto:low_contrast"].source, without["auto:low_contrast"].value) == ("default", 20.0)
    assert auto.thresholds({}, list(auto.SPECS), None)["auto:edge"].source == "default"
    # inclusive: a value at the threshold is in the bucket, NaN never
    assert found["auto:low_contrast"].mask(np.array([11.0, 12.0, 13.0, np.nan])).tolist() == [True, True, False, False]
    assert found["auto:bright"].document()["operator"] == ">="


# --- suggestions ----------------------------------------------------------------------------------

def test_the_shipped_table_holds_the_practice_and_a_project_table_wins():
    table = shipped()
    assert "Add random blur data augmentation." in table["blurry"]["experiments"]
    assert "Normalize image brightness." in table["dark"]["experiments"]
    assert {"Add random crop data augmentation.", "Add random shift data augmentation."} <= set(table["edge"]["experiments"])
    assert "Increase the confidence threshold for {class}." in table["false_positives"]["experiments"]
    assert "Oversample rare defects during training." in table["rare"]["experiments"]
    ours = Suggestions({"edge": ["Train on 1.2x crops."], "low_light": ["Use the ring light."]})
    assert ours.for_bucket("auto:edge", "auto:edge", "edge") == ("edge", ["Train on 1.2x crops."])
    assert ours.for_bucket("dent & low_light", "low_light", None) == ("low_light", ["Use the ring light."])
    assert ours.for_bucket("auto:dark", "auto:dark", "dark")[1] == table["dark"]["experiments"]
    assert ours.for_bucket("tag:x", "tag:x", None)[0] == "review"


# --- the review sheet's choice ----------------------------------------------------------------------

def test_the_sheet_takes_turns_over_the_ranked_buckets_and_is_deterministic():
    ids = np.array([f"u{i:02d}" for i in range(30)], object)
    missed = np.zeros(30, bool)
    missed[:20] = True

    def bucket(name, rows):
        mask = np.zeros(30, bool)
        mask[rows] = True
        return ranking.Ranked(name, "bucket", None, name, mask, mask & missed, int((mask & missed).sum()),
                              int(mask.sum()), 0.0, 0.0, None, 0.5)

    ranked = [bucket("big", range(0, 12)), bucket("small", range(12, 15)), bucket("overlap", range(10, 13))]
    chosen = review.choose(ranked, missed, ids, 8)
    assert [name for _, name in chosen[:3]] == ["big", "small", "overlap"]  # one each, in rank order
    assert len({row for row, _ in chosen}) == 8 and all(missed[row] for row, _ in chosen)
    assert chosen == review.choose(ranked, missed, ids, 8)
    everything = review.choose(ranked, missed, ids, 100)
    assert sorted(row for row, _ in everything) == list(range(20))  # then the rest; never a hit
    assert [name for _, name in everything].count("") == 5  # rows 15..19 are in no ranked bucket


# --- the compare step -------------------------------------------------------------------------------

def test_compare_lines_say_what_worked_and_what_got_worse(tmp_path):
    n = 40
    ids = np.array([f"u{i}" for i in range(n)], object)
    labels = np.array(["dent"] * n, object)
    edge = np.zeros(n, bool)
    edge[:12] = True
    # baseline missed 0..9 (edge); now 0 missed among them, plus u12 newly missed
    baseline = Baseline(tmp_path / "b.json", {i: "dent" for i in ids}, {f"u{i}" for i in range(10)}, {})
    hit = np.ones(n, bool)
    hit[[0, 12]] = False
    examined = ranking.rank(ranking.candidates(labels, ["dent"], {"edge": edge, "rest": ~edge}, {}, {}),
                            np.ones(n, bool), hit, 10)[1]
    lines = compare_buckets(examined, ids, hit, labels, baseline, 0.05)
    entry = next(e for e in examined if e.name == "edge")
    assert (entry.extra["newly_caught"], entry.extra["newly_missed"]) == (9, 0)
    # p = P(X <= 0), X ~ Binomial(9, 1/2)
    assert entry.extra["improved_p"] == pytest.approx(stats.binomtest(0, 9, 0.5, alternative="less").pvalue)
    assert lines == [f"edge: 9 newly caught, 0 newly missed (p = {0.5 ** 9:.2g}): the change worked there; "
                     "no other bucket got significantly worse (Holm)"]
