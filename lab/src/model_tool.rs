//! `lab model`: signing keys, model packages and the lifecycle's two Kafka topics.
//!
//! - `keygen`: an Ed25519 key pair (`NAME.key`, mode 0600, and `NAME.pub`).
//! - `package`: a package of a model folder (manifest, model files, golden cases, lineage,
//!   targets), signed when a key is given.
//! - `sign`: adds a signature to a package.
//! - `verify`: the agent's own checks (signature by a trusted key, then the model against this
//!   build's features and windows, golden outputs reproduced in tract).
//! - `publish`: puts a package on the models topic (compacted, keyed by model version).
//! - `status`: the agents' latest lifecycle events from the model-status topic.
//!
//! The package format and every check are the agent's ([`edgewatch_agent::analyze::lifecycle::package`]):
//! what this tool accepts is what a gateway accepts.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use edgewatch_agent::analyze::lifecycle::package::{
    self, Envelope, Lineage, MAX_PACKAGE_BYTES, PackageInput, Refusal, Targets,
};
use edgewatch_agent::analyze::model::Variant;
use edgewatch_agent::forward::config::KafkaConfig;

/// `lab model` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ModelCmd {
    /// Make a signing key pair: DIR/NAME.key (secret, mode 0600: keep it off the gateways) and
    /// DIR/NAME.pub (for `[model] trusted_keys`). Refuses to overwrite either.
    Keygen {
        /// Folder to write the two files to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The keys' file name without extension; also the public key's comment.
        #[arg(long)]
        name: String,
    },
    /// Build a model package from a manifest and the files beside it; sign it with --key.
    Package(PackageArgs),
    /// Add a signature to a package (another key's signature is kept).
    Sign {
        /// The secret key file (`lab model keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The package.
        #[arg(long)]
        package: PathBuf,
        /// Where to write the signed package (default: the package itself).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a package as an agent would: size, signature by a trusted key, then the model
    /// against this build's features and windows with its golden outputs. Exit status 1 with
    /// the refusal's reason when an agent would refuse it.
    Verify(VerifyArgs),
    /// Put a package on the models topic (keyed by its model version), creating the topic
    /// (compacted, one partition) if it does not exist.
    Publish {
        /// The package.
        #[arg(long)]
        package: PathBuf,
        /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].
        #[arg(long)]
        brokers: String,
        /// The models topic (the agent's `[kafka] models_topic`).
        #[arg(long, default_value_t = default_topic(KafkaConfig::default_models_topic()))]
        topic: String,
        /// Replication factor if the topic is created.
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Further librdkafka settings, KEY=VALUE (e.g. security.protocol=ssl); repeatable.
        #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
        kafka_options: Vec<String>,
    },
    /// Read the model-status topic from its beginning and print each agent's latest lifecycle
    /// event (or, with --all, every event).
    Status {
        /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].
        #[arg(long)]
        brokers: String,
        /// The model-status topic (the agent's `[kafka] model_status_topic`).
        #[arg(long, default_value_t = default_topic(KafkaConfig::default_model_status_topic()))]
        topic: String,
        /// Stop reading after this many seconds without a message.
        #[arg(long, default_value_t = 5.0)]
        timeout_s: f64,
        /// Print every event in the topic's order instead of each agent's latest.
        #[arg(long)]
        all: bool,
        /// Further librdkafka settings, KEY=VALUE (e.g. security.protocol=ssl); repeatable.
        #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
        kafka_options: Vec<String>,
    },
}

/// The agent's default full name of a topic: the default prefix and `name`.
fn default_topic(name: String) -> String {
    format!("{}{name}", KafkaConfig::default_topic_prefix())
}

