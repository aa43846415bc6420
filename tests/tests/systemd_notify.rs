//! The agent as a `Type=notify` systemd service: a real `agent run` process sends its
//! notifications to a Unix datagram socket the test binds as `NOTIFY_SOCKET`, as systemd would.
//! READY arrives once the pipeline runs, watchdog pings keep arriving at half `WATCHDOG_USEC`
//! while it is healthy, they stop when the pipeline stalls (the documented test-only fault hook
//! `EDGEWATCH_FAULT_STALL_AFTER_MS` freezes the assembler), and SIGTERM sends STOPPING.

use edgewatch_tests::{Proc, free_port, workspace_bin};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Ping interval asked for: systemd's `WatchdogSec=` is WATCHDOG_USEC; the agent pings at half.
const WATCHDOG_USEC: u64 = 400_000;

struct Notified {
    proc: Proc,
    socket: UnixDatagram,
    started: Instant,
    dir: tempfile::TempDir,
}

impl Notified {
    fn start(extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&sock_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // An MQTT source pointing at a closed port: the source keeps reconnecting, the pipeline
        // (assembler ticks, feature thread) runs regardless, which is what health watches.
        let config = format!(
            "[agent]\ndata_dir = \"{}\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n\n\
             [[asset]]\nid = \"pump-1\"\nshaft_rpm = 1480\nbearing = \"skf-6205\"\nsensors = [1]\n\n\
             [metrics]\nlisten = \"127.0.0.1:{}\"\n",
            dir.path().join("data").display(),
            free_port(),
            free_port()
        );
        let config_path = dir.path().join("agent.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let mut cmd = Command::new(workspace_bin("agent"));
        cmd.args(["run", "--config"])
            .arg(&config_path)
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let proc = Proc::spawn("agent", &mut cmd);
        Self {
            proc,
            socket,
            started,
            dir,
        }
    }

    /// Notification lines received until `until` (since start), each with its arrival time.
    fn collect(&self, until: Duration) -> Vec<(Duration, String)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while self.started.elapsed() < until {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let at = self.started.elapsed();
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    out.push((at, line.to_string()));
                }
            }
        }
        out
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

fn pings(lines: &[(Duration, String)]) -> Vec<Duration> {
    lines
        .iter()
        .filter(|(_, l)| l == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn ready_then_regular_watchdog_pings_then_stopping_on_sigterm() {
    let mut agent = Notified::start(&[]);
    let lines = agent.collect(Duration::from_secs(4));
    let log = agent.log();
    let first = lines.first().map(|(_, l)| l.as_str());
    assert_eq!(
        first,
        Some("READY=1"),
        "first notification; got {lines:?}\n{log}"
    );
    assert!(
        lines.iter().any(|(_, l)| l.starts_with("STATUS=running")),
        "a STATUS line; got {lines:?}"
    );
    let p = pings(&lines);
    let ready_at = lines[0].0;
    // 4 s at one ping per 200 ms, minus start-up: at least 10 (15+ expected).
    assert!(
        p.len() >= 10,
        "only {} pings in 4 s: {lines:?}\n{log}",
        p.len()
    );
    let max_gap = p.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    println!(
        "READY after {ready_at:?}; {} pings, longest gap {max_gap:?} (WATCHDOG_USEC {} ms)",
        p.len(),
        WATCHDOG_USEC / 1000
    );
    assert!(
        max_gap < Duration::from_micros(WATCHDOG_USEC),
        "a gap of {max_gap:?} between pings would trip the watchdog"
    );

    let pid = agent.proc.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = agent.proc.wait_exit(Duration::from_secs(20));
    let mut buf = [0u8; 4096];
    let mut rest = String::new();
    while let Ok(n) = agent.socket.recv(&mut buf) {
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
        rest.push('\n');
    }
    assert!(
        rest.lines().any(|l| l == "STOPPING=1"),
        "no STOPPING=1 after SIGTERM; got {rest:?}\n{}",
        agent.log()
    );
    assert!(status.success(), "exit {status:?}\n{}", agent.log());
}

#[test]
fn a_stalled_pipeline_stops_the_watchdog_pings() {
    const STALL_MS: u64 = 1_500;
    let agent = Notified::start(&[("EDGEWATCH_FAULT_STALL_AFTER_MS", "1500")]);
    // Health calls the pipeline stalled 2 s (health::STALL_AFTER_MS) after the assembler's last
    // tick, i.e. at ~3.5 s; watch until 7 s so the silence after it spans several intervals.
    let lines = agent.collect(Duration::from_secs(7));
    let log = agent.log();
    assert_eq!(
        lines.first().map(|(_, l)| l.as_str()),
        Some("READY=1"),
        "{lines:?}\n{log}"
    );
    let stalled_at = lines
        .iter()
        .find(|(_, l)| l.starts_with("STATUS=pipeline stalled"))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("no stalled STATUS: {lines:?}\n{log}"));
    let p = pings(&lines);
    let before = p.iter().filter(|t| **t < stalled_at).count();
    let after: Vec<_> = p.iter().filter(|t| **t > stalled_at).collect();
    println!(
        "stall injected at {STALL_MS} ms; {before} pings before, stalled STATUS at {stalled_at:?}, \
         {} pings in the {:?} after",
        after.len(),
        Duration::from_secs(7) - stalled_at
    );
    assert!(before >= 5, "pings before the stall: {before}; {lines:?}");
    assert!(
        stalled_at >= Duration::from_millis(STALL_MS),
        "stalled reported before the stall began: {stalled_at:?}"
    );
    assert!(
        Duration::from_secs(7) - stalled_at >= Duration::from_millis(2_000),
        "too little time observed after the stall: {lines:?}"
    );
    assert!(
        after.is_empty(),
        "pings kept coming after the stall: {after:?}\n{log}"
    );
    assert!(log.contains("watchdog pings stopped"), "{log}");
}
