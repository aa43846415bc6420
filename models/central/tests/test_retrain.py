"""retrain end to end: a candidate from field labels, gated against the active model, signed by
`lab model package` when not worse (and checked with `lab model verify`), refused when worse;
publish through `lab model publish` onto a real broker."""

import base64
import json
import subprocess

import numpy as np
import pytest
from confluent_kafka import Consumer

import helpers as h
from edgewatch_central import cli, retrain, trainset
from edgewatch_central.records import Message, to_row
from edgewatch_central.repo import find_lab, train_module
from edgewatch_central.store import Store

ACTIVE = "test-active-1"


def lab_ok(lab, *args):
    proc = subprocess.run([str(lab), *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("retrain")
    lab = find_lab()
    lab_ok(lab, "model", "keygen", "--out", d / "keys", "--name", "central-test")
    train = train_module()
    sim_train = h.write_sim_csv(d / "sim-train.csv", per_class=60, seed=1)
    sim_test = h.write_sim_csv(d / "sim-test.csv", per_class=30, seed=2)
    train.train(train.parse_args([
        "--train", str(sim_train), "--test", str(sim_test), "--out-dir", str(d / "active"),
        "--work-dir", str(d / "active-work"), "--version", ACTIVE, "--window-s", "1"]))
    lab_ok(lab, "model", "package", "--manifest", d / "active" / "manifest.json", "--dataset-id", "test-sim",
           "--key", d / "keys" / "central-test.key", "--out", d / "active.ewpkg")
    return {"dir": d, "lab": lab, "key": d / "keys" / "central-test.key", "pub": d / "keys" / "central-test.pub",
            "sim_train": sim_train, "sim_test": sim_test, "package": d / "active.ewpkg"}


def field_store(path, registry, windows_per_alert, alerts, cls, shift=None, seed=5):
    """`alerts` alerts (one asset each) whose input vectors are drawn from class `cls` (moved by
    `shift`), every one rejected by an operator: their windows are labelled normal."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(alerts):
        x = h.draw(cls, windows_per_alert, rng, shift=shift)
        inputs = [h.vector(v, 1_000_000_000 * (i + 1) + j * 1_000_000) for j, v in enumerate(x)]
        a = h.alert(f"A{i}", inputs, asset=f"pump-{i}", created=h.T0_MS + i)
        records += [("alerts", a), ("feedback", h.label("alert_rejected", alert_id=f"A{i}", asset=f"pump-{i}"))]
    rows = [to_row(Message(t, "edgewatch." + t, 0, k, h.T0_MS, None, h.dumps(r)), registry)
            for k, (t, r) in enumerate(records)]
    Store(path).write(rows, [])
    return path


def package_body(path):
    return json.loads(base64.b64decode(json.loads(path.read_text())["body"]))


def test_a_candidate_that_learns_the_field_labels_is_packaged_with_its_lineage(world, tmp_path, registry):
    # The field's healthy machines sit between normal and outer, with a temperature rise the
    # simulated set never has: the active model calls them faults, the operators say normal.
    means = h.class_means()
    shift = 0.7 * (means[1] - means[0])
    shift[-1] = 8.0
    store = field_store(tmp_path / "store", registry, 8, 12, "normal", shift=shift)
    ts = trainset.build(store, world["sim_train"], tmp_path / "ts", holdback=0.25)
    assert ts["files"]["heldback.csv"]["rows"] == 3 * 8 and ts["files"]["train.csv"]["field_rows"] == 9 * 8

    card = retrain.retrain(tmp_path / "ts", world["sim_test"], tmp_path / "out", "test-candidate-2",
                           world["key"], active_package=world["package"], data=None, lab=world["lab"])
    sets = {r["set"]: r for r in card["evaluation"]}
    field = sets["field-heldback"]
    assert field["classes"]["normal"]["recall_active"] < 0.2
    assert field["classes"]["normal"]["recall_candidate"] > 0.8
    assert sets["sim-test"]["verdict"] == "not worse" and sets["sim-test"]["windows"] == 8 * 30
    assert sets["real:cwru-fan-end-12k"]["verdict"] == "not judged"
    assert card["gate"]["passed"] and card["parent_model_version"] == ACTIVE

    pkg = tmp_path / "out" / "test-candidate-2.ewpkg"
    lab_ok(world["lab"], "model", "verify", "--package", pkg, "--trusted-key", world["pub"])
    manifest = package_body(pkg)["manifest"]
    assert manifest["lineage"]["parent_model_version"] == ACTIVE
    assert manifest["lineage"]["dataset_id"] == ts["dataset_id"]
    assert manifest["lineage"]["dataset_size"] == ts["files"]["train.csv"]["rows"]
    assert manifest["training"]["trainset"]["field_train_rows"] == 72
    assert len(manifest["input_distribution"]["quantiles"]) == len(h.FEATURES)
    saved = json.loads((tmp_path / "out" / "model-card.json").read_text())
    assert saved["package"]["sha256"] == trainset.sha256_file(pkg)
    assert saved["trainset"]["dataset_id"] == ts["dataset_id"]
    md = (tmp_path / "out" / "model-card.md").read_text()
    assert "### field-heldback" in md and "Gate: **passed**" in md


def test_a_candidate_worse_on_a_set_is_refused_naming_the_set(world, tmp_path, registry, capsys):
    # Operators "reject" 320 windows of real inner-race faults: trained on them, the candidate
    # calls inner faults normal.
    store = field_store(tmp_path / "store", registry, 8, 40, "inner")
    trainset.build(store, world["sim_train"], tmp_path / "ts", holdback=0.25)
    code = cli.main(["retrain", "--trainset", str(tmp_path / "ts"), "--sim-test", str(world["sim_test"]),
                     "--out", str(tmp_path / "out"), "--version", "test-candidate-3", "--key", str(world["key"]),
                     "--active-manifest", str(world["dir"] / "active" / "manifest.json"), "--no-real",
                     "--lab", str(world["lab"])])
    err = capsys.readouterr().err
    assert code == 1
    assert "sim-test: recall of inner" in err
    assert not list((tmp_path / "out").glob("*.ewpkg"))
    card = json.loads((tmp_path / "out" / "model-card.json").read_text())
    assert card["gate"]["passed"] is False and card["package"] is None
    sets = {r["set"]: r["verdict"] for r in card["evaluation"]}
    assert sets["sim-test"] == "worse"


def test_a_changed_training_set_is_refused_before_training(world, tmp_path, registry):
    store = field_store(tmp_path / "store", registry, 2, 2, "normal")
    trainset.build(store, world["sim_train"], tmp_path / "ts")
    with open(tmp_path / "ts" / "train.csv", "a") as f:
        f.write("0,normal,0,,25600,1500,y,1" + ",0" * len(h.FEATURES) + "\n")
    with pytest.raises(trainset.TrainsetError, match="train.csv"):
        retrain.retrain(tmp_path / "ts", world["sim_test"], tmp_path / "out", "x", world["key"], data=None,
                        lab=world["lab"])


def test_publish_puts_the_package_on_the_models_topic(world, tansu):
    code = cli.main(["publish", "--package", str(world["package"]), "--brokers", tansu.bootstrap,
                     "--lab", str(world["lab"])])
    assert code == 0
    c = Consumer({"bootstrap.servers": tansu.bootstrap, "group.id": "check", "auto.offset.reset": "earliest"})
    c.subscribe(["edgewatch.models"])
    try:
        msg = None
        for _ in range(40):
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None, "nothing on edgewatch.models"
        assert msg.key() == ACTIVE.encode()
        assert msg.value() == world["package"].read_bytes()
    finally:
        c.close()