/// `lab model package`.
#[derive(Debug, Clone, clap::Args)]
pub struct PackageArgs {
    /// The model's manifest.json (its model files and golden.json beside it).
    #[arg(long)]
    pub manifest: PathBuf,
    /// The golden cases (default: golden.json beside the manifest).
    #[arg(long)]
    pub golden: Option<PathBuf>,
    /// The model version (default: the manifest's).
    #[arg(long)]
    pub version: Option<String>,
    /// Lineage: the training data set's id. Required unless the manifest has a lineage; the
    /// other lineage options need it.
    #[arg(long)]
    pub dataset_id: Option<String>,
    /// Lineage: the training set's size in windows (default: the manifest's
    /// training.train_windows).
    #[arg(long, requires = "dataset_id")]
    pub dataset_size: Option<u64>,
    /// Lineage: the code revision the model was trained with (default: `git rev-parse HEAD`,
    /// else "unknown").
    #[arg(long, requires = "dataset_id")]
    pub code_revision: Option<String>,
    /// Lineage: the model version this one replaces or was derived from.
    #[arg(long, requires = "dataset_id")]
    pub parent: Option<String>,
    /// Targets: agent ids, comma-separated (none and no labels: every agent).
    #[arg(long, value_delimiter = ',')]
    pub agents: Vec<String>,
    /// Targets: agent labels (`[agent] labels`), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Targets: the share of the addressed agents that take it, 0 to 100 (a stable hash of
    /// the agent id decides which).
    #[arg(long, default_value_t = 100.0)]
    pub rollout_percent: f64,
    /// Sign with this secret key file (default: write the package unsigned; `lab model sign`
    /// signs it later).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The package file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// `lab model verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The package.
    #[arg(long)]
    pub package: PathBuf,
    /// A trusted public key file (as `[model] trusted_keys`); repeatable.
    #[arg(long = "trusted-key", required = true)]
    pub trusted_keys: Vec<PathBuf>,
    /// Load only this variant (default: every variant the manifest lists).
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// The agent's windows (`[window]`; default: the agent's default, 1 s).
    #[command(flatten)]
    pub window: crate::training::WindowArgs,
}

