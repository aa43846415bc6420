//! End-to-end benchmark: firmware-sim → mosquitto → agent → tansu with K sensors, then the
//! same load through the glue a user would otherwise script (mosquitto_sub piped into a
//! librdkafka producer, no analytics). Between them: a broker outage and its backlog's drain,
//! and the agent SIGKILLed and restarted (time to its first scored window again). Prints what
//! docs/benchmarks.md reports.
//!
//! Run it with `bench/e2e.sh` (builds in release, installs the glue's Python client). Options:
//! `--sensors K` (32), `--seconds S` steady-state measurement (30), `--outage-s D` broker
//! outage (60), `--summary-interval-s I` agent summaries per sensor (5), `--no-glue`.
//!
//! Process figures come from /proc: CPU from utime+stime, RSS from VmRSS/VmHWM, disk writes
//! from `write_bytes` in /proc/PID/io (bytes that reached the block layer).

use edgewatch_tests::{Agent, Mosquitto, Proc, Tansu, metric, sim_mqtt_command};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOPICS: [&str; 4] = [
    "edgewatch.alerts",
    "edgewatch.summaries",
    "edgewatch.health",
    "glue.frames",
];

struct Args {
    sensors: usize,
    seconds: u64,
    outage_s: u64,
    summary_interval_s: f64,
    glue: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        sensors: 32,
        seconds: 30,
        outage_s: 60,
        summary_interval_s: 5.0,
        glue: std::env::var("EDGEWATCH_GLUE_PYTHON").ok(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        match flag.as_str() {
            "--sensors" => a.sensors = value("--sensors") as usize,
            "--seconds" => a.seconds = value("--seconds") as u64,
            "--outage-s" => a.outage_s = value("--outage-s") as u64,
            "--summary-interval-s" => a.summary_interval_s = value("--summary-interval-s"),
            "--no-glue" => a.glue = None,
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// A scenario of `k` pumps and fans at 12.8 kHz, one axis, 40 ms frames; every fourth one has
/// a bearing defect so alerts flow too.
fn scenario(k: usize) -> String {
    let mut s = String::from(
        "name = \"bench\"\nseed = 7\nsample_rate_hz = 12800\nblock_size = 512\naxes = 1\n\
         temperature_interval_ms = 1000\nstatus_interval_ms = 10000\nfull_scale_g = 16.0\n",
    );
    for i in 0..k {
        let rpm = 1200.0 + (i as f64 * 97.0) % 1800.0;
        let faults = if i % 4 == 3 {
            "faults = { outer_race = 0.6 }\n"
        } else {
            ""
        };
        s += &format!(
            "[[asset]]\nid = \"m-{i:02}\"\nsensor_id = {}\n[asset.machine]\nrpm = {rpm}\n\
             bearing = \"skf-6205\"\nresonance_hz = {}\ndamping_ratio = 0.05\nnoise_g = 0.02\n\
             shaft_harmonics_g = [0.02, 0.008, 0.004]\nslip_fraction = 0.015\n\
             [[asset.phase]]\nat_s = 0.0\nload = 0.8\n{faults}",
            i + 1,
            2500 + (i % 5) * 300,
        );
    }
    s
}

/// Agent configuration for the same machines (SKF 6205 geometry).
fn agent_config(k: usize, mqtt: &str, kafka: &str, summary_interval_s: f64) -> String {
    let mut s = format!(
        "[agent]\nid = \"gw-bench\"\ndata_dir = \"{{data_dir}}\"\n\
         [metrics]\nlisten = \"{{metrics}}\"\n\
         [mqtt]\nurl = \"{mqtt}\"\nclient_id = \"agent-bench\"\nqos = 1\n\
         [outbox]\nsummary_interval_s = {summary_interval_s}\nheartbeat_interval_s = 10\n\
         [kafka]\nbrokers = [\"{kafka}\"]\n"
    );
    for i in 0..k {
        let rpm = 1200.0 + (i as f64 * 97.0) % 1800.0;
        s += &format!(
            "[[asset]]\nid = \"m-{i:02}\"\nshaft_rpm = {rpm}\nbearing = {{ rolling_elements = 9, \
             element_diameter_mm = 7.94, pitch_diameter_mm = 39.04, contact_angle_deg = 0.0 }}\n\
             sensors = [{}]\n",
            i + 1
        );
    }
    s
}

/// CPU seconds (user + system) of a process.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / clock_ticks()
}

/// Clock ticks per second (`getconf CLK_TCK`), asked once.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A `/proc/PID/status` field in kB.
fn status_kb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// `write_bytes` of /proc/PID/io.
fn disk_written(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The upper bound of the histogram bucket holding quantile `q` of the observations made
/// between two scrapes.
fn bucket_quantile(m0: &str, m1: &str, name: &str, q: f64) -> f64 {
    let buckets = |m: &str| -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        m.lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .filter_map(|rest| {
                let (le, count) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, count.trim().parse().ok()?))
            })
            .collect()
    };
    let (b0, b1) = (buckets(m0), buckets(m1));
    let count =
        |b: &[(f64, f64)], le: f64| b.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, c)| *c);
    let total = b1.last().map_or(0.0, |(le, c)| c - count(&b0, *le));
    b1.iter()
        .find(|(le, c)| total > 0.0 && c - count(&b0, *le) >= q * total)
        .map_or(f64::NAN, |(le, _)| *le)
}

