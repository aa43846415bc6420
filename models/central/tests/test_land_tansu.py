"""`land` against a real Kafka broker (tansu, started by each test on a free loopback port)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import helpers as h
from edgewatch_central import land
from edgewatch_central.query import connect
from edgewatch_central.records import TOPICS

# A consumer killed without leaving its group holds its partitions until this times out.
SESSION = "session.timeout.ms=6000"


def land_cmd(tansu, store, schemas, *extra):
    return [sys.executable, "-m", "edgewatch_central", "land", "--brokers", tansu.bootstrap,
            "--store", str(store), "--schemas", str(schemas), "--kafka-option", SESSION, *extra]


def land_once(tansu, store, schemas):
    proc = subprocess.run(land_cmd(tansu, store, schemas, "--once", "--idle-timeout-s", "5"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def count(store, view):
    return connect(store).sql(f"SELECT count(*), count(DISTINCT record_id) FROM {view}").fetchall()[0]


def test_land_once_twice_lands_each_record_once_and_quarantines_the_bad_ones(tansu, tmp_path, schemas_dir):
    for topic in TOPICS:
        tansu.create_topic("edgewatch." + topic, partitions=2 if topic in ("alerts", "summaries") else 1)
    store = tmp_path / "store"
    vec = h.vector([0.5] * len(h.FEATURES), 20_000_000)
    summaries = [h.summary(asset=f"pump-{i}", sample=[vec]) for i in range(3)]
    alerts = [h.alert(f"a-{i}", inputs=[vec], asset="pump-1") for i in range(4)]
    labels = [h.label("alert_rejected", alert_id="a-0"),
              h.label("asset_state", from_unix_ms=h.T0_MS - 10, to_unix_ms=h.T0_MS + 10, state="normal")]
    cmd = h.command()
    cmd_id = json.loads(__import__("base64").b64decode(cmd["body"]))["command_id"]
    good = ([("summaries", r["asset_id"], h.dumps(r)) for r in summaries]
            + [("alerts", r["asset_id"], h.dumps(r)) for r in alerts]
            + [("model-status", None, h.dumps(h.model_status())),
               ("command-status", "pump-1", h.dumps(h.command_status(cmd_id)))]
            + [("feedback", "pump-1", h.dumps(r)) for r in labels]
            + [("feedback", "pump-1", h.dumps(cmd))])
    dups = [("alerts", "pump-1", h.dumps(alerts[1])), ("feedback", "pump-1", h.dumps(labels[0]))]
    no_alert_id = {k: v for k, v in h.alert("x").items() if k != "alert_id"}
    bad = [("alerts", "pump-1", b"{not json", "not JSON"),
           ("alerts", "pump-1", h.dumps(no_alert_id), "schema: (record): 'alert_id' is a required property"),
           ("summaries", "pump-2", h.dumps({**h.summary(), "type": "digest"}), "unknown type 'digest'"),
           ("feedback", "pump-1", h.dumps(h.command(raw_body="%%%")), "command: body is not base64"),
           ("model-status", None, h.dumps({**h.model_status(), "schema_version": 99}), "unknown schema_version 99")]
    h.produce(tansu.bootstrap, [("edgewatch." + t, k, v) for t, k, v in good + dups]
              + [("edgewatch." + t, k, v) for t, k, v, _ in bad])

    first = land_once(tansu, store, schemas_dir)
    assert first == {"messages": len(good) + len(dups) + len(bad), "landed": len(good), "duplicates": 2,
                     "quarantined": len(bad), "quarantine_duplicates": 0, "files": first["files"]}
    second = land_once(tansu, store, schemas_dir)
    assert second["messages"] == 0 and second["landed"] == 0

    assert count(store, "summaries") == (3, 3)
    assert count(store, "alerts") == (4, 4)
    assert count(store, "model_status") == (1, 1)
    assert count(store, "command_status") == (1, 1)
    assert count(store, "feedback") == (3, 3)
    con = connect(store)
    ids = {r[0] for r in con.sql("SELECT record_id FROM feedback").fetchall()}
    assert ids == {labels[0]["feedback_id"], labels[1]["feedback_id"], cmd_id}
    assert con.sql("SELECT DISTINCT asset FROM model_status").fetchall() == [("_agent",)]
    got = con.sql("SELECT topic, raw_text, reason FROM quarantine ORDER BY topic, kafka_offset").fetchall()
    assert len(got) == len(bad)
    for topic, raw, expected in [(t, v.decode(), r) for t, _, v, r in bad]:
        match = [g for g in got if g[0] == topic and g[1] == raw]
        assert len(match) == 1, (topic, raw)
        assert match[0][2].startswith(expected), match[0][2]

    # A resend of a landed record and one new record: only the new one lands.
    h.produce(tansu.bootstrap, [("edgewatch.alerts", "pump-1", h.dumps(alerts[2])),
                                ("edgewatch.alerts", "pump-1", h.dumps(h.alert("a-9")))])
    third = land_once(tansu, store, schemas_dir)
    assert (third["messages"], third["landed"], third["duplicates"]) == (2, 1, 1)
    assert count(store, "alerts") == (5, 5)


def test_a_crash_after_the_write_and_before_the_commit_replays_without_duplicates(
        tansu, tmp_path, schemas_dir, monkeypatch):
    tansu.create_topic("edgewatch.alerts", partitions=2)
    store = tmp_path / "store"
    alerts = [h.alert(f"a-{i}", asset=f"pump-{i % 3}") for i in range(20)]
    h.produce(tansu.bootstrap, [("edgewatch.alerts", r["asset_id"], h.dumps(r)) for r in alerts])

    def crash(self, offsets):
        raise RuntimeError("crash before the commit")

    monkeypatch.setattr(land.Lander, "commit", crash)
    cfg = land.LandConfig(brokers=tansu.bootstrap, store=store, schemas=schemas_dir, once=True,
                          kafka_options={"session.timeout.ms": "6000"}, idle_timeout_s=5)
    with pytest.raises(RuntimeError, match="crash before the commit"):
        land.run(cfg)
    assert count(store, "alerts") == (20, 20)  # written, offsets not committed
    monkeypatch.undo()

    replay = land_once(tansu, store, schemas_dir)
    assert (replay["messages"], replay["landed"], replay["duplicates"]) == (20, 0, 20)
    assert count(store, "alerts") == (20, 20)


def test_a_lander_killed_mid_way_resumes_from_its_committed_offsets(tansu, tmp_path, schemas_dir):
    # Only the alerts topic exists: the long-running lander waits for the others.
    tansu.create_topic("edgewatch.alerts", partitions=2)
    store = tmp_path / "store"
    n = 1000
    alerts = [h.alert(f"a-{i}", asset=f"pump-{i % 5}") for i in range(n)]
    h.produce(tansu.bootstrap, [("edgewatch.alerts", r["asset_id"], h.dumps(r)) for r in alerts])

    proc = subprocess.Popen(land_cmd(tansu, store, schemas_dir, "--flush-records", "20"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        # Two files: the first flush's commit is done before the second flush writes.
        while len(list(store.glob("topic=alerts/*/*/*.parquet"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the lander wrote nothing in 60 s"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    resumed = land_once(tansu, store, schemas_dir)
    assert resumed["messages"] <= n - 20, "the second run started before the first run's commits"
    assert count(store, "alerts") == (n, n)
    ids = {r[0] for r in connect(store).sql("SELECT record_id FROM alerts").fetchall()}
    assert ids == {r["record_id"] for r in alerts}