/// Runs a `lab model` subcommand.
pub fn run(cmd: ModelCmd) -> Result<ExitCode> {
    match cmd {
        ModelCmd::Keygen { out, name } => {
            let (secret, public, id) = keygen(&out, &name)?;
            println!("key {id}");
            println!(
                "  secret: {} (mode 0600; keep it off the gateways)",
                secret.display()
            );
            println!(
                "  public: {} (install on gateways as [model] trusted_keys)",
                public.display()
            );
        }
        ModelCmd::Package(args) => {
            let built = package(&args, now_unix_ms())?;
            println!("{built}");
        }
        ModelCmd::Sign { key, package, out } => {
            let out = out.unwrap_or_else(|| package.clone());
            println!("{}", sign(&key, &package, &out)?);
        }
        ModelCmd::Verify(args) => match verify(&args)? {
            Ok(report) => print!("{report}"),
            Err(refusal) => {
                eprintln!(
                    "{}: refused ({}): {refusal}",
                    args.package.display(),
                    refusal.reason()
                );
                return Ok(ExitCode::from(1));
            }
        },
        ModelCmd::Publish {
            package,
            brokers,
            topic,
            replication_factor,
            kafka_options,
        } => publish(
            &package,
            &client_config(&brokers, &kafka_options)?,
            &topic,
            replication_factor,
        )?,
        ModelCmd::Status {
            brokers,
            topic,
            timeout_s,
            all,
            kafka_options,
        } => {
            if !(timeout_s.is_finite() && timeout_s > 0.0) {
                bail!("--timeout-s must be above 0");
            }
            let events = read_status(
                &client_config(&brokers, &kafka_options)?,
                &topic,
                Duration::from_secs_f64(timeout_s),
            )?;
            if events.is_empty() {
                eprintln!("no model-status events on {topic}");
                return Ok(ExitCode::SUCCESS);
            }
            print!(
                "{}",
                if all {
                    format_all(&events)
                } else {
                    format_latest(&events)
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes `DIR/NAME.key` (mode 0600) and `DIR/NAME.pub` for a new key; refuses if either
/// exists. Returns both paths and the key id.
pub fn keygen(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf, String)> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("--name must be a plain file name, not `{name}`");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let secret = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    for p in [&secret, &public] {
        if p.exists() {
            bail!("{} exists: not overwritten", p.display());
        }
    }
    let key = package::generate_key();
    let verifying = key.verifying_key();
    write_new(&secret, package::secret_key_text(&key).as_bytes(), 0o600)?;
    write_new(
        &public,
        package::public_key_text(&verifying, name).as_bytes(),
        0o644,
    )?;
    Ok((secret, public, package::key_id(&verifying)))
}

/// Creates `path` (never overwriting) with `mode` and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file beside it (a reader never sees half a
/// package).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The current commit, when run inside a git work tree.
fn git_head() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !rev.is_empty()).then_some(rev)
}

/// The lineage the options give, `None` without `--dataset-id` (the manifest's own is kept).
fn lineage(
    args: &PackageArgs,
    manifest: &serde_json::Value,
    now_ms: u64,
) -> Result<Option<Lineage>> {
    let Some(dataset_id) = args.dataset_id.clone() else {
        return Ok(None);
    };
    let training = manifest.get("training");
    let dataset_size = match args.dataset_size {
        Some(n) => n,
        None => training
            .and_then(|t| t.get("train_windows"))
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| {
                anyhow!(
                    "--dataset-size: the manifest has no training.train_windows to take it from"
                )
            })?,
    };
    Ok(Some(Lineage {
        dataset_id,
        dataset_size,
        code_revision: args
            .code_revision
            .clone()
            .or_else(git_head)
            .unwrap_or_else(|| "unknown".into()),
        trainer: training.cloned().unwrap_or_else(|| serde_json::json!({})),
        parent_model_version: args.parent.clone(),
        created_unix_ms: now_ms,
    }))
}

/// Builds (and signs, with `--key`) the package `args` describe and writes it to `args.out`.
/// Returns a line saying what was written.
pub fn package(args: &PackageArgs, now_ms: u64) -> Result<String> {
    if !(0.0..=100.0).contains(&args.rollout_percent) {
        bail!("--rollout-percent must be 0 to 100");
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&args.manifest)
            .with_context(|| format!("reading {}", args.manifest.display()))?,
    )
    .with_context(|| format!("{}: not JSON", args.manifest.display()))?;
    let lineage = lineage(args, &manifest, now_ms)?;
    if lineage.is_none() && manifest.get("lineage").is_none() {
        bail!(
            "{} has no lineage: give --dataset-id (and --dataset-size, --code-revision, --parent as needed)",
            args.manifest.display()
        );
    }
    let key = args
        .key
        .as_deref()
        .map(package::read_secret_key)
        .transpose()?;
    let mut envelope = package::build(&PackageInput {
        manifest: args.manifest.clone(),
        golden: args.golden.clone(),
        version: args.version.clone(),
        lineage,
        targets: Targets {
            agents: args.agents.clone(),
            labels: args.labels.clone(),
            rollout_percent: args.rollout_percent,
        },
        created_unix_ms: now_ms,
    })?;
    let signed = match &key {
        Some(k) => {
            envelope.sign(k).map_err(|e| anyhow!("signing: {e}"))?;
            format!("signed by {}", package::key_id(&k.verifying_key()))
        }
        None => "UNSIGNED (every agent refuses it until `lab model sign`)".to_string(),
    };
    let bytes = envelope.to_bytes();
    if bytes.len() > MAX_PACKAGE_BYTES {
        bail!(
            "the package is {} bytes, over the {MAX_PACKAGE_BYTES}-byte limit",
            bytes.len()
        );
    }
    write_atomic(&args.out, &bytes)?;
    let body = envelope.body().map_err(|e| anyhow!("{e}"))?;
    Ok(format!(
        "wrote {}: {} ({} bytes), {signed}",
        args.out.display(),
        body.model_version,
        bytes.len()
    ))
}

