//! Harness for the end-to-end tests: real brokers and real processes on free loopback ports,
//! started and stopped by the tests themselves.
//!
//! A missing dependency is a failure with a message that names the setup command, never a skip.
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The command that installs everything the tests need and runs them.
pub const SETUP: &str = "scripts/test.sh";

/// A free TCP port on 127.0.0.1 (bound, then released; good enough for tests that start at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// The workspace's target directory, from the running test executable (`target/<profile>/deps/`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable lives in target/<profile>");
    // Test executables live in target/<profile>/deps, binaries (the benchmarks) beside the
    // agent in target/<profile>.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("target/<profile>/deps").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary built in the same profile as the tests.
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (`{SETUP}` does)",
        path.display()
    );
    path
}

/// Finds a program on PATH or in the sbin directories Debian installs daemons to.
pub fn find_program(name: &str, install_hint: &str) -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run `{SETUP}` (it runs `{install_hint}`)")
        })
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// A child process that is SIGKILLed when dropped, so a failing test leaves nothing running.
#[derive(Debug)]
pub struct Proc {
    /// The process.
    pub child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl Proc {
    /// Spawns `cmd`.
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child,
            name: name.into(),
        }
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit on its own, at most `timeout`; panics if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads the child's stdout line by line until one satisfies `pick`; returns what it picked.
    pub fn read_stdout_until<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let stdout = self.child.stdout.take().expect("stdout was piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return v;
                    }
                }
                Err(_) => panic!("{} printed no expected line within {timeout:?}", self.name),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `firmware-sim run` streaming `scenario` (a built-in name or a scenario file) to the MQTT
/// broker at `url` as `client_id`, in real time, stdout discarded; the caller adds a duration
/// and decides about stderr.
pub fn sim_mqtt_command(url: &str, client_id: &str, scenario: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(workspace_bin("firmware-sim"));
    cmd.args(["run", "--output", "mqtt", "--mqtt-url", url])
        .args(["--mqtt-client-id", client_id, "--scenario"])
        .arg(scenario)
        .stdout(Stdio::null());
    cmd
}

/// Starts `firmware-sim` streaming the healthy scenario to the MQTT broker at `url` for
/// `duration_s` seconds, in real time; its stderr (with the closing summary) is piped.
pub fn sim_to_mqtt(url: &str, client_id: &str, duration_s: u32) -> Proc {
    Proc::spawn(
        "firmware-sim",
        sim_mqtt_command(url, client_id, "healthy")
            .args(["--duration-s", &duration_s.to_string()])
            .stderr(Stdio::piped()),
    )
}

/// A mosquitto broker on a free loopback port, with its own config and persistence directory.
#[derive(Debug)]
pub struct Mosquitto {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A second listener with TLS and client certificates, when started with [`Mosquitto::start_tls`].
    pub tls: Option<MqttTls>,
    dir: tempfile::TempDir,
    proc: Option<Proc>,
    max_queued_messages: u32,
}

/// The TLS listener of a [`Mosquitto`]: its port and the PEM files a client needs.
#[derive(Debug, Clone)]
pub struct MqttTls {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The CA that signed the broker's and the client's certificates.
    pub ca_file: PathBuf,
    /// A client certificate the broker accepts, and its key.
    pub cert_file: PathBuf,
    /// The client certificate's key.
    pub key_file: PathBuf,
    /// A CA that signed nothing here: a client trusting only it must refuse the broker.
    pub other_ca_file: PathBuf,
}

