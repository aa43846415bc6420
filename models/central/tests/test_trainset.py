"""build-trainset: labels joined to the inputs the fleet reported, the split, the lineage."""

import csv
import json
from collections import Counter

import numpy as np
import pytest

import helpers as h
from edgewatch_central import trainset
from edgewatch_central.records import Message, to_row
from edgewatch_central.repo import train_module
from edgewatch_central.store import Store

MIN = 60_000
RNG = np.random.default_rng(3)


def vecs(cls, n, start_us):
    return [h.vector(v, start_us + i * 1_000_000, cls=cls) for i, v in enumerate(h.draw(cls, n, RNG))]


def land(store_dir, registry, records):
    rows = [to_row(Message(t, "edgewatch." + t, 0, i, h.T0_MS, None, h.dumps(r)), registry)
            for i, (t, r) in enumerate(records)]
    Store(store_dir).write(rows, [])


def read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture
def built(tmp_path, registry):
    T = h.T0_MS
    a1 = [h.alert("A1", vecs("normal", 3, 1_000_000_000), created=T + 1 * MIN),
          h.alert("A1", vecs("normal", 3, 1_100_000_000), created=T + 2 * MIN, transition="updated")]
    a2 = [h.alert("A2", vecs("inner", 4, 2_000_000_000), created=T + 3 * MIN)]
    a3 = [h.alert("A3", vecs("normal", 2, 3_000_000_000), created=T + 4 * MIN)]
    a4 = [h.alert("A4", vecs("outer", 2, 4_000_000_000), created=T + 5 * MIN)]
    a6 = [h.alert("A6", vecs("outer", 2, 6_000_000_000), asset="pump-2", created=T + 6 * MIN)]
    other_inputs = h.alert("A10", vecs("outer", 2, 7_000_000_000), created=T + 7 * MIN)
    other_inputs["input_names"] = ["something_else"] * len(h.FEATURES)
    # pump-3: a state over an hour; one summary inside, one starting before, one after; an alert inside.
    s_in = h.summary("pump-3", created=T + 10 * MIN, sample=vecs("normal", 2, 8_000_000_000))
    s_early = h.summary("pump-3", created=T + MIN // 2, sample=vecs("normal", 2, 8_100_000_000))
    s_late = h.summary("pump-3", created=T + 120 * MIN, sample=vecs("normal", 2, 8_200_000_000))
    a7 = [h.alert("A7", vecs("normal", 2, 9_000_000_000), asset="pump-3", created=T + 20 * MIN)]
    # pump-4: a confirmed ball alert inside a "normal" state: its windows conflict.
    a8 = [h.alert("A8", vecs("ball", 2, 10_000_000_000), asset="pump-4", created=T + 30 * MIN)]
    s4 = h.summary("pump-4", created=T + 40 * MIN, sample=vecs("normal", 1, 10_500_000_000))
    # pump-5: an alert confirmed as imbalance inside an imbalance state: the labels share windows.
    a9 = [h.alert("A9", vecs("imbalance", 3, 11_000_000_000), asset="pump-5", created=T + 30 * MIN)]
    # pump-6: a second normal state and a second imbalance state, so those classes have groups to hold back.
    s6 = h.summary("pump-6", created=T + 10 * MIN, sample=vecs("normal", 2, 12_000_000_000))
    s6b = h.summary("pump-6", created=T + 200 * MIN, sample=vecs("imbalance", 2, 12_500_000_000))

    L = {
        "A1": h.label("alert_rejected", alert_id="A1", created=T + 100 * MIN),
        "A2": h.label("alert_confirmed", alert_id="A2", fault="inner", created=T + 100 * MIN),
        "A3a": h.label("alert_confirmed", alert_id="A3", fault="outer", created=T + 100 * MIN),
        "A3b": h.label("alert_rejected", alert_id="A3", created=T + 101 * MIN),
        "A4": h.label("alert_confirmed", alert_id="A4", fault="rust", created=T + 100 * MIN),
        "A5": h.label("alert_rejected", alert_id="A5", created=T + 100 * MIN),
        "A6": h.label("alert_rejected", alert_id="A6", created=T + 100 * MIN),
        "A10": h.label("alert_rejected", alert_id="A10", created=T + 100 * MIN),
        "S3": h.label("asset_state", asset="pump-3", from_unix_ms=T, to_unix_ms=T + 60 * MIN, state="normal",
                      created=T + 100 * MIN),
        "A8": h.label("alert_confirmed", alert_id="A8", fault="ball", asset="pump-4", created=T + 100 * MIN),
        "S4": h.label("asset_state", asset="pump-4", from_unix_ms=T, to_unix_ms=T + 60 * MIN, state="normal",
                      created=T + 100 * MIN),
        "A9": h.label("alert_confirmed", alert_id="A9", fault="imbalance", asset="pump-5", created=T + 100 * MIN),
        "S5": h.label("asset_state", asset="pump-5", from_unix_ms=T, to_unix_ms=T + 60 * MIN, state="imbalance",
                      created=T + 100 * MIN),
        "S6": h.label("asset_state", asset="pump-6", from_unix_ms=T, to_unix_ms=T + 60 * MIN, state="normal",
                      created=T + 100 * MIN),
        "S6b": h.label("asset_state", asset="pump-6", from_unix_ms=T + 100 * MIN, to_unix_ms=T + 300 * MIN,
                       state="imbalance", created=T + 100 * MIN),
        "M": h.label("maintenance", at_unix_ms=T, action="bearing replaced", created=T + 100 * MIN),
    }
    records = ([("alerts", r) for r in a1 + a2 + a3 + a4 + a6 + a7 + a8 + a9 + [other_inputs]]
               + [("summaries", s) for s in (s_in, s_early, s_late, s4, s6, s6b)]
               + [("feedback", lab) for lab in L.values()])
    store = tmp_path / "store"
    land(store, registry, records)
    sim = h.write_sim_csv(tmp_path / "sim-train.csv", per_class=5, seed=1)
    out = tmp_path / "ts"
    manifest = trainset.build(store, sim, out, holdback=0.25)
    return {"out": out, "sim": sim, "manifest": manifest, "labels": L, "store": store,
            "alerts": {"A1": a1, "A2": a2, "A3": a3, "A7": a7, "A8": a8, "A9": a9},
            "summaries": {"in": s_in, "early": s_early, "late": s_late, "s4": s4, "s6": s6, "s6b": s6b}}


def fid(built, name):
    return built["labels"][name]["feedback_id"]


def test_labels_give_the_windows_of_their_alerts_and_states(built):
    m, out = built["manifest"], built["out"]
    used = {u["feedback_id"]: u for u in m["labels"]["used"]}
    assert used[fid(built, "A1")]["class"] == "normal" and used[fid(built, "A1")]["windows_kept"] == 6
    assert used[fid(built, "A2")]["class"] == "inner" and used[fid(built, "A2")]["windows_kept"] == 4
    assert used[fid(built, "A3b")]["class"] == "normal" and used[fid(built, "A3b")]["windows_kept"] == 2
    # pump-3's state: the summary inside the range (2) and the alert inside it (2), not the others.
    assert used[fid(built, "S3")]["windows_kept"] == 4
    lineage = read(out / "lineage.csv")
    s3_records = {r for row in lineage[1:] if fid(built, "S3") in row[5].split() for r in row[6].split()}
    assert s3_records == {built["summaries"]["in"]["record_id"], built["alerts"]["A7"][0]["record_id"]}
    # Every field window is in exactly one of the two files, labelled with its label's class.
    field = [r for r in read(out / "train.csv")[1:] + read(out / "heldback.csv")[1:] if r[0].startswith("field:")]
    assert len(field) == sum(u["windows_kept"] for u in used.values() if u["feedback_id"] != fid(built, "S5"))
    assert Counter(r[1] for r in field) == Counter({"normal": 6 + 2 + 4 + 1 + 2, "inner": 4, "imbalance": 3 + 2})


def test_what_cannot_be_used_is_recorded_with_its_reason(built):
    ignored = {i["feedback_id"]: i["reason"] for i in built["manifest"]["labels"]["ignored"]}
    assert ignored[fid(built, "A3a")] == f"superseded by {fid(built, 'A3b')}"
    assert ignored[fid(built, "A4")] == "class 'rust' is not one of the model's"
    assert ignored[fid(built, "A5")] == "no alert record of A5 in the store"
    assert ignored[fid(built, "A6")].startswith("alert A6 is of asset pump-2")
    assert ignored[fid(built, "M")] == "maintenance: no windows"
    # A8's two windows are ball by its confirmation and normal by pump-4's state: dropped.
    assert ignored[fid(built, "A8")].startswith("no window left")
    conflicts = built["manifest"]["conflicts"]
    assert len(conflicts) == 2
    assert all(set(c["labels"].values()) == {"ball", "normal"} for c in conflicts)
    skipped = built["manifest"]["records"]["skipped"]
    assert [s["reason"] for s in skipped] == ["input_names differ from the training columns"]
    assert ignored[fid(built, "A10")].startswith("no window left")


def test_labels_that_share_windows_are_one_group_on_one_side_of_the_split(built):
    used = {u["feedback_id"]: u for u in built["manifest"]["labels"]["used"]}
    a9, s5 = used[fid(built, "A9")], used[fid(built, "S5")]
    assert a9["group"] == s5["group"] and a9["split"] == s5["split"]
    # Per class, groups are held back whole: no group has rows in both files.
    train_groups = {r[0] for r in read(built["out"] / "train.csv")[1:] if r[0].startswith("field:")}
    held_groups = {r[0] for r in read(built["out"] / "heldback.csv")[1:]}
    assert held_groups and not train_groups & held_groups
    # normal has 5 groups (A1, A3, the states of pump-3, pump-4 and pump-6): one held back;
    # imbalance 2 groups: one held back; inner 1 group: trained on.
    held = Counter(u["class"] for u in used.values() if u["split"] == "heldback")
    groups_held = {(u["class"], u["group"]) for u in used.values() if u["split"] == "heldback"}
    assert Counter(c for c, _ in groups_held) == Counter({"normal": 1, "imbalance": 1})
    assert "inner" not in held


def test_the_files_are_the_export_format_and_trainset_json_pins_them(built, tmp_path):
    out, m = built["out"], built["manifest"]
    train = train_module()
    sim = read(built["sim"])
    rows = read(out / "train.csv")
    assert rows[0] == sim[0] and rows[1:len(sim)] == sim[1:]
    features, meta, x = train.read_csv(out / "train.csv")
    assert features == h.FEATURES and len(x) == m["files"]["train.csv"]["rows"]
    train.labels_to_index(meta["label"])
    _, meta_h, x_h = train.read_csv(out / "heldback.csv")
    assert len(x_h) == m["files"]["heldback.csv"]["rows"] > 0
    assert trainset.check(out) == m
    lineage = read(out / "lineage.csv")
    assert lineage[0] == trainset.LINEAGE_COLUMNS
    assert len(lineage) - 1 == len(x) + len(x_h)
    for row in lineage[1:]:
        if row[2] == "field":
            assert row[5] and row[6] and row[13] == "0.9.0" and row[14] == "1" and row[15] == "edgewatch-classifier-4"
    assert m["dataset_id"] == "trainset:" + m["files"]["train.csv"]["sha256"][:16]
    assert m["sim_train"]["sha256"] == trainset.sha256_file(built["sim"])
    assert m["agent_versions"] == ["0.9.0"] and m["feature_versions"] == [1]
    # The same store and simulated set give the same files.
    again = trainset.build(built["store"], built["sim"], tmp_path / "again", holdback=0.25)
    assert again["files"] == m["files"]
    # A changed file is caught.
    with open(out / "heldback.csv", "a") as f:
        f.write("\n")
    with pytest.raises(trainset.TrainsetError, match="changed after build-trainset"):
        trainset.check(out)


def test_field_weight_repeats_training_windows_only(built, tmp_path):
    m1 = built["manifest"]
    m3 = trainset.build(built["store"], built["sim"], tmp_path / "w3", holdback=0.25, field_weight=3)
    f1, f3 = m1["files"], m3["files"]
    assert f3["train.csv"]["field_rows"] == 3 * f1["train.csv"]["field_rows"]
    assert f3["train.csv"]["field_windows_per_class"] == f1["train.csv"]["field_windows_per_class"]
    assert f3["heldback.csv"] == f1["heldback.csv"]
    assert m3["field_weight"] == 3 and f3["lineage.csv"]["rows"] == f3["train.csv"]["rows"] + f3["heldback.csv"]["rows"]