/// Adds the signature of the secret key in `key` to the package `input`, writes it to `out`.
pub fn sign(key: &Path, input: &Path, out: &Path) -> Result<String> {
    let key = package::read_secret_key(key)?;
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let mut envelope = Envelope::parse(&bytes).map_err(|e| anyhow!("{}: {e}", input.display()))?;
    envelope
        .sign(&key)
        .map_err(|e| anyhow!("{}: {e}", input.display()))?;
    let bytes = envelope.to_bytes();
    if bytes.len() > MAX_PACKAGE_BYTES {
        bail!(
            "the signed package is {} bytes, over the {MAX_PACKAGE_BYTES}-byte limit",
            bytes.len()
        );
    }
    write_atomic(out, &bytes)?;
    Ok(format!(
        "wrote {}: signed by {} ({} signature(s), {} bytes)",
        out.display(),
        package::key_id(&key.verifying_key()),
        envelope.signatures.len(),
        bytes.len()
    ))
}

/// Checks a package as an agent would. `Ok(Err(_))`: an agent would refuse it; `Err`: the
/// check could not be made (a file unreadable, a bad option).
pub fn verify(args: &VerifyArgs) -> Result<std::result::Result<String, Refusal>> {
    let window = args.window.window()?;
    let trusted = args
        .trusted_keys
        .iter()
        .map(|p| package::read_public_key(p))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let bytes = std::fs::read(&args.package)
        .with_context(|| format!("reading {}", args.package.display()))?;
    let verified = match package::verify(&bytes, &trusted) {
        Ok(v) => v,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let variants: Vec<Variant> = match args.variant {
        Some(v) => vec![v],
        None => [Variant::Int8, Variant::Float]
            .into_iter()
            .filter(|v| verified.manifest.models.contains_key(v.key()))
            .collect(),
    };
    if variants.is_empty() {
        return Ok(Err(Refusal::Model("the manifest lists no model".into())));
    }
    let mut loaded = Vec::new();
    for variant in variants {
        if let Err(refusal) = package::load_model(&verified, variant, &window) {
            return Ok(Err(refusal));
        }
        let cases = verified
            .body
            .golden
            .cases
            .iter()
            .filter(|c| c.outputs.contains_key(variant.key()))
            .count();
        loaded.push(format!("{variant} ({cases} golden cases)"));
    }
    let body = &verified.body;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<10}{v}\n"));
    line("package", format!("{}", args.package.display()));
    line("version", body.model_version.clone());
    line("digest", verified.digest.clone());
    let signers = Envelope::parse(&bytes)
        .map(|e| e.signatures)
        .unwrap_or_default();
    let other_ids: Vec<String> = signers
        .iter()
        .filter(|s| s.key_id != verified.key_id)
        .map(|s| s.key_id.clone())
        .collect();
    line(
        "signer",
        if other_ids.is_empty() {
            format!("{} (trusted)", verified.key_id)
        } else {
            format!(
                "{} (trusted); also signed by {}",
                verified.key_id,
                other_ids.join(", ")
            )
        },
    );
    line("targets", describe_targets(&body.targets));
    match body
        .manifest
        .get("lineage")
        .cloned()
        .map(serde_json::from_value::<Lineage>)
    {
        Some(Ok(l)) => {
            line(
                "lineage",
                format!(
                    "dataset {} ({} windows), code {}, parent {}, made {}",
                    l.dataset_id,
                    l.dataset_size,
                    l.code_revision,
                    l.parent_model_version.as_deref().unwrap_or("none"),
                    utc(l.created_unix_ms)
                ),
            );
            line("trainer", l.trainer.to_string());
        }
        Some(Err(e)) => line("lineage", format!("unreadable: {e}")),
        None => line("lineage", "none".into()),
    }
    line("packaged", utc(body.created_unix_ms));
    line(
        "size",
        format!("{} bytes (limit {MAX_PACKAGE_BYTES})", bytes.len()),
    );
    line(
        "loads",
        format!("{}; window {}", loaded.join(", "), describe_window(&window)),
    );
    Ok(Ok(out))
}

fn describe_targets(t: &Targets) -> String {
    let who = if t.agents.is_empty() && t.labels.is_empty() {
        "every agent".to_string()
    } else {
        let mut parts = Vec::new();
        if !t.agents.is_empty() {
            parts.push(format!("agents {}", t.agents.join(", ")));
        }
        if !t.labels.is_empty() {
            parts.push(format!("labels {}", t.labels.join(", ")));
        }
        parts.join("; ")
    };
    format!("{who}; rollout {} %", t.rollout_percent)
}