/// Makes a CA, a server certificate for `localhost`/127.0.0.1 (`server.pem`, `server.key`), a
/// client certificate and an unrelated CA in `dir` with the `openssl` command.
fn make_certificates(dir: &Path, port: u16) -> MqttTls {
    let openssl = find_program("openssl", "apt-get install openssl");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca = |name: &str| {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    };
    ca("test-ca");
    ca("other-ca");
    let leaf = |name: &str, ext: &str| {
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write extensions");
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "test-ca.pem",
            "-CAkey",
            "test-ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    };
    leaf(
        "server",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    leaf("client", "extendedKeyUsage=clientAuth\n");
    // mosquitto drops to its own user when started as root: it must read these.
    use std::os::unix::fs::PermissionsExt;
    for f in std::fs::read_dir(dir).expect("list the certificates") {
        let f = f.expect("entry").path();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    MqttTls {
        port,
        ca_file: dir.join("test-ca.pem"),
        cert_file: dir.join("client.pem"),
        key_file: dir.join("client.key"),
        other_ca_file: dir.join("other-ca.pem"),
    }
}

impl Mosquitto {
    /// `max_queued_messages` of [`Mosquitto::start`] and [`Mosquitto::start_tls`]: more than any
    /// test queues for an absent client.
    const QUEUE: u32 = 100_000;

    /// Starts a broker with persistence on (so a restart keeps persistent sessions and queued
    /// QoS 1 messages).
    pub fn start() -> Self {
        Self::start_with(false, Self::QUEUE)
    }

    /// Like [`Mosquitto::start`], holding at most `limit` QoS 1 messages per offline client
    /// (`max_queued_messages`; mosquitto's own default is 1000).
    pub fn start_with_queue_limit(limit: u32) -> Self {
        Self::start_with(false, limit)
    }

    /// Starts a broker with the plain listener and a second one that speaks only TLS and
    /// requires a client certificate signed by the test CA.
    pub fn start_tls() -> Self {
        Self::start_with(true, Self::QUEUE)
    }

    fn start_with(tls: bool, max_queued_messages: u32) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // mosquitto started as root drops to its own user: let it write its persistence file.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod the broker's directory");
        let tls = tls.then(|| make_certificates(dir.path(), free_port()));
        let mut m = Self {
            port: free_port(),
            tls,
            dir,
            proc: None,
            max_queued_messages,
        };
        m.launch();
        m
    }

    fn launch(&mut self) {
        let bin = find_program("mosquitto", "apt-get install mosquitto");
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {dir}/\nautosave_interval 1\nmax_queued_messages {queued}\n\
                 max_inflight_messages 100\n",
                port = self.port,
                queued = self.max_queued_messages,
                dir = self.dir.path().display()
            ),
        )
        .expect("write mosquitto.conf");
        if let Some(tls) = &self.tls {
            let d = self.dir.path().display();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&conf)
                .expect("open mosquitto.conf");
            use std::io::Write;
            write!(
                f,
                "listener {port} 127.0.0.1\ncafile {d}/test-ca.pem\ncertfile {d}/server.pem\n\
                 keyfile {d}/server.key\nrequire_certificate true\n",
                port = tls.port
            )
            .expect("write the TLS listener");
        }
        let proc = Proc::spawn(
            "mosquitto",
            Command::new(bin)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        self.proc = Some(proc);
        for port in std::iter::once(self.port).chain(self.tls.as_ref().map(|t| t.port)) {
            assert!(
                wait_for_port(port, Duration::from_secs(10)),
                "mosquitto did not listen on port {port}"
            );
        }
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops the broker gracefully (SIGTERM, so it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let pid = p.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            p.wait_exit(Duration::from_secs(10));
        }
    }

    /// Starts the broker again on the same port and persistence directory.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

/// Fetches `http://127.0.0.1:PORT{path}` with a plain HTTP/1.1 GET; returns status and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Sum of every sample of a metric in Prometheus text whose name and labels start with
/// `prefix` (e.g. `edgewatch_frames_received_total{source="mqtt"`). 0 when absent.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            if prefix.contains('{') {
                l.starts_with(prefix)
            } else {
                l.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            }
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .fold(0.0, |sum, v| sum + v)
}

/// A running `agent` process with its own config file and data directory.
#[derive(Debug)]
pub struct Agent {
    /// The process.
    pub proc: Proc,
    /// Port of its metrics endpoint.
    pub metrics_port: u16,
    /// Its directory (config, log, `data/`).
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Agent {
    /// Writes `config` (which must contain `{metrics}` and `{data_dir}` placeholders) and
    /// starts `agent run` in a new temp directory.
    pub fn start(config: &str) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut agent = Self::start_in(config, temp.path());
        agent._temp = Some(temp);
        agent
    }

