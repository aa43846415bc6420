//! Durable outbox and Kafka forwarding end to end: a real tansu broker (sqlite storage, so it
//! can be killed and restarted with its data), a real mosquitto, the firmware-sim binary
//! publishing the `demo` scenario in real time, the agent binary, and an rdkafka consumer.
//!
//! Every test checks the same invariants on what reaches Kafka, using the `edgewatch-seq`
//! header (the record's outbox sequence):
//! - none lost: every sequence the agent ever assigned is in Kafka or still in the outbox;
//! - duplicates only as copies of one record: every copy of a sequence has the same
//!   `record_id`, and no `record_id` appears under two sequences;
//! - per-key order: for each key, first deliveries come in sequence order;
//! - every message validates against its topic's JSON Schema in `schemas/`.
//!
//! The tests print their figures (records sent, received, duplicates, reordered) for
//! docs/delivery.md. They run one at a time: each starts several processes under load.

use edgewatch_agent::outbox::{Outbox, SledOutbox};
use edgewatch_tests::{Agent, Mosquitto, Proc, Tansu, metric, workspace_bin};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TOPICS: [&str; 3] = [
    "edgewatch.alerts",
    "edgewatch.summaries",
    "edgewatch.health",
];
const PARTITIONS: u32 = 3;
const MAX_BYTES: u64 = 64 << 20;

/// The tests share two cores with everything else: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// `[[asset]]` sections for the simulator's `demo` scenario.
fn demo_assets() -> String {
    let s = firmware_sim::physics::scenario::Scenario::builtin("demo").unwrap();
    s.assets
        .iter()
        .map(|a| {
            format!(
                "[[asset]]\nid = \"{}\"\nshaft_rpm = {}\nbearing = {{ rolling_elements = {}, \
                 element_diameter_mm = {}, pitch_diameter_mm = {}, contact_angle_deg = {} }}\n\
                 sensors = [{}]\n",
                a.id,
                a.machine.rpm,
                a.machine.bearing.rolling_elements,
                a.machine.bearing.element_diameter_mm,
                a.machine.bearing.pitch_diameter_mm,
                a.machine.bearing.contact_angle_deg,
                a.sensor_id
            )
        })
        .collect()
}

/// An agent configuration reading MQTT at `mqtt_url`, forwarding to `kafka` if given.
fn agent_config(mqtt_url: &str, kafka: Option<&str>, outbox: &str, kafka_extra: &str) -> String {
    let kafka = kafka.map_or(String::new(), |b| {
        format!(
            "[kafka]\nbrokers = [\"{b}\"]\nlinger_ms = 20\nretry_min_ms = 200\n\
             retry_max_ms = 2000\n{kafka_extra}\n"
        )
    });
    // Defaults for the [outbox] section, unless `outbox` sets the key itself.
    let defaults: String = [
        ("summary_interval_s", "0.25"),
        ("heartbeat_interval_s", "2"),
        ("flush_interval_ms", "200"),
    ]
    .iter()
    .filter(|(k, _)| !outbox.lines().any(|l| l.trim_start().starts_with(k)))
    .map(|(k, v)| format!("{k} = {v}\n"))
    .collect();
    format!(
        "[agent]\nid = \"gw-test\"\ndata_dir = \"{{data_dir}}\"\n\
         [metrics]\nlisten = \"{{metrics}}\"\n\
         [mqtt]\nurl = \"{mqtt_url}\"\nclient_id = \"agent-delivery\"\nqos = 1\n\
         [window]\nlength = 2048\noverlap = 0.0\n\
         [outbox]\n{defaults}{outbox}\n{kafka}{assets}",
        assets = demo_assets()
    )
}