fn describe_window(w: &edgewatch_agent::assemble::window::WindowConfig) -> String {
    match (w.duration_s, w.revolutions, w.length) {
        (_, _, Some(n)) => format!("{n} samples"),
        (_, Some(r), None) => format!("{r} revolutions"),
        (Some(s), None, None) => format!("{s} s"),
        (None, None, None) => format!(
            "{} s (default)",
            edgewatch_agent::assemble::window::WindowConfig::DEFAULT_DURATION_S
        ),
    }
}

/// `ms` since the Unix epoch as UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ` (the agent's formatting).
pub fn utc(ms: u64) -> String {
    edgewatch_agent::analyze::feedback::utc(ms)
}

/// librdkafka settings: the brokers and the `KEY=VALUE` options.
pub(crate) fn client_config(brokers: &str, options: &[String]) -> Result<rdkafka::ClientConfig> {
    let mut c = rdkafka::ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for o in options {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| anyhow!("--kafka-option `{o}`: not KEY=VALUE"))?;
        c.set(k.trim(), v.trim());
    }
    Ok(c)
}

/// What [`create_topic_if_missing`] did.
#[derive(Debug)]
pub(crate) enum Created {
    /// The topic was there.
    Existed,
    /// Created, as said.
    As(String),
    /// Created without compaction, which failed for the reason given.
    WithoutCompaction(String),
}

/// Creates `topic` with `partitions` partitions unless it exists; `compact`: with
/// `cleanup.policy=compact`, falling back to none when the broker refuses it.
pub(crate) fn create_topic_if_missing(
    rt: &tokio::runtime::Runtime,
    config: &rdkafka::ClientConfig,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    compact: bool,
) -> Result<Created> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::error::RDKafkaErrorCode;
    let timeout = Duration::from_secs(30);
    let admin: AdminClient<DefaultClientContext> =
        config.create().context("creating the Kafka admin client")?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout)
        .context("reading the cluster's topics")?;
    let exists = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if exists {
        return Ok(Created::Existed);
    }
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let create = |compact: bool| {
        let mut t = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(replication_factor),
        );
        if compact {
            t = t.set("cleanup.policy", "compact");
        }
        match rt.block_on(admin.create_topics([&t], &opts)) {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) | None => Ok(()),
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(()),
                Some(Err((_, code))) => Err(code.to_string()),
            },
            Err(e) => Err(e.to_string()),
        }
    };
    let n = format!(
        "{partitions} partition{}",
        if partitions == 1 { "" } else { "s" }
    );
    if !compact {
        create(false).map_err(|why| anyhow!("creating topic {topic}: {why}"))?;
        return Ok(Created::As(n));
    }
    match create(true) {
        Ok(()) => Ok(Created::As(format!("{n}, cleanup.policy=compact"))),
        Err(why) => {
            create(false).map_err(|why| anyhow!("creating topic {topic}: {why}"))?;
            Ok(Created::WithoutCompaction(why))
        }
    }
}