    /// Like [`Agent::start`] in an existing directory, so a restarted agent finds its data;
    /// the log is appended to.
    pub fn start_in(config: &str, dir: &Path) -> Self {
        let metrics_port = free_port();
        let text = config
            .replace("{metrics}", &format!("127.0.0.1:{metrics_port}"))
            .replace("{data_dir}", &dir.join("data").display().to_string());
        let path = dir.join("agent.toml");
        std::fs::write(&path, text).expect("write agent.toml");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .expect("open agent.log");
        let proc = Proc::spawn(
            "agent",
            Command::new(workspace_bin("agent"))
                .args(["run", "--config"])
                .arg(&path)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(log),
        );
        assert!(
            wait_for_port(metrics_port, Duration::from_secs(20)),
            "the agent's metrics endpoint did not come up; its log:\n{}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        );
        Self {
            proc,
            metrics_port,
            dir: dir.to_path_buf(),
            _temp: None,
        }
    }

    /// What the agent logged so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// The agent's current metrics text.
    pub fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// Polls the metrics every 100 ms until `ok` holds, at most `timeout`; returns the last text.
    pub fn wait_metrics(
        &self,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        self.wait_metrics_every(Duration::from_millis(100), timeout, ok)
    }

    /// [`Agent::wait_metrics`] polling every `every` (timings that need a finer grain).
    pub fn wait_metrics_every(
        &self,
        every: Duration,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.metrics();
            if ok(&text) {
                return Ok(text);
            }
            if Instant::now() > deadline {
                return Err(text);
            }
            std::thread::sleep(every);
        }
    }

    /// Sends SIGHUP (reload) and checks it was delivered.
    pub fn hangup(&self) {
        let pid = self.proc.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .expect("run kill")
                .success(),
            "SIGHUP not delivered"
        );
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.proc.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.proc.wait_exit(Duration::from_secs(20))
    }
}

/// A pty pair with both fds close-on-exec. serialport's `pair()` opens them without
/// `O_CLOEXEC`, so a child process would inherit the master and the device could never go away.
pub fn pty_pair() -> (serialport::TTYPort, serialport::TTYPort) {
    use nix::fcntl::{F_SETFD, FdFlag, fcntl};
    use std::os::fd::AsRawFd;
    let (master, slave) = serialport::TTYPort::pair().expect("create a pty pair");
    for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
        fcntl(fd, F_SETFD(FdFlag::FD_CLOEXEC)).expect("set FD_CLOEXEC");
    }
    (master, slave)
}

impl Proc {
    /// Everything the child wrote to its piped stderr (call after it exited).
    pub fn stderr_text(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        text
    }
}

/// The JSON summary firmware-sim prints as its last stderr line.
pub fn sim_summary(stderr: &str) -> serde_json::Value {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary on stderr:\n{stderr}"));
    serde_json::from_str(line).expect("summary is JSON")
}

/// How to install the test Kafka broker (`scripts/test.sh` does it).
pub const TANSU_INSTALL: &str = "cargo install tansu --features dynostore,libsql";

/// The `tansu` binary: on PATH or in cargo's bin directory. Panics (a test failure, never a
/// skip) with the install command when it is missing.
pub fn tansu_program() -> PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin"));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_bin)
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`tansu` (the test Kafka broker) is not installed: install with: {TANSU_INSTALL} ({SETUP} does this)")
        })
}

/// A tansu Kafka broker on a free loopback port with sqlite storage in its own temp directory,
/// so it can be killed and restarted with its data.
#[derive(Debug)]
pub struct Tansu {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    proc: Option<Proc>,
}

impl Tansu {
    /// Starts a broker and creates `topics` with `partitions` partitions each.
    pub fn start(topics: &[&str], partitions: u32) -> Self {
        let mut t = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            proc: None,
        };
        t.launch();
        for topic in topics {
            t.create_topic(topic, partitions);
        }
        t
    }

    fn launch(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("open tansu.log");
        // A relative sqlite path, resolved in the broker's working directory.
        let proc = Proc::spawn(
            "tansu",
            Command::new(tansu_program())
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "sqlite://tansu.db"])
                .current_dir(self.dir.path())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log),
        );
        self.proc = Some(proc);
        assert!(
            wait_for_port(self.port, Duration::from_secs(20)),
            "tansu did not listen on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    /// Creates a topic.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_program())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .expect("run tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the broker.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// The broker's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }
}

/// Every message of partition 0 of `topic` on `bootstrap` so far, in order, as JSON: read from
/// the beginning (no committed offsets) until nothing new has come for 1.5 s.
pub fn topic_messages(bootstrap: &str, topic: &str) -> Vec<serde_json::Value> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "edgewatch-tests-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("kafka consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut idle = Instant::now();
    while idle.elapsed() < Duration::from_millis(1500) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(serde_json::from_slice(m.payload().unwrap_or_default()).expect("JSON"));
            idle = Instant::now();
        }
    }
    out
}
