"""The "not worse" rule (evaluate.compare and evaluate.gate), in both directions."""

import numpy as np

from edgewatch_central.evaluate import GateRule, compare, gate

CLASSES = ["normal", "outer", "inner"]
RULE = GateRule()


def labels(per_class):
    return np.repeat(np.arange(len(CLASSES)), per_class)


def with_recall(y, recalls, seed=0):
    """Predictions with exactly the given recall per class (misses go to the next class)."""
    pred = y.copy()
    for k, r in enumerate(recalls):
        idx = np.flatnonzero(y == k)
        miss = idx[: int(round(len(idx) * (1 - r)))]
        pred[miss] = (k + 1) % len(CLASSES)
    return pred


def test_an_equal_or_better_candidate_is_not_worse():
    y = labels(200)
    active = with_recall(y, [0.9, 0.8, 0.7])
    for cand in (active, with_recall(y, [0.95, 0.9, 0.9])):
        res = compare("sim-test", y, active, cand, CLASSES, RULE)
        assert res["verdict"] == "not worse" and res["reasons"] == []
    res = compare("sim-test", y, active, with_recall(y, [0.95, 0.9, 0.9]), CLASSES, RULE)
    assert res["macro_recall_candidate"] > res["macro_recall_active"]
    assert res["classes"]["inner"]["recall_candidate"] == 0.9


def test_a_class_whose_recall_falls_on_a_large_set_makes_the_candidate_worse():
    y = labels(500)
    active = with_recall(y, [0.9, 0.9, 0.9])
    cand = with_recall(y, [0.95, 0.95, 0.7])  # macro 0.867 vs 0.9, inner -0.2
    res = compare("sim-test", y, active, cand, CLASSES, RULE)
    assert res["verdict"] == "worse"
    assert any(r.startswith("sim-test: recall of inner 0.700 < active 0.900") for r in res["reasons"])
    ok, reasons = gate([res])
    assert not ok and reasons == res["reasons"]


def test_the_same_fall_on_five_windows_is_within_chance():
    y = labels(5)
    active = with_recall(y, [1.0, 1.0, 1.0])
    cand = with_recall(y, [1.0, 1.0, 0.8])  # one window of five
    res = compare("field-heldback", y, active, cand, CLASSES, RULE)
    # se = sqrt(p(1-p)/5) with p = 6/7: allowance 2 * 0.156 = 0.31 > 0.2
    assert res["classes"]["inner"]["allowed_drop"] > 0.2
    assert res["verdict"] == "not worse"


def test_small_falls_in_every_class_add_up_to_a_macro_loss_on_a_large_set():
    y = labels(4000)
    active = with_recall(y, [0.9, 0.9, 0.9])
    cand = with_recall(y, [0.87, 0.87, 0.87])  # each -0.03, under the 0.05 class tolerance
    res = compare("sim-test", y, active, cand, CLASSES, RULE)
    assert all(c["allowed_drop"] == RULE.class_tolerance for c in res["classes"].values())
    assert res["macro_allowed_drop"] == RULE.macro_tolerance
    assert res["verdict"] == "worse"
    assert res["reasons"] == ["sim-test: macro recall 0.870 < active 0.900 - 0.010 (12000 windows, 3 classes)"]
    # Within the macro tolerance it passes.
    assert compare("sim-test", y, active, with_recall(y, [0.895, 0.895, 0.895]), CLASSES, RULE)["verdict"] == "not worse"


def test_classes_absent_from_a_set_are_not_judged_and_an_empty_set_is_not_judged():
    y = np.zeros(50, dtype=int)  # only normal windows (a healthy rig)
    res = compare("real:ims-healthy", y, y, with_recall(y, [0.5]), CLASSES, RULE)
    assert list(res["classes"]) == ["normal"] and res["verdict"] == "worse"
    empty = compare("field-heldback", np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), CLASSES, RULE)
    assert empty["verdict"] == "not judged" and not empty["judged"]
    assert gate([empty]) == (True, [])
    assert gate([empty, res])[0] is False