/// Publishes the package in `path` on `topic` (keyed by its model version), creating the
/// topic if missing; prints where it went.
fn publish(
    path: &Path,
    config: &rdkafka::ClientConfig,
    topic: &str,
    replication_factor: i32,
) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > MAX_PACKAGE_BYTES {
        bail!(
            "{} is {} bytes, over the {MAX_PACKAGE_BYTES}-byte package limit: agents refuse it",
            path.display(),
            bytes.len()
        );
    }
    let envelope = Envelope::parse(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let version = envelope
        .body()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?
        .model_version;
    if envelope.signatures.is_empty() {
        eprintln!(
            "warning: {} is unsigned: every agent will refuse it",
            path.display()
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(30);

    // The topic, if missing: compacted (one package per model version is kept), one
    // partition (the agents read it whole, in order).
    match create_topic_if_missing(&rt, config, topic, 1, replication_factor, true)? {
        Created::Existed => {}
        Created::As(how) => eprintln!("created topic {topic} ({how})"),
        Created::WithoutCompaction(why) => eprintln!(
            "warning: creating {topic} with cleanup.policy=compact failed ({why}); \
             created it without: set the policy by hand, or old packages are deleted \
             by retention and agents that start later never see them"
        ),
    }

    let delivered = send_acked(&rt, config, topic, &version, &bytes, timeout)?;
    match delivered {
        Ok((partition, offset)) => {
            println!(
                "published {version} ({} bytes) to {topic} partition {partition} offset {offset}",
                bytes.len(),
            );
            Ok(())
        }
        Err(e) => Err(anyhow!("publishing {version} to {topic}: {e}")),
    }
}

/// Sends one message and waits up to `timeout` for the broker's acknowledgement (`acks=all`;
/// messages up to 1 MB, the package limit with room); the partition and offset it got.
pub(crate) fn send_acked(
    rt: &tokio::runtime::Runtime,
    config: &rdkafka::ClientConfig,
    topic: &str,
    key: &str,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Result<(i32, i64), rdkafka::error::KafkaError>> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let mut producer_config = config.clone();
    producer_config
        .set("message.max.bytes", "1000000")
        .set("acks", "all");
    let producer: FutureProducer = producer_config
        .create()
        .context("creating the Kafka producer")?;
    let delivered = rt.block_on(async {
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(bytes),
                rdkafka::util::Timeout::After(timeout),
            )
            .await
    });
    Ok(delivered
        .map(|d| (d.partition, d.offset))
        .map_err(|(e, _)| e))
}

/// One model-status record, as `status` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusEvent {
    /// `agent_id`.
    pub agent: String,
    /// `event`.
    pub event: String,
    /// `model.version`.
    pub model: String,
    /// `active.version`.
    pub active: String,
    /// `phase`.
    pub phase: String,
    /// `reason_code`, when there is one.
    pub reason_code: Option<String>,
    /// `at_unix_ms`.
    pub at_unix_ms: u64,
}

impl StatusEvent {
    /// Reads a model-status record's payload.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_slice(payload)?;
        let s = |p: &str| {
            v.pointer(p)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("no {p}"))
        };
        Ok(Self {
            agent: s("/agent_id")?,
            event: s("/event")?,
            model: s("/model/version")?,
            active: s("/active/version")?,
            phase: s("/phase")?,
            reason_code: s("/reason_code").ok(),
            at_unix_ms: v
                .get("at_unix_ms")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| anyhow!("no at_unix_ms"))?,
        })
    }

    fn what(&self) -> String {
        match &self.reason_code {
            Some(r) => format!("{} {} ({r})", self.event, self.model),
            None => format!("{} {}", self.event, self.model),
        }
    }
}

/// Every record of `topic`, every partition from its beginning, until none came for `idle`.
fn read_status(
    config: &rdkafka::ClientConfig,
    topic: &str,
    idle: Duration,
) -> Result<Vec<StatusEvent>> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::{Message as _, Offset, TopicPartitionList};

    let mut c = config.clone();
    c.set("group.id", "edgewatch-lab-model-status")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: BaseConsumer = c.create().context("creating the Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("reading the topic's metadata")?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    if partitions == 0 {
        bail!("topic {topic} does not exist (no agent has sent a model-status event yet?)");
    }
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p as i32, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let mut out = Vec::new();
    let mut last = std::time::Instant::now();
    while last.elapsed() < idle {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                last = std::time::Instant::now();
                let Some(payload) = m.payload() else { continue };
                match StatusEvent::parse(payload) {
                    Ok(e) => out.push(e),
                    Err(e) => eprintln!(
                        "warning: {topic}/{}@{}: not a model-status record: {e}",
                        m.partition(),
                        m.offset()
                    ),
                }
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
        }
    }
    Ok(out)
}

