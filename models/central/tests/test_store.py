"""The Parquet store: partition paths, idempotent writes, quarantine, DuckDB over it."""

import os

import pyarrow.parquet as pq

import helpers as h
from edgewatch_central.query import connect
from edgewatch_central.records import Message, Rejected, to_row
from edgewatch_central.store import Quarantined, Store, asset_segment, utc_day

OFFSETS = iter(range(10**9))


def row(topic, rec, registry):
    m = Message(topic, "edgewatch." + topic, 0, next(OFFSETS), h.T0_MS, None, h.dumps(rec))
    return to_row(m, registry)


def bad(value=b"{nope", offset=None, topic="alerts"):
    m = Message(topic, "edgewatch." + topic, 1, next(OFFSETS) if offset is None else offset, h.T0_MS, b"k", value)
    try:
        to_row(m, None)
    except (Rejected, AttributeError) as e:
        return Quarantined(m, f"not JSON: {e}")


def test_partition_paths_follow_topic_asset_and_utc_day(tmp_path, registry):
    store = Store(tmp_path)
    assert utc_day(h.T0_MS) == "2026-09-21"
    assert utc_day(1_790_035_199_999) == "2026-09-21" and utc_day(1_790_035_200_000) == "2026-09-22"
    assert store.partition_dir("alerts", "pump-1", "2026-09-21") == \
        tmp_path / "topic=alerts" / "asset=pump-1" / "day=2026-09-21"
    assert asset_segment(None) == "_agent"
    assert asset_segment("_agent") == "%5Fagent"
    assert asset_segment("hall 2/pump=1") == "hall%202%2Fpump%3D1"
    rows = [row("alerts", h.alert("a", created=h.T0_MS), registry),
            row("alerts", h.alert("a", created=1_790_035_200_000), registry),
            row("model-status", h.model_status(), registry),
            row("summaries", h.summary(asset="hall 2/pump=1"), registry)]
    result = store.write(rows, [])
    assert result.landed == 4
    got = sorted(str(p.parent.relative_to(tmp_path)) for p in result.files)
    assert got == ["topic=alerts/asset=pump-1/day=2026-09-21", "topic=alerts/asset=pump-1/day=2026-09-22",
                   "topic=model-status/asset=_agent/day=2026-09-21",
                   "topic=summaries/asset=hall%202%2Fpump%3D1/day=2026-09-21"]
    con = connect(tmp_path)
    assert con.sql("SELECT asset, asset_id, day::VARCHAR FROM summaries").fetchall() == \
        [("hall 2/pump=1", "hall 2/pump=1", "2026-09-21")]
    assert con.sql("SELECT asset, asset_id FROM model_status").fetchall() == [("_agent", None)]


def test_writing_the_same_records_twice_stores_them_once_even_after_a_restart(tmp_path, registry):
    recs = [h.alert("a-1") for _ in range(5)]
    first = [row("alerts", r, registry) for r in recs]
    store = Store(tmp_path)
    assert store.write(first + first[:2], []).landed == 5  # duplicates inside one batch too
    again = [row("alerts", r, registry) for r in recs]  # same records, other offsets (a resend)
    res = store.write(again, [])
    assert (res.landed, res.duplicates, res.files) == (0, 5, [])
    # A new process (a restart) reads what the folder already holds.
    res = Store(tmp_path).write(again + [row("alerts", h.alert("a-2"), registry)], [])
    assert (res.landed, res.duplicates) == (1, 5)
    con = connect(tmp_path)
    assert con.sql("SELECT count(*), count(DISTINCT record_id) FROM alerts").fetchall() == [(6, 6)]


def test_a_temporary_file_left_by_a_crash_is_never_read_and_is_removed(tmp_path, registry):
    store = Store(tmp_path)
    r = row("alerts", h.alert("a-1"), registry)
    folder = store.partition_dir("alerts", "pump-1", utc_day(h.T0_MS))
    folder.mkdir(parents=True)
    leftover = folder / ".part-1-abc.parquet.tmp"
    leftover.write_bytes(b"half a parquet file")
    assert connect(tmp_path).sql("SELECT count(*) FROM alerts").fetchall() == [(0,)]
    assert store.write([r], []).landed == 1  # not taken for a copy of the record
    assert not leftover.exists()
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".parquet")] == []


def test_quarantined_messages_keep_raw_bytes_and_reason_once(tmp_path):
    store = Store(tmp_path)
    q = [bad(b"{nope", offset=7), bad(b"\xff\x00binary", offset=8)]
    res = store.write([], q + q[:1])
    assert (res.quarantined, res.quarantine_duplicates) == (2, 1)
    assert Store(tmp_path).write([], q).quarantined == 0
    rows = connect(tmp_path).sql(
        "SELECT kafka_offset, raw_text, raw_base64, reason, topic, day::VARCHAR FROM quarantine ORDER BY 1").fetchall()
    assert rows[0][:2] == (7, "{nope") and rows[0][3].startswith("not JSON") and rows[0][4:] == ("alerts", "2026-09-21")
    assert rows[1][1] is None and rows[1][2] == "/wBiaW5hcnk="


def test_files_are_complete_parquet_with_the_store_schema(tmp_path, registry):
    res = Store(tmp_path).write([row("summaries", h.summary(), registry)], [])
    (path,) = res.files
    assert path.name.startswith("part-") and path.suffix == ".parquet"
    table = pq.read_table(path)
    assert table.num_rows == 1 and "payload" in table.column_names and "landed_unix_ms" in table.column_names
    assert oct(os.stat(path).st_mode)[-3:] in ("644", "664", "600", "640")


def test_queries_work_before_anything_landed(tmp_path):
    con = connect(tmp_path / "empty")
    for view in ("summaries", "alerts", "model_status", "command_status", "feedback", "quarantine"):
        assert con.sql(f"SELECT count(*) FROM {view}").fetchall() == [(0,)]


def test_a_folder_evicted_from_the_key_cache_is_read_again(tmp_path, registry, monkeypatch):
    monkeypatch.setattr(Store, "MAX_CACHED_FOLDERS", 1)
    store = Store(tmp_path)
    a = row("alerts", h.alert("a", asset="pump-1"), registry)
    b = row("alerts", h.alert("b", asset="pump-2"), registry)
    assert store.write([a, b], []).landed == 2  # pump-1's folder is evicted by pump-2's
    assert len(store._keys) == 1
    assert store.write([a, b], []).duplicates == 2