fn mb(kb: f64) -> f64 {
    kb / 1024.0
}

fn main() {
    let a = args();
    let topics: Vec<&str> = TOPICS.to_vec();
    let mut tansu = Tansu::start(&topics, 3);
    let mqtt = Mosquitto::start();
    let work = tempfile::tempdir().expect("temp dir");
    let scenario_path = work.path().join("bench.toml");
    std::fs::write(&scenario_path, scenario(a.sensors)).expect("write scenario");
    let sim = |id: &str| {
        Proc::spawn(
            "firmware-sim",
            sim_mqtt_command(&mqtt.url(), id, &scenario_path).stderr(Stdio::null()),
        )
    };
    println!(
        "e2e benchmark: {} sensors at 12.8 kHz, 512-sample frames (25 frames/s each), \
         summaries every {} s; machine: {} cores",
        a.sensors,
        a.summary_interval_s,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // The simulator streams before the agent starts, as on a gateway that reboots.
    let mut sensors = sim("sim-bench");
    std::thread::sleep(Duration::from_secs(2));
    let config = agent_config(
        a.sensors,
        &mqtt.url(),
        &tansu.bootstrap(),
        a.summary_interval_s,
    );
    let started = Instant::now();
    let mut agent = Agent::start(&config);
    let first = first_window(&agent, started);
    let pid = agent.proc.child.id();
    std::thread::sleep(Duration::from_secs(5));

    // Steady state.
    let m0 = agent.metrics();
    let log_len = || std::fs::metadata(agent.dir.join("agent.log")).map_or(0.0, |m| m.len() as f64);
    let (cpu0, io0, log0, t0) = (cpu_s(pid), disk_written(pid), log_len(), Instant::now());
    std::thread::sleep(Duration::from_secs(a.seconds));
    let m1 = agent.metrics();
    let (cpu1, io1, log1, dt) = (
        cpu_s(pid),
        disk_written(pid),
        log_len(),
        t0.elapsed().as_secs_f64(),
    );
    let frames = metric(&m1, "edgewatch_frames_received_total")
        - metric(&m0, "edgewatch_frames_received_total");
    let windows = metric(&m1, "edgewatch_windows_total") - metric(&m0, "edgewatch_windows_total");
    let fwd = metric(&m1, "edgewatch_kafka_delivered_bytes_total")
        - metric(&m0, "edgewatch_kafka_delivered_bytes_total");
    let recs = metric(&m1, "edgewatch_kafka_delivered_total")
        - metric(&m0, "edgewatch_kafka_delivered_total");
    let lost = metric(&m1, "edgewatch_frames_lost_total");
    println!("\n== agent, steady state over {dt:.1} s");
    println!(
        "frames/s            {:.0} (frames lost so far: {lost})",
        frames / dt
    );
    println!("windows/s           {:.1}", windows / dt);
    println!(
        "CPU                 {:.1} % of one core",
        100.0 * (cpu1 - cpu0) / dt
    );
    println!(
        "RSS                 {:.1} MB now, {:.1} MB peak ({:.1} MB anonymous: heap and stacks; \
         {:.1} MB file: the mapped binary and libraries)",
        mb(status_kb(pid, "VmRSS:")),
        mb(status_kb(pid, "VmHWM:")),
        mb(status_kb(pid, "RssAnon:")),
        mb(status_kb(pid, "RssFile:"))
    );
    println!(
        "forwarded           {recs:.0} records, {fwd:.0} bytes ({:.0} B/s)",
        fwd / dt
    );
    println!(
        "disk written        {:.0} bytes = {:.2} bytes per byte forwarded (the log: {:.0} bytes)",
        io1 - io0,
        if fwd > 0.0 {
            (io1 - io0) / fwd
        } else {
            f64::NAN
        },
        log1 - log0
    );
    let age = "edgewatch_kafka_record_age_seconds";
    println!(
        "record age at ack   p50 <= {:.0} ms, p99 <= {:.0} ms (record created -> broker ack; \
         histogram bucket bounds)",
        1e3 * bucket_quantile(&m0, &m1, age, 0.5),
        1e3 * bucket_quantile(&m0, &m1, age, 0.99)
    );
    println!(
        "hand-over to ack    p50 <= {:.0} ms, p99 <= {:.0} ms (producer send -> broker ack)",
        1e3 * bucket_quantile(&m0, &m1, "edgewatch_kafka_delivery_seconds", 0.5),
        1e3 * bucket_quantile(&m0, &m1, "edgewatch_kafka_delivery_seconds", 0.99)
    );
    println!(
        "window latency      p50 <= {:.0} ms, p99 <= {:.0} ms (last frame of a window -> scored; histogram bucket bounds)",
        1e3 * bucket_quantile(&m0, &m1, "edgewatch_window_latency_seconds", 0.5),
        1e3 * bucket_quantile(&m0, &m1, "edgewatch_window_latency_seconds", 0.99)
    );
    println!(
        "first scored window {:.0} ms after the agent process started",
        first.as_secs_f64() * 1e3
    );

    // Outage and backlog drain.
    let before = agent.metrics();
    let delivered_at_kill = metric(&before, "edgewatch_kafka_delivered_total");
    tansu.kill();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(a.outage_s));
    let m = agent.metrics();
    let stored = metric(&m, "edgewatch_outbox_appended_total");
    let backlog = metric(&m, "edgewatch_outbox_records");
    tansu.restart();
    let outage = down.elapsed().as_secs_f64();
    let back = Instant::now();
    agent
        .wait_metrics(Duration::from_secs(300), |m| {
            metric(m, "edgewatch_kafka_delivered_total") >= stored
        })
        .unwrap_or_else(|m| panic!("the backlog did not drain:\n{m}"));
    let drain = back.elapsed().as_secs_f64();
    let built = stored - delivered_at_kill;
    println!("\n== broker outage of {outage:.1} s");
    println!(
        "backlog             {built:.0} records built up ({backlog:.0} in the outbox) at {:.1} records/s",
        built / outage
    );
    println!(
        "drained in          {drain:.2} s after the broker returned = {:.1} records/s; \
         {:.1}x faster than it built up",
        built / drain,
        outage / drain
    );
    println!(
        "peak RSS            {:.1} MB over the whole run",
        mb(status_kb(pid, "VmHWM:"))
    );

    // A crash and systemd's restart: SIGKILL, RestartSec (5 s), start again on the same data
    // directory. The persistent MQTT session has queued the frames sent meanwhile.
    agent.proc.kill();
    std::thread::sleep(Duration::from_secs(5));
    let restarted_at = Instant::now();
    let mut restarted = Agent::start_in(&config, &agent.dir);
    let first_after_restart = first_window(&restarted, restarted_at);
    println!("\n== agent killed (SIGKILL) and restarted 5 s later");
    println!(
        "first scored window {:.0} ms after the new process started (windows filled from the \
         frames the broker queued for the persistent session)",
        first_after_restart.as_secs_f64() * 1e3
    );
    let status = restarted.terminate();
    assert!(
        status.success(),
        "agent exit {status:?}\n{}",
        restarted.log()
    );

    if let Some(python) = a.glue {
        glue(&python, &mqtt, &tansu, a.seconds, work.path());
    }
    sensors.kill();
}