/// One line per agent with its latest event.
pub fn format_latest(events: &[StatusEvent]) -> String {
    let mut latest: BTreeMap<&str, &StatusEvent> = BTreeMap::new();
    for e in events {
        latest.insert(&e.agent, e);
    }
    let rows: Vec<[String; 5]> = latest
        .values()
        .map(|e| {
            [
                e.agent.clone(),
                e.active.clone(),
                e.phase.clone(),
                e.what(),
                utc(e.at_unix_ms),
            ]
        })
        .collect();
    table(
        ["agent", "active model", "phase", "last event", "at"],
        &rows,
    )
}

/// Every event, in the order read (per agent: the order it sent them).
pub fn format_all(events: &[StatusEvent]) -> String {
    let rows: Vec<[String; 5]> = events
        .iter()
        .map(|e| {
            [
                utc(e.at_unix_ms),
                e.agent.clone(),
                e.what(),
                e.active.clone(),
                e.phase.clone(),
            ]
        })
        .collect();
    table(["at", "agent", "event", "active model", "phase"], &rows)
}

fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut width = head.map(str::len);
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: Vec<&str>| {
        let line: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push(head.to_vec());
    for r in rows {
        push(r.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
    }

    fn package_args(out: &Path, key: Option<PathBuf>) -> PackageArgs {
        PackageArgs {
            manifest: models_dir().join("manifest.json"),
            golden: None,
            version: Some("edgewatch-classifier-test".into()),
            dataset_id: Some("sim-test".into()),
            dataset_size: None,
            code_revision: Some("abc123".into()),
            parent: Some("edgewatch-classifier-4".into()),
            agents: vec!["gw-1".into()],
            labels: vec!["line-2".into()],
            rollout_percent: 50.0,
            key,
            out: out.to_path_buf(),
        }
    }

    fn verify_args(package: &Path, trusted: &[&Path], variant: Option<Variant>) -> VerifyArgs {
        VerifyArgs {
            package: package.to_path_buf(),
            trusted_keys: trusted.iter().map(|p| p.to_path_buf()).collect(),
            variant,
            window: crate::training::WindowArgs {
                window_s: None,
                window_revolutions: None,
                window_len: None,
                overlap: edgewatch_agent::assemble::window::WindowConfig::default_overlap(),
            },
        }
    }

    #[test]
    fn keygen_package_sign_and_verify_round_trip_on_the_committed_model() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let (secret, public, id) = keygen(&keys, "plant").unwrap();
        assert_eq!(secret, keys.join("plant.key"));
        assert_eq!(id.len(), 16);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        assert_eq!(
            package::read_secret_key(&secret).unwrap().verifying_key(),
            package::read_public_key(&public).unwrap()
        );
        // Never overwritten.
        let before = std::fs::read(&secret).unwrap();
        let err = keygen(&keys, "plant").unwrap_err().to_string();
        assert!(err.contains("exists"), "{err}");
        assert_eq!(std::fs::read(&secret).unwrap(), before);

        // Unsigned: an agent refuses it.
        let pkg = dir.path().join("m.ewpkg");
        let said = package(&package_args(&pkg, None), 1_700_000_000_000).unwrap();
        assert!(said.contains("UNSIGNED"), "{said}");
        let refusal = verify(&verify_args(&pkg, &[&public], None))
            .unwrap()
            .unwrap_err();
        assert_eq!(refusal.reason(), "unsigned");

        // Signed afterwards: verifies and loads both variants, lineage and targets as given.
        let signed = dir.path().join("signed.ewpkg");
        let said = sign(&secret, &pkg, &signed).unwrap();
        assert!(said.contains(&id), "{said}");
        let report = verify(&verify_args(&signed, &[&public], None))
            .unwrap()
            .unwrap();
        for want in [
            "edgewatch-classifier-test",
            &format!("{id} (trusted)"),
            "agents gw-1; labels line-2; rollout 50 %",
            "dataset sim-test (5760 windows), code abc123, parent edgewatch-classifier-4",
            "int8 (",
            "float (",
            "epochs",
        ] {
            assert!(report.contains(want), "{want} not in\n{report}");
        }
        let bytes = std::fs::read(&signed).unwrap();
        let v = package::verify(&bytes, &[package::read_public_key(&public).unwrap()]).unwrap();
        let lineage: Lineage = serde_json::from_value(v.body.manifest["lineage"].clone()).unwrap();
        assert_eq!(lineage.created_unix_ms, 1_700_000_000_000);
        assert_eq!(lineage.trainer["epochs"], 124);

        // Signed while packaging; a second key's signature is added beside the first.
        let direct = dir.path().join("direct.ewpkg");
        package(&package_args(&direct, Some(secret.clone())), 2).unwrap();
        let (secret2, public2, id2) = keygen(&keys, "second").unwrap();
        sign(&secret2, &direct, &direct).unwrap();
        for trusted in [&public, &public2] {
            let report = verify(&verify_args(&direct, &[trusted], Some(Variant::Int8)))
                .unwrap()
                .unwrap();
            assert!(
                report.contains("int8 (") && !report.contains("float ("),
                "{report}"
            );
        }
        let report = verify(&verify_args(&direct, &[&public2], None))
            .unwrap()
            .unwrap();
        assert!(report.contains(&format!("also signed by {id}")), "{report}");
        assert!(report.contains(&format!("{id2} (trusted)")), "{report}");

        // A key not trusted, and a package changed after signing, are refused.
        let (_, stranger, _) = keygen(&keys, "stranger").unwrap();
        let refusal = verify(&verify_args(&signed, &[&stranger], None))
            .unwrap()
            .unwrap_err();
        assert_eq!(refusal.reason(), "untrusted_key");
        let mut e = Envelope::parse(&bytes).unwrap();
        let mut body = e.body().unwrap();
        body.targets.rollout_percent = 100.0;
        e.body = Envelope::new(&body).body;
        std::fs::write(&signed, e.to_bytes()).unwrap();
        let refusal = verify(&verify_args(&signed, &[&public], None))
            .unwrap()
            .unwrap_err();
        assert_eq!(refusal.reason(), "bad_signature");

        // Trained on other windows than the agent's: refused at load.
        let mut args = verify_args(&direct, &[&public], None);
        args.window.window_s = Some(2.0);
        assert_eq!(verify(&args).unwrap().unwrap_err().reason(), "window");
    }

    #[test]
    fn a_package_needs_a_lineage_and_sane_targets() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.ewpkg");
        let mut args = package_args(&out, None);
        args.dataset_id = None;
        let err = package(&args, 1).unwrap_err().to_string();
        assert!(err.contains("--dataset-id"), "{err}");
        let mut args = package_args(&out, None);
        args.rollout_percent = 101.0;
        assert!(package(&args, 1).is_err());
        assert!(!out.exists());
    }

    #[test]
    fn status_keeps_each_agents_latest_event() {
        let record = |agent: &str, event: &str, active: &str, phase: &str, at: u64| {
            serde_json::json!({
                "agent_id": agent, "event": event, "model": {"version": "m2", "digest": null},
                "active": {"version": active, "digest": null}, "phase": phase,
                "at_unix_ms": at, "source": null,
            })
            .to_string()
        };
        let events: Vec<StatusEvent> = [
            record("gw-2", "received", "m1", "stable", 1_000),
            record("gw-1", "shadow_started", "m1", "shadow", 2_000),
            record("gw-1", "promoted", "m2", "watch", 86_400_000 + 3_004),
        ]
        .iter()
        .map(|r| StatusEvent::parse(r.as_bytes()).unwrap())
        .collect();
        let latest = format_latest(&events);
        let lines: Vec<&str> = latest.lines().collect();
        assert_eq!(lines.len(), 3, "{latest}");
        let words: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(words[..3], ["gw-1", "m2", "watch"], "{latest}");
        assert!(lines[1].contains("promoted m2"), "{latest}");
        assert!(lines[1].ends_with("1970-01-02T00:00:03.004Z"), "{latest}");
        assert!(lines[2].contains("received m2"), "{latest}");
        assert_eq!(format_all(&events).lines().count(), 4);
        assert!(StatusEvent::parse(b"{}").is_err());
        assert_eq!(utc(1_733_443_200_000), "2024-12-06T00:00:00.000Z");
    }
}