/// firmware-sim publishing the demo scenario in real time.
fn start_sim(mqtt_url: &str) -> Proc {
    Proc::spawn(
        "firmware-sim",
        Command::new(workspace_bin("firmware-sim"))
            .args([
                "run",
                "--scenario",
                "demo",
                "--output",
                "mqtt",
                "--mqtt-url",
            ])
            .arg(mqtt_url)
            .args(["--mqtt-client-id", "sim-delivery"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// One consumed message.
#[derive(Debug, Clone)]
struct Msg {
    topic: String,
    key: String,
    seq: u64,
    record_id: String,
    value: serde_json::Value,
}

/// Reads every topic from the beginning until `want` distinct sequences arrived and 2 s passed
/// without a new message, or `timeout`.
fn consume(bootstrap: &str, want: usize, timeout: Duration) -> Vec<Msg> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "delivery-test")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create the test consumer");
    let mut tpl = TopicPartitionList::new();
    for t in TOPICS {
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(t, p as i32, Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&tpl).expect("assign partitions");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut seqs = BTreeSet::new();
    let mut last_new = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let seq = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "edgewatch-seq"))
                    .and_then(|h| h.value)
                    .and_then(|v| <[u8; 8]>::try_from(v).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or_else(|| {
                        panic!("message without edgewatch-seq header on {}", m.topic())
                    });
                let value: serde_json::Value =
                    serde_json::from_slice(m.payload().unwrap_or_default()).expect("JSON payload");
                out.push(Msg {
                    topic: m.topic().to_string(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    seq,
                    record_id: value["record_id"].as_str().unwrap_or_default().to_string(),
                    value,
                });
                seqs.insert(seq);
                last_new = Instant::now();
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {
                if seqs.len() >= want && last_new.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
        }
    }
    out
}

/// What a run delivered.
#[derive(Debug, Default)]
struct Figures {
    assigned: u64,
    still_in_outbox: usize,
    received: usize,
    unique: usize,
    duplicates: usize,
    reordered: usize,
    by_topic: BTreeMap<String, usize>,
}

/// Opens the (stopped) agent's outbox to learn what it still holds and the
/// next sequence it would assign.
fn outbox_state(data_dir: &Path) -> (u64, BTreeSet<u64>) {
    let (o, opened) =
        SledOutbox::open(&data_dir.join("outbox"), MAX_BYTES, 0).expect("open outbox");
    assert!(
        matches!(
            opened,
            edgewatch_agent::outbox::sled_store::Opened::Clean { .. }
        ),
        "the agent left an outbox that does not open cleanly: {opened:?}"
    );
    o.flush().unwrap();
    let left = o
        .peek(0, usize::MAX)
        .unwrap()
        .records
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    (o.next_seq(), left)
}

fn schemas() -> HashMap<String, jsonschema::Validator> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    TOPICS
        .iter()
        .map(|t| {
            let text = std::fs::read_to_string(dir.join(format!("{t}.json"))).expect("schema file");
            let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
            (
                t.to_string(),
                jsonschema::validator_for(&schema).expect("schema compiles"),
            )
        })
        .collect()
}

/// Checks the invariants of the module docs; returns the figures.
fn check(msgs: &[Msg], assigned: u64, left: &BTreeSet<u64>) -> Figures {
    let validators = schemas();
    for m in msgs {
        let v = &validators[&m.topic];
        let errors: Vec<String> = v.iter_errors(&m.value).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "message on {} violates its schema: {errors:?}\n{}",
            m.topic,
            m.value
        );
    }
    let mut id_of_seq: HashMap<u64, &str> = HashMap::new();
    let mut seq_of_id: HashMap<&str, u64> = HashMap::new();
    for m in msgs {
        let id = *id_of_seq.entry(m.seq).or_insert(&m.record_id);
        assert_eq!(
            id, m.record_id,
            "sequence {} delivered with two record ids",
            m.seq
        );
        let seq = *seq_of_id.entry(&m.record_id).or_insert(m.seq);
        assert_eq!(seq, m.seq, "record id {} under two sequences", m.record_id);
    }
    let delivered: BTreeSet<u64> = id_of_seq.keys().copied().collect();
    let lost: Vec<u64> = (0..assigned)
        .filter(|s| !delivered.contains(s) && !left.contains(s))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {assigned} records lost (neither in Kafka nor in the outbox): {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    assert!(
        delivered.iter().all(|s| *s < assigned),
        "Kafka holds sequences the agent never assigned"
    );
    // Per key, in consumption order (one partition per key): first deliveries must increase.
    let mut seen = BTreeSet::new();
    let mut last_per_key: HashMap<(&str, &str), u64> = HashMap::new();
    let mut reordered = 0;
    // One key is one partition of a topic, which the consumer returns in offset order.
    for m in msgs {
        if !seen.insert(m.seq) {
            continue;
        }
        let last = last_per_key.entry((&m.topic, &m.key)).or_insert(0);
        if m.seq < *last {
            reordered += 1;
        }
        *last = (*last).max(m.seq);
    }
    let mut by_topic = BTreeMap::new();
    for m in msgs {
        *by_topic.entry(m.topic.clone()).or_insert(0) += 1;
    }
    Figures {
        assigned,
        still_in_outbox: left.len(),
        received: msgs.len(),
        unique: delivered.len(),
        duplicates: msgs.len() - delivered.len(),
        reordered,
        by_topic,
    }
}

fn print_figures(test: &str, f: &Figures, extra: &str) {
    println!(
        "FIGURES {test}: records assigned (sent by the agent) {}, received {} ({} unique, {} \
         duplicates), reordered {}, still in outbox {}, per topic {:?}{extra}",
        f.assigned, f.received, f.unique, f.duplicates, f.reordered, f.still_in_outbox, f.by_topic
    );
}

/// Waits until the agent's outbox is empty and nothing is in flight.
fn wait_drained(agent: &Agent, timeout: Duration) -> String {
    agent
        .wait_metrics(timeout, |m| {
            metric(m, "edgewatch_outbox_appended_total") > 0.0
                && metric(m, "edgewatch_outbox_records") == 0.0
                && metric(m, "edgewatch_kafka_in_flight") == 0.0
        })
        .unwrap_or_else(|m| panic!("the outbox did not drain:\n{m}\n{}", agent.log()))
}

/// Stops the load, lets the agent send everything, stops it; consumes and checks.
fn finish(mut agent: Agent, mut sim: Proc, tansu: &Tansu, test: &str, extra: &str) -> Figures {
    sim.kill();
    // The last windows and summaries close within a second of the last frame.
    std::thread::sleep(Duration::from_millis(1500));
    wait_drained(&agent, Duration::from_secs(40));
    let status = agent.terminate();
    assert!(status.success(), "agent exit: {status:?}\n{}", agent.log());
    let (assigned, left) = outbox_state(&agent.dir.join("data"));
    let want = assigned as usize - left.len();
    let msgs = consume(&tansu.bootstrap(), want, Duration::from_secs(30));
    let f = check(&msgs, assigned, &left);
    print_figures(test, &f, extra);
    f
}

/// tansu, mosquitto, the agent forwarding with `kafka_extra`, and the simulator, once the
/// agent has delivered `delivered` records.
fn start_loaded(kafka_extra: &str, delivered: f64) -> (Tansu, Mosquitto, Agent, Proc) {
    let tansu = Tansu::start(&TOPICS, PARTITIONS);
    let mqtt = Mosquitto::start();
    let config = agent_config(&mqtt.url(), Some(&tansu.bootstrap()), "", kafka_extra);
    let agent = Agent::start(&config);
    let sim = start_sim(&mqtt.url());
    agent
        .wait_metrics(Duration::from_secs(30), |m| {
            metric(m, "edgewatch_kafka_delivered_total") >= delivered
        })
        .unwrap_or_else(|m| panic!("nothing delivered:\n{m}\n{}", agent.log()));
    (tansu, mqtt, agent, sim)
}

#[test]
fn records_produced_while_the_broker_is_down_all_arrive_in_order() {
    let _one = serial();
    let (mut tansu, _mqtt, agent, sim) =
        start_loaded("max_in_flight = 50\nreplay_records_per_s = 100", 50.0);

    tansu.kill();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let m = agent.metrics();
    let backlog = metric(&m, "edgewatch_outbox_records");
    assert!(
        backlog > 50.0,
        "records should pile up in the outbox while the broker is down:\n{m}"
    );
    tansu.restart();
    let outage = down.elapsed();
    let back = Instant::now();
    // Caught up: everything stored before the broker returned has been delivered (records
    // keep arriving meanwhile, so the outbox itself is rarely empty under load).
    let stored = metric(&agent.metrics(), "edgewatch_outbox_appended_total");
    agent
        .wait_metrics(Duration::from_secs(60), |m| {
            metric(m, "edgewatch_kafka_delivered_total") >= stored
        })
        .unwrap_or_else(|m| panic!("the backlog was not delivered:\n{m}\n{}", agent.log()));
    let catch_up = back.elapsed();
    let f = finish(
        agent,
        sim,
        &tansu,
        "broker_down",
        &format!(
            ", outage {:.1} s, backlog {backlog} records, caught up in {:.1} s",
            outage.as_secs_f64(),
            catch_up.as_secs_f64()
        ),
    );
    assert_eq!(f.reordered, 0);
    assert!(f.unique as f64 > backlog, "{f:?}");
}

#[test]
fn every_committed_record_arrives_through_twenty_sigkills() {
    let _one = serial();
    let tansu = Tansu::start(&TOPICS, PARTITIONS);
    let mqtt = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(&mqtt.url(), Some(&tansu.bootstrap()), "", "");
    let sim = start_sim(&mqtt.url());
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill schedule seed {seed}");
    let mut kills = Vec::new();
    for _ in 0..20 {
        let mut agent = Agent::start_in(&config, dir.path());
        // xorshift: a random moment 0.2 to 2.5 s after the agent came up.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = Duration::from_millis(200 + seed % 2300);
        std::thread::sleep(after);
        agent.proc.kill();
        kills.push(after.as_millis());
    }
    let agent = Agent::start_in(&config, dir.path());
    let f = finish(
        agent,
        sim,
        &tansu,
        "sigkill_x20",
        &format!(", kill moments (ms after start) {kills:?}"),
    );
    assert_eq!(f.reordered, 0);
    assert!(f.unique > 100, "too little load to mean anything: {f:?}");
}

#[test]
fn a_full_outbox_drops_summaries_first_keeps_alerts_and_counts_every_drop() {
    let _one = serial();
    let mqtt = Mosquitto::start();
    // No broker at all: everything stays in the outbox.
    let config = agent_config(
        &mqtt.url(),
        None,
        "max_bytes = 65536\nsummary_interval_s = 0.05",
        "",
    );
    let mut agent = Agent::start(&config);
    let mut sim = start_sim(&mqtt.url());
    let m = agent
        .wait_metrics(Duration::from_secs(60), |m| {
            metric(
                m,
                "edgewatch_outbox_dropped_total{kind=\"summary\",reason=\"cap_evicted\"",
            ) >= 200.0
                && metric(m, "edgewatch_outbox_appended_total{kind=\"alert\"") >= 1.0
        })
        .unwrap_or_else(|m| panic!("the cap was not reached with an alert stored:\n{m}"));
    let scored = metric(&m, "edgewatch_windows_total");
    sim.kill();
    std::thread::sleep(Duration::from_secs(2));
    // Quiescent but for heartbeats (every 2 s): the counters must add up exactly. The depth
    // gauges are published every 500 ms, the counters at once, so a heartbeat just appended
    // can leave the gauge one behind: take the first snapshot in which they agree, and fail
    // with the last one if none does within 5 s.
    let evicted_in = |m: &str| {
        metric(
            m,
            "edgewatch_outbox_dropped_total{kind=\"summary\",reason=\"cap_evicted\"",
        ) + metric(
            m,
            "edgewatch_outbox_dropped_total{kind=\"health\",reason=\"cap_evicted\"",
        )
    };
    let m = agent
        .wait_metrics(Duration::from_secs(5), |m| {
            metric(m, "edgewatch_outbox_records")
                == metric(m, "edgewatch_outbox_appended_total") - evicted_in(m)
        })
        .unwrap_or_else(|m| m);
    let appended = metric(&m, "edgewatch_outbox_appended_total");
    let evicted = evicted_in(&m);
    let records = metric(&m, "edgewatch_outbox_records");
    let alerts_in = metric(&m, "edgewatch_outbox_records_by_kind{kind=\"alert\"");
    println!(
        "FIGURES cap: appended {appended}, evicted {evicted}, refused {}, held {records} \
         records / {} bytes, alerts appended {} held {alerts_in}",
        metric(
            &m,
            "edgewatch_outbox_dropped_total{kind=\"summary\",reason=\"cap_refused\""
        ),
        metric(&m, "edgewatch_outbox_bytes"),
        metric(&m, "edgewatch_outbox_appended_total{kind=\"alert\"")
    );
    assert!(metric(&m, "edgewatch_outbox_bytes") <= 65536.0, "{m}");
    assert_eq!(
        records,
        appended - evicted,
        "held = appended - evicted\n{m}"
    );
    assert_eq!(
        metric(&m, "edgewatch_outbox_dropped_total{kind=\"alert\""),
        0.0,
        "no alert dropped while summaries could go\n{m}"
    );
    assert_eq!(
        alerts_in,
        metric(&m, "edgewatch_outbox_appended_total{kind=\"alert\""),
        "every alert is still held\n{m}"
    );
    assert!(scored > 0.0);
    let (status, body) = edgewatch_tests::http_get(agent.metrics_port, "/health").unwrap();
    assert_eq!(
        status, 200,
        "the agent keeps running with a full outbox: {body}"
    );
    assert!(agent.terminate().success(), "{}", agent.log());
    // What the metrics said is what is on disk.
    let (_, left) = outbox_state(&agent.dir.join("data"));
    assert!(
        left.len() as f64 >= records,
        "{} on disk, {records} reported",
        left.len()
    );
}

#[test]
fn a_corrupt_outbox_is_moved_aside_and_the_agent_starts_fresh() {
    let _one = serial();
    let mqtt = Mosquitto::start();
    let tansu = Tansu::start(&TOPICS, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("data/outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::write(outbox.join("conf"), b"\x00\xffnot a sled config at all").unwrap();
    std::fs::write(outbox.join("db"), vec![0xa5u8; 64 << 10]).unwrap();
    let config = agent_config(&mqtt.url(), Some(&tansu.bootstrap()), "", "");
    let mut agent = Agent::start_in(&config, dir.path());
    let sim = start_sim(&mqtt.url());
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            metric(m, "edgewatch_kafka_delivered_total") >= 20.0
        })
        .unwrap_or_else(|m| {
            panic!(
                "the agent did not start fresh and deliver:\n{m}\n{}",
                agent.log()
            )
        });
    assert_eq!(metric(&m, "edgewatch_outbox_moved_aside_total"), 1.0, "{m}");
    let log = agent.log();
    assert!(log.contains("moved aside"), "{log}");
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("outbox.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let kept = std::fs::read(dir.path().join("data").join(&aside[0]).join("db")).unwrap();
    assert_eq!(
        kept.len(),
        64 << 10,
        "the damaged files are kept for inspection"
    );

    // No crash loop: killed and restarted, it opens its new outbox cleanly.
    agent.proc.kill();
    let agent = Agent::start_in(&config, dir.path());
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            metric(m, "edgewatch_kafka_delivered_total") >= 5.0
        })
        .unwrap_or_else(|m| panic!("second start failed:\n{m}\n{}", agent.log()));
    assert_eq!(metric(&m, "edgewatch_outbox_moved_aside_total"), 0.0, "{m}");
    let f = finish(agent, sim, &tansu, "corrupt_outbox", "");
    assert_eq!(f.reordered, 0);
}

#[test]
fn records_in_the_producer_queue_survive_a_broker_restart() {
    let _one = serial();
    let (mut tansu, _mqtt, agent, sim) =
        start_loaded("max_in_flight = 2000\nreplay_records_per_s = 1000", 30.0);
    tansu.kill();
    let m = agent
        .wait_metrics(Duration::from_secs(20), |m| {
            metric(m, "edgewatch_kafka_in_flight") >= 40.0
        })
        .unwrap_or_else(|m| panic!("records did not queue in the producer:\n{m}"));
    let queued = metric(&m, "edgewatch_kafka_in_flight");
    std::thread::sleep(Duration::from_secs(3));
    tansu.restart();
    let f = finish(
        agent,
        sim,
        &tansu,
        "broker_restart_with_queue",
        &format!(", {queued} records in the producer queue when the broker came back"),
    );
    assert_eq!(f.reordered, 0);
}