/// Time from `started` until `agent` has scored a window, polled every 5 ms.
fn first_window(agent: &Agent, started: Instant) -> Duration {
    agent
        .wait_metrics_every(Duration::from_millis(5), Duration::from_secs(30), |m| {
            metric(m, "edgewatch_windows_total") >= 1.0
        })
        .map(|_| started.elapsed())
        .unwrap_or_else(|m| panic!("no window scored:\n{m}\n{}", agent.log()))
}

/// mosquitto_sub | Python confluent-kafka producer: raw frames to Kafka, no analytics.
fn glue(python: &str, mqtt: &Mosquitto, tansu: &Tansu, seconds: u64, dir: &Path) {
    let port = mqtt.url().rsplit(':').next().unwrap_or("1883").to_string();
    let progress = dir.join("glue.progress");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/python/glue.py");
    let cmd = format!(
        "exec mosquitto_sub -h 127.0.0.1 -p {port} -q 1 -t 'sensors/#' -F '%t %x' | \
         exec {python} {} {} glue.frames {}",
        script.display(),
        tansu.bootstrap(),
        progress.display()
    );
    let mut pipe = Proc::spawn(
        "glue",
        Command::new("sh")
            .args(["-c", &cmd])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_secs(5));
    let pids = pids_of_children(pipe.child.id());
    let read = || {
        std::fs::read_to_string(&progress)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|x| x.parse::<f64>().ok())
            .collect::<Vec<_>>()
    };
    let cpu = |p: &[u32]| p.iter().map(|&p| cpu_s(p)).sum::<f64>();
    let (c0, p0, t0) = (cpu(&pids), read(), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (c1, p1, dt) = (cpu(&pids), read(), t0.elapsed().as_secs_f64());
    let rss: f64 = pids.iter().map(|&p| status_kb(p, "VmRSS:")).sum();
    let hwm: f64 = pids.iter().map(|&p| status_kb(p, "VmHWM:")).sum();
    let io: f64 = pids.iter().map(|&p| disk_written(p)).sum();
    let (msgs, bytes) = match (p0.as_slice(), p1.as_slice()) {
        ([m0, b0, ..], [m1, b1, ..]) => (m1 - m0, b1 - b0),
        _ => (f64::NAN, f64::NAN),
    };
    println!("\n== glue: mosquitto_sub | python confluent-kafka (raw frames, no analytics)");
    println!(
        "frames/s            {:.0} acknowledged ({:.0} bytes/s forwarded)",
        msgs / dt,
        bytes / dt
    );
    println!(
        "CPU                 {:.1} % of one core (both processes)",
        100.0 * (c1 - c0) / dt
    );
    println!(
        "RSS                 {:.1} MB now, {:.1} MB peak (sum of both)",
        mb(rss),
        mb(hwm)
    );
    println!("disk written        {io:.0} bytes (total)");
    pipe.kill();
    for p in pids {
        // Some have exited with the pipe already.
        let _ = Command::new("kill")
            .arg(p.to_string())
            .stderr(Stdio::null())
            .status();
    }
}

/// The pipeline's processes: children of the shell (or the shell itself after `exec`).
fn pids_of_children(shell: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &shell.to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let mut pids: Vec<u32> = out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    pids.push(shell);
    pids
}
