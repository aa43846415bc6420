"""One message to one row or one quarantine reason (records.to_row), and the schema registry."""

import base64
import json
import shutil

import pytest

import helpers as h
from edgewatch_central.records import Message, Rejected, SchemaRegistry, to_row
from edgewatch_central.repo import SCHEMAS


def msg(topic, value, offset=0, partition=0):
    return Message(topic=topic, kafka_topic="edgewatch." + topic, partition=partition, offset=offset,
                   timestamp_ms=h.T0_MS, key=b"pump-1", value=value)


def reason(topic, value, registry):
    with pytest.raises(Rejected) as e:
        to_row(msg(topic, value), registry)
    return str(e.value)


FACTORIES = {
    "summaries": lambda: h.summary(sample=[h.vector([0.0] * len(h.FEATURES), 1)]),
    "alerts": lambda: h.alert("gw-1-0a0b0c0d-pump-1-5000", inputs=[h.vector([0.0] * len(h.FEATURES), 1)]),
    "model-status": h.model_status,
    "command-status": lambda: h.command_status(h.hex32()),
    "feedback": lambda: h.label("alert_rejected", alert_id="a-1"),
}


@pytest.mark.parametrize("topic", sorted(FACTORIES))
def test_every_fixture_record_is_valid_for_its_topic(topic, registry):
    rec = FACTORIES[topic]()
    row = to_row(msg(topic, h.dumps(rec)), registry)
    assert row.values["schema_version"] == rec["schema_version"]
    assert json.loads(row.values["payload"]) == rec


def test_the_envelope_and_lineage_are_flattened_and_the_payload_kept(registry):
    rec = h.alert("a-1", inputs=[h.vector(range(len(h.FEATURES)), 5)])
    row = to_row(msg("alerts", h.dumps(rec), offset=41, partition=2), registry).values
    for name in ("record_id", "agent_id", "asset_id", "sensor_id", "created_unix_ms", "model_version",
                 "window_start_us", "window_end_us", "type"):
        assert row[name] == rec[name], name
    for name in ("agent_version", "config_hash", "feature_version", "baseline_learned_us", "source"):
        assert row[name] == rec["lineage"][name], name
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == ("edgewatch.alerts", 2, 41)
    assert row["payload"] == h.dumps(rec).decode()


def test_model_status_records_have_no_asset(registry):
    row = to_row(msg("model-status", h.dumps(h.model_status())), registry).values
    assert row["asset_id"] is None and row["sensor_id"] is None


def test_a_label_is_keyed_by_its_feedback_id(registry):
    rec = h.label("asset_state", from_unix_ms=1, to_unix_ms=2, state="normal")
    row = to_row(msg("feedback", h.dumps(rec)), registry).values
    assert row["record_id"] == rec["feedback_id"]
    assert row["type"] == "label" and row["asset_id"] == "pump-1"


def test_a_command_is_keyed_by_the_command_id_of_its_decoded_body(registry):
    body = {"command_id": "c" * 32, "agent_id": "gw-2", "asset_id": "fan-3", "action": "recommission",
            "shelve_until_unix_ms": 0, "issued_by": "ops", "created_unix_ms": h.T0_MS + 5}
    row = to_row(msg("feedback", h.dumps(h.command(body))), registry).values
    assert row["record_id"] == "c" * 32
    assert (row["agent_id"], row["asset_id"], row["created_unix_ms"]) == ("gw-2", "fan-3", h.T0_MS + 5)
    assert json.loads(row["command_body"]) == body


@pytest.mark.parametrize("value,expected", [
    (b"\xff\xfe not utf-8", "not JSON: not UTF-8"),
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"type": "alert"}', "no integer schema_version"),
    (json.dumps({**h.alert("a"), "schema_version": 99}).encode(), "unknown schema_version 99 for topic alerts"),
    (json.dumps({**h.alert("a"), "type": "bogus"}).encode(), "unknown type 'bogus' for topic alerts"),
    (json.dumps({k: v for k, v in h.alert("a").items() if k != "alert_id"}).encode(),
     "schema: (record): 'alert_id' is a required property"),
    (json.dumps({**h.alert("a"), "sensor_id": "one"}).encode(), "schema: sensor_id: 'one' is not of type"),
    (json.dumps({**h.alert("a"), "record_id": "xyz"}).encode(), "schema: record_id:"),
])
def test_bad_alert_messages_are_rejected_with_their_reason(value, expected, registry):
    assert reason("alerts", value, registry).startswith(expected)


def test_a_lineage_field_of_the_wrong_type_names_the_field(registry):
    rec = h.summary()
    rec["lineage"]["feature_version"] = "one"
    assert "lineage/feature_version" in reason("summaries", h.dumps(rec), registry)


def test_an_empty_message_is_rejected(registry):
    assert reason("alerts", None, registry) == "empty message (no value)"


@pytest.mark.parametrize("body,expected", [
    ("%%% not base64", "command: body is not base64"),
    (base64.b64encode(b"not json").decode(), "command: body is not JSON"),
    (base64.b64encode(b'{"agent_id": "gw-1"}').decode(), "command: body has no command_id"),
])
def test_bad_command_bodies_are_rejected(body, expected, registry):
    assert reason("feedback", h.dumps(h.command(raw_body=body)), registry).startswith(expected)


def test_an_unknown_feedback_type_is_rejected(registry):
    rec = {**h.label("maintenance", at_unix_ms=1, action="regreased"), "type": "opinion"}
    assert reason("feedback", h.dumps(rec), registry).startswith("unknown type 'opinion' for topic feedback")


def test_records_of_a_frozen_version_are_checked_against_its_schema(tmp_path, registry):
    """schemas/v1/ holds version 1: a v1 alert lands, a v1 alert with a v2-only shape does not."""
    v1 = registry.get("alerts", 1)
    assert v1 is not None and v1.path.parent.name == "v1", "schemas/v1/edgewatch.alerts.json is missing"
    old = {k: v for k, v in h.alert("a-1").items() if k not in ("lineage", "input_names", "inputs")}
    old["schema_version"] = 1
    row = to_row(msg("alerts", h.dumps(old)), registry).values
    assert row["schema_version"] == 1 and row["agent_version"] is None
    # Version 1 allowed no other properties: a v1 record carrying lineage is refused by v1's schema.
    assert reason("alerts", h.dumps({**old, "lineage": h.lineage()}), registry).startswith("schema:")
    # And the current version requires lineage.
    assert "lineage" in reason("alerts", h.dumps({**old, "schema_version": 2}), registry)


def test_the_registry_reads_the_version_from_the_schema_and_checks_the_folder(tmp_path):
    shutil.copy(SCHEMAS / "edgewatch.alerts.json", tmp_path / "edgewatch.alerts.json")
    (tmp_path / "v7").mkdir()
    shutil.copy(SCHEMAS / "edgewatch.alerts.json", tmp_path / "v7" / "edgewatch.alerts.json")
    with pytest.raises(ValueError, match="in folder v7"):
        SchemaRegistry(tmp_path)
    shutil.rmtree(tmp_path / "v7")
    reg = SchemaRegistry(tmp_path)
    current = json.loads((SCHEMAS / "edgewatch.alerts.json").read_text())["properties"]["schema_version"]["const"]
    assert reg.versions("alerts") == [current]
    assert reg.versions("feedback") == []
