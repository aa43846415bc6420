//! Model packages: one signed artefact per model version.
//!
//! ```text
//! envelope (JSON, what travels on the models topic and sits in the state directory)
//! {
//!   "format": "edgewatch-model-package", "format_version": 1,
//!   "body": "<base64 of the body's JSON bytes>",        // exactly the bytes that are signed
//!   "signatures": [ { "key_id": "<16 hex>", "public_key": "<base64, 32 bytes>",
//!                     "signature": "<base64, 64 bytes: Ed25519 over the body bytes>" } ]
//! }
//! body (JSON)
//! {
//!   "model_version": "...", "created_unix_ms": ...,
//!   "manifest": { ...manifest.json, including "lineage" },
//!   "golden": { "tolerance": 0.002, "cases": [ { "inputs": [..], "float": [..], "int8": [..] } ] },
//!   "files": { "<file name in the manifest>": "<base64 of the ONNX bytes>" },
//!   "targets": { "agents": [..], "labels": [..], "rollout_percent": 100 }
//! }
//! ```
//!
//! # Invariants
//!
//! - The signature covers the body's bytes as they travel, not a re-serialisation: nothing has
//!   to be canonicalised, and any changed byte of the body (a file, a golden output, the
//!   targets) fails verification. The envelope's own fields carry nothing that is trusted.
//! - The targets are inside the signed body: a package cannot be pointed at other gateways
//!   without the key.
//! - A package's identity is the SHA-256 of its body ([`Verified::digest`]): the agent records
//!   the digests it has decided on, so a package is judged once, never in a loop.
//! - A package is at most [`MAX_PACKAGE_BYTES`], below Kafka's default 1 MB message limit; the
//!   tool refuses to build a larger one and the agent refuses to read one. The committed
//!   classifier packs into about 51 kB.
//!
//! Checking a package is two steps, both pure: [`verify`] (size, shape, signature by a trusted
//! key) and [`load_model`] (the manifest against this agent's features and windows, the graph
//! through tract, and the golden outputs reproduced). Either fails with a [`Refusal`] whose
//! [`Refusal::reason`] is the short code reported and counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::analyze::model::{Manifest, Model, Variant};
use crate::assemble::window::WindowConfig;

/// `format` of every package.
pub const PACKAGE_FORMAT: &str = "edgewatch-model-package";
/// The package format this agent writes and reads.
pub const PACKAGE_FORMAT_VERSION: u32 = 1;
/// The largest package built or accepted: below librdkafka's default `message.max.bytes`
/// (1,000,000) with room for the record's key and headers.
pub const MAX_PACKAGE_BYTES: usize = 900_000;
/// File name extension of a package on disk.
pub const PACKAGE_EXTENSION: &str = "ewpkg";

/// What travels: the body's bytes and the signatures over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always [`PACKAGE_FORMAT`].
    pub format: String,
    /// [`PACKAGE_FORMAT_VERSION`].
    pub format_version: u32,
    /// The body's JSON bytes, base64.
    pub body: String,
    /// Ed25519 signatures over the body's bytes.
    #[serde(default)]
    pub signatures: Vec<SignatureEntry>,
}

/// One signature of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// [`key_id`] of the signing key (for people and logs; the key itself is what is checked).
    pub key_id: String,
    /// The public key, base64 of its 32 bytes.
    pub public_key: String,
    /// The signature, base64 of its 64 bytes.
    pub signature: String,
}

/// Which agents a package is for. Both lists empty: every agent. Otherwise an agent is
/// addressed when its id is in `agents` or one of its `[agent] labels` is in `labels`. Either
/// way only agents inside the rollout share ([`rollout_bucket`]) take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Agent ids.
    #[serde(default)]
    pub agents: Vec<String>,
    /// Agent labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Share of the addressed agents, 0 to 100, by a stable hash of the agent id.
    #[serde(default = "Targets::everyone")]
    pub rollout_percent: f64,
}

impl Targets {
    const fn everyone() -> f64 {
        100.0
    }

    /// Whether the agent `agent_id` with `labels` is addressed.
    pub fn includes(&self, agent_id: &str, labels: &[String]) -> bool {
        let named = (self.agents.is_empty() && self.labels.is_empty())
            || self.agents.iter().any(|a| a == agent_id)
            || self.labels.iter().any(|l| labels.contains(l));
        named && f64::from(rollout_bucket(agent_id)) < self.rollout_percent * 100.0
    }
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            agents: Vec::new(),
            labels: Vec::new(),
            rollout_percent: Self::everyone(),
        }
    }
}

/// An agent's place in every rollout, 0..10000: the first eight bytes of SHA-256 of its id,
/// modulo 10000. A rollout of p % takes the agents below `p * 100`. It does not depend on the
/// model, so raising a rollout from 10 % to 50 % keeps the first wave and adds to it, and the
/// canary gateways are the same ones every time (a plant can name them).
pub fn rollout_bucket(agent_id: &str) -> u32 {
    let d = Sha256::digest(agent_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) % 10_000) as u32
}

/// The golden cases: inputs in feature order and the expected outputs per variant key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Golden {
    /// Largest accepted difference per probability.
    #[serde(deserialize_with = "number_or_string")]
    pub tolerance: f32,
    /// The cases.
    pub cases: Vec<GoldenCase>,
}

/// One golden case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenCase {
    /// Model inputs in the manifest's feature order.
    pub inputs: Vec<f32>,
    /// Expected probabilities by variant key (`float`, `int8`).
    #[serde(flatten)]
    pub outputs: BTreeMap<String, Vec<f32>>,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        F(f32),
        S(String),
    }
    match N::deserialize(d)? {
        N::F(f) => Ok(f),
        N::S(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// Where a model came from and how it was made (the manifest's `lineage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The training data set's id.
    pub dataset_id: String,
    /// Its size, in windows.
    pub dataset_size: u64,
    /// The code revision the model was trained with (a git commit).
    pub code_revision: String,
    /// The trainer's parameters.
    #[serde(default)]
    pub trainer: serde_json::Value,
    /// The model this one replaces or was derived from.
    #[serde(default)]
    pub parent_model_version: Option<String>,
    /// When the model was made, ms since the Unix epoch.
    pub created_unix_ms: u64,
}

/// The signed part of a package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// The manifest's `model_version`.
    pub model_version: String,
    /// When the package was made, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// The manifest, as written by the trainer (with `lineage`).
    pub manifest: serde_json::Value,
    /// Golden inputs and outputs.
    pub golden: Golden,
    /// The manifest's model files, by file name, base64.
    pub files: BTreeMap<String, String>,
    /// Who it is for.
    #[serde(default)]
    pub targets: Targets,
}

/// Why a package was refused. None is worth retrying with the same bytes: the digest is
/// remembered and the same package is not judged again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// Larger than [`MAX_PACKAGE_BYTES`].
    #[error("package of {bytes} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Not a package of a format this agent reads.
    #[error("not a model package: {0}")]
    Malformed(String),
    /// No signature at all.
    #[error("the package is not signed")]
    Unsigned,
    /// Signed, but by no key in `[model] trusted_keys`.
    #[error("signed by {0}, which is not a trusted key")]
    UntrustedKey(String),
    /// A trusted key's signature does not match the body: changed after signing.
    #[error("the signature of trusted key {0} does not match the package: it was altered")]
    BadSignature(String),
    /// The manifest's inputs are not this agent's features.
    #[error("feature list mismatch: {0}")]
    Features(String),
    /// Trained on windows of another size than the agent's `[window]`.
    #[error("window: {0}")]
    Window(String),
    /// tract does not reproduce the golden outputs.
    #[error("golden outputs: {0}")]
    Golden(String),
    /// The manifest, a file or the graph is refused (checksum, classes, tract, probe).
    #[error("model: {0}")]
    Model(String),
}

impl Refusal {
    /// Short code for metrics and status records.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed",
            Self::Unsigned => "unsigned",
            Self::UntrustedKey(_) => "untrusted_key",
            Self::BadSignature(_) => "bad_signature",
            Self::Features(_) => "features",
            Self::Window(_) => "window",
            Self::Golden(_) => "golden",
            Self::Model(_) => "model",
        }
    }

    /// Every reason code, for metrics that must exist before the first refusal.
    pub const REASONS: [&'static str; 9] = [
        "too_large",
        "malformed",
        "unsigned",
        "untrusted_key",
        "bad_signature",
        "features",
        "window",
        "golden",
        "model",
    ];
}

/// A package whose signature checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    /// SHA-256 of the body, lowercase hex: the package's identity.
    pub digest: String,
    /// The body.
    pub body: Body,
    /// The manifest, parsed.
    pub manifest: Manifest,
    /// The trusted key that signed it.
    pub key_id: String,
    /// The envelope's bytes as received (what is stored).
    pub bytes: Vec<u8>,
}

impl Verified {
    /// The model version.
    pub fn version(&self) -> &str {
        &self.body.model_version
    }
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Unreadable.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a key of the expected kind.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

const PUBLIC_TAG: &str = "edgewatch-ed25519-public";
const SECRET_TAG: &str = "edgewatch-ed25519-secret";

/// A short id of a public key: the first 16 hex digits of SHA-256 of its bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    Sha256::digest(key.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new signing key from the operating system's random source (through `rand`'s thread
/// generator, a CSPRNG seeded from the OS).
pub fn generate_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// The public key file's text: `edgewatch-ed25519-public <base64> <comment>`.
pub fn public_key_text(key: &VerifyingKey, comment: &str) -> String {
    format!("{PUBLIC_TAG} {} {comment}\n", B64.encode(key.as_bytes()))
}

/// The secret key file's text: `edgewatch-ed25519-secret <base64>`.
pub fn secret_key_text(key: &SigningKey) -> String {
    format!("{SECRET_TAG} {}\n", B64.encode(key.to_bytes()))
}

fn key_bytes<const N: usize>(text: &str, tag: &str) -> Result<[u8; N], String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or("empty file")?;
    let mut words = line.split_whitespace();
    if words.next() != Some(tag) {
        return Err(format!("does not start with `{tag}`"));
    }
    let b64 = words.next().ok_or("no key after the tag")?;
    let bytes = B64
        .decode(b64)
        .map_err(|e| format!("key is not base64: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("key has {} bytes, not {N}", b.len()))
}

/// Reads a public key file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |reason: String| KeyError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = key_bytes::<32>(&text, PUBLIC_TAG).map_err(format)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format(format!("not an Ed25519 key: {e}")))
}

/// Reads a secret key file.
pub fn read_secret_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    key_bytes::<32>(&text, SECRET_TAG)
        .map(|b| SigningKey::from_bytes(&b))
        .map_err(|reason| KeyError::Format {
            path: path.to_path_buf(),
            reason,
        })
}

impl Body {
    /// The body's bytes: what is signed and what [`Verified::digest`] hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a package body serialises")
    }
}

impl Envelope {
    /// An unsigned envelope around `body`.
    pub fn new(body: &Body) -> Self {
        Self {
            format: PACKAGE_FORMAT.into(),
            format_version: PACKAGE_FORMAT_VERSION,
            body: B64.encode(body.to_bytes()),
            signatures: Vec::new(),
        }
    }

    /// Parses an envelope (no signature checked).
    pub fn parse(bytes: &[u8]) -> Result<Self, Refusal> {
        if bytes.len() > MAX_PACKAGE_BYTES {
            return Err(Refusal::TooLarge {
                bytes: bytes.len(),
                max: MAX_PACKAGE_BYTES,
            });
        }
        let e: Self =
            serde_json::from_slice(bytes).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if e.format != PACKAGE_FORMAT {
            return Err(Refusal::Malformed(format!(
                "format is `{}`, not `{PACKAGE_FORMAT}`",
                e.format
            )));
        }
        if e.format_version != PACKAGE_FORMAT_VERSION {
            return Err(Refusal::Malformed(format!(
                "format version {} (this agent reads {PACKAGE_FORMAT_VERSION})",
                e.format_version
            )));
        }
        Ok(e)
    }

    /// The body's bytes.
    pub fn body_bytes(&self) -> Result<Vec<u8>, Refusal> {
        B64.decode(&self.body)
            .map_err(|e| Refusal::Malformed(format!("body is not base64: {e}")))
    }

    /// The body, parsed (no signature checked).
    pub fn body(&self) -> Result<Body, Refusal> {
        serde_json::from_slice(&self.body_bytes()?)
            .map_err(|e| Refusal::Malformed(format!("body: {e}")))
    }

    /// Adds `key`'s signature over the body (replacing an earlier one by the same key).
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), Refusal> {
        let body = self.body_bytes()?;
        add_signature(&mut self.signatures, key, &body);
        Ok(())
    }

    /// The envelope's bytes (pretty JSON: a package is also read by people).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("an envelope serialises");
        v.push(b'\n');
        v
    }
}

/// Why signed bytes are not accepted: the signature part of a [`Refusal`], shared by every
/// signed artefact (model packages, feedback commands).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature at all.
    #[error("not signed")]
    Unsigned,
    /// Signed, but by no trusted key (the key ids it names).
    #[error("signed by {0}, which is not a trusted key")]
    UntrustedKey(String),
    /// A trusted key's signature does not match the bytes: changed after signing.
    #[error("the signature of trusted key {0} does not match: the signed bytes were altered")]
    BadSignature(String),
}

impl SignatureError {
    /// Short code for metrics and status records.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::UntrustedKey(_) => "untrusted_key",
            Self::BadSignature(_) => "bad_signature",
        }
    }
}

impl From<SignatureError> for Refusal {
    fn from(e: SignatureError) -> Self {
        match e {
            SignatureError::Unsigned => Self::Unsigned,
            SignatureError::UntrustedKey(k) => Self::UntrustedKey(k),
            SignatureError::BadSignature(k) => Self::BadSignature(k),
        }
    }
}

/// Adds `key`'s Ed25519 signature over `signed` to `signatures`, replacing an earlier one by
/// the same key.
pub fn add_signature(signatures: &mut Vec<SignatureEntry>, key: &SigningKey, signed: &[u8]) {
    let public = key.verifying_key();
    let id = key_id(&public);
    signatures.retain(|s| s.key_id != id);
    signatures.push(SignatureEntry {
        key_id: id,
        public_key: B64.encode(public.as_bytes()),
        signature: B64.encode(key.sign(signed).to_bytes()),
    });
}

/// Checks that `signatures` hold a valid Ed25519 signature over `signed` by one of `trusted`;
/// returns that key's id. Signatures by other keys are ignored when a trusted one is valid; a
/// trusted key's signature that does not match refuses the bytes at once.
pub fn verify_signatures(
    signed: &[u8],
    signatures: &[SignatureEntry],
    trusted: &[VerifyingKey],
) -> Result<String, SignatureError> {
    if signatures.is_empty() {
        return Err(SignatureError::Unsigned);
    }
    let mut untrusted = Vec::new();
    for s in signatures {
        let key = B64
            .decode(&s.public_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok());
        let Some(key) = key.filter(|k| trusted.contains(k)) else {
            untrusted.push(s.key_id.clone());
            continue;
        };
        let id = key_id(&key);
        let signature = B64
            .decode(&s.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok());
        return match signature {
            Some(sig) if key.verify(signed, &sig).is_ok() => Ok(id),
            _ => Err(SignatureError::BadSignature(id)),
        };
    }
    Err(SignatureError::UntrustedKey(untrusted.join(", ")))
}

/// Checks a package's size, shape and signature: it must carry a valid signature by one of
/// `trusted`. Signatures by other keys are ignored when a trusted one is valid.
pub fn verify(bytes: &[u8], trusted: &[VerifyingKey]) -> Result<Verified, Refusal> {
    let envelope = Envelope::parse(bytes)?;
    let body_bytes = envelope.body_bytes()?;
    let key_id = verify_signatures(&body_bytes, &envelope.signatures, trusted)?;
    let body: Body = serde_json::from_slice(&body_bytes)
        .map_err(|e| Refusal::Malformed(format!("body: {e}")))?;
    let manifest: Manifest = serde_json::from_value(body.manifest.clone())
        .map_err(|e| Refusal::Malformed(format!("manifest: {e}")))?;
    if manifest.model_version != body.model_version {
        return Err(Refusal::Malformed(format!(
            "the body says version {}, its manifest {}",
            body.model_version, manifest.model_version
        )));
    }
    Ok(Verified {
        digest: crate::analyze::model::sha256_hex(&body_bytes),
        body,
        manifest,
        key_id,
        bytes: bytes.to_vec(),
    })
}

/// Builds the `variant` model of a verified package and checks it against this agent: the
/// feature list, the trained window size against `window` (a package must state it), the
/// file's checksum, the graph in tract, and every golden case reproduced within the package's
/// tolerance.
pub fn load_model(
    package: &Verified,
    variant: Variant,
    window: &WindowConfig,
) -> Result<Model, Refusal> {
    let key = variant.key();
    let entry = package
        .manifest
        .models
        .get(key)
        .ok_or_else(|| Refusal::Model(format!("the manifest has no `{key}` model")))?;
    let b64 =
        package.body.files.get(&entry.file).ok_or_else(|| {
            Refusal::Model(format!("the package lacks the file `{}`", entry.file))
        })?;
    let onnx = B64
        .decode(b64)
        .map_err(|e| Refusal::Model(format!("{}: not base64: {e}", entry.file)))?;
    let label = PathBuf::from(format!("<package {}>/{}", package.version(), entry.file));
    let mut model =
        Model::from_parts(package.manifest.clone(), key, &label, &onnx).map_err(|e| match e {
            crate::analyze::model::ModelError::Features { reason } => Refusal::Features(reason),
            other => Refusal::Model(other.to_string()),
        })?;
    match model.trained_window() {
        None => {
            return Err(Refusal::Window(
                "the manifest says neither window_duration_s nor window_length".into(),
            ));
        }
        Some(_) => {
            if let Some(why) = model.window_mismatch(window) {
                return Err(Refusal::Window(why));
            }
        }
    }
    let cases: Vec<_> = package
        .body
        .golden
        .cases
        .iter()
        .filter_map(|c| c.outputs.get(key).map(|o| (&c.inputs, o)))
        .collect();
    if cases.is_empty() {
        return Err(Refusal::Golden(format!("no golden case for `{key}`")));
    }
    let tolerance = package.body.golden.tolerance;
    for (k, (inputs, expected)) in cases.into_iter().enumerate() {
        let x: &[f32; crate::analyze::features::MODEL_INPUT_LEN] = inputs
            .as_slice()
            .try_into()
            .map_err(|_| Refusal::Golden(format!("case {k} has {} inputs", inputs.len())))?;
        let got = model
            .classify(x)
            .map_err(|e| Refusal::Golden(format!("case {k}: {e}")))?;
        if got.probabilities.len() != expected.len() {
            return Err(Refusal::Golden(format!(
                "case {k}: {} outputs, {} expected",
                got.probabilities.len(),
                expected.len()
            )));
        }
        for (i, (g, e)) in got.probabilities.iter().zip(expected).enumerate() {
            if (g - e).abs() > tolerance || !g.is_finite() {
                return Err(Refusal::Golden(format!(
                    "case {k} class {i}: tract {g}, expected {e} (tolerance {tolerance})"
                )));
            }
        }
    }
    Ok(model)
}

/// What the tool needs to build a package from a model folder.
#[derive(Debug, Clone)]
pub struct PackageInput {
    /// The `manifest.json`.
    pub manifest: PathBuf,
    /// The golden cases (`golden.json` beside the manifest when `None`).
    pub golden: Option<PathBuf>,
    /// The version to give the model (the manifest's when `None`).
    pub version: Option<String>,
    /// Lineage to write into the manifest (kept from the manifest when `None`; a package
    /// needs one).
    pub lineage: Option<Lineage>,
    /// Who it is for.
    pub targets: Targets,
    /// When it is made, ms since the Unix epoch.
    pub created_unix_ms: u64,
}

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The inputs do not make a package.
    #[error("{0}")]
    Invalid(String),
}

/// Builds an unsigned package from a model folder: the manifest (version and lineage set),
/// every model file it lists, the golden cases.
pub fn build(input: &PackageInput) -> Result<Envelope, BuildError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| BuildError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let dir = input.manifest.parent().unwrap_or(Path::new("."));
    let mut manifest: serde_json::Value = serde_json::from_slice(&read(&input.manifest)?)
        .map_err(|e| BuildError::Invalid(format!("{}: {e}", input.manifest.display())))?;
    let obj = manifest
        .as_object_mut()
        .ok_or_else(|| BuildError::Invalid("the manifest is not a JSON object".into()))?;
    if let Some(v) = &input.version {
        obj.insert("model_version".into(), v.clone().into());
    }
    if let Some(l) = &input.lineage {
        obj.insert(
            "lineage".into(),
            serde_json::to_value(l).expect("lineage serialises"),
        );
    }
    let lineage = obj
        .get("lineage")
        .cloned()
        .ok_or_else(|| BuildError::Invalid("the manifest has no lineage: give one".into()))?;
    serde_json::from_value::<Lineage>(lineage)
        .map_err(|e| BuildError::Invalid(format!("lineage: {e}")))?;
    let typed: Manifest = serde_json::from_value(manifest.clone())
        .map_err(|e| BuildError::Invalid(format!("{}: {e}", input.manifest.display())))?;
    let mut files = BTreeMap::new();
    for entry in typed.models.values() {
        let bytes = read(&dir.join(&entry.file))?;
        files.insert(entry.file.clone(), B64.encode(bytes));
    }
    let golden_path = input
        .golden
        .clone()
        .unwrap_or_else(|| dir.join("golden.json"));
    let golden: Golden = serde_json::from_slice(&read(&golden_path)?)
        .map_err(|e| BuildError::Invalid(format!("{}: {e}", golden_path.display())))?;
    let body = Body {
        model_version: typed.model_version.clone(),
        created_unix_ms: input.created_unix_ms,
        manifest,
        golden,
        files,
        targets: input.targets.clone(),
    };
    let envelope = Envelope::new(&body);
    let size = envelope.to_bytes().len();
    if size > MAX_PACKAGE_BYTES {
        return Err(BuildError::Invalid(format!(
            "the package would be {size} bytes, over the {MAX_PACKAGE_BYTES}-byte limit"
        )));
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
    }

    fn lineage() -> Lineage {
        Lineage {
            dataset_id: "test".into(),
            dataset_size: 1,
            code_revision: "test".into(),
            trainer: serde_json::json!({}),
            parent_model_version: None,
            created_unix_ms: 1,
        }
    }

    fn committed(targets: Targets) -> Envelope {
        build(&PackageInput {
            manifest: models_dir().join("manifest.json"),
            golden: None,
            version: Some("test-model-2".into()),
            lineage: Some(lineage()),
            targets,
            created_unix_ms: 2,
        })
        .unwrap()
    }

    fn signed(key: &SigningKey) -> Vec<u8> {
        let mut e = committed(Targets::default());
        e.sign(key).unwrap();
        e.to_bytes()
    }

    #[test]
    fn a_package_signed_by_a_trusted_key_verifies_and_loads_with_its_golden_outputs() {
        let key = generate_key();
        let bytes = signed(&key);
        assert!(
            bytes.len() < MAX_PACKAGE_BYTES / 10,
            "{} bytes",
            bytes.len()
        );
        let v = verify(&bytes, &[key.verifying_key()]).unwrap();
        assert_eq!(v.version(), "test-model-2");
        for variant in [Variant::Int8, Variant::Float] {
            let m = load_model(&v, variant, &WindowConfig::default()).unwrap();
            assert_eq!(m.version(), "test-model-2");
        }
    }

    #[test]
    fn each_kind_of_bad_package_is_refused_with_its_reason() {
        let key = generate_key();
        let other = generate_key();
        let trusted = [key.verifying_key()];
        let unsigned = committed(Targets::default()).to_bytes();
        assert_eq!(verify(&unsigned, &trusted).unwrap_err(), Refusal::Unsigned);
        assert_eq!(
            verify(&signed(&other), &trusted).unwrap_err().reason(),
            "untrusted_key"
        );
        // One changed byte of the body, still valid base64: the signature no longer matches.
        let mut e = Envelope::parse(&signed(&key)).unwrap();
        let mut body = e.body_bytes().unwrap();
        let at = body.len() / 2;
        body[at] ^= 0x01;
        e.body = B64.encode(&body);
        assert_eq!(
            verify(&e.to_bytes(), &trusted).unwrap_err().reason(),
            "bad_signature"
        );
        assert_eq!(
            verify(b"{not json", &trusted).unwrap_err().reason(),
            "malformed"
        );
        let huge = vec![b' '; MAX_PACKAGE_BYTES + 1];
        assert_eq!(verify(&huge, &trusted).unwrap_err().reason(), "too_large");
    }

    fn resigned(key: &SigningKey, edit: impl FnOnce(&mut Body)) -> Vec<u8> {
        let mut body = committed(Targets::default()).body().unwrap();
        edit(&mut body);
        let mut e = Envelope::new(&body);
        e.sign(key).unwrap();
        e.to_bytes()
    }

    #[test]
    fn a_signed_package_that_does_not_fit_this_agent_is_refused_at_load() {
        let key = generate_key();
        let trusted = [key.verifying_key()];
        let load = |bytes: Vec<u8>| {
            load_model(
                &verify(&bytes, &trusted).unwrap(),
                Variant::Int8,
                &WindowConfig::default(),
            )
            .unwrap_err()
        };
        let swapped = resigned(&key, |b| {
            b.manifest["feature_names"]
                .as_array_mut()
                .unwrap()
                .swap(0, 1);
        });
        assert_eq!(load(swapped).reason(), "features");
        let window = resigned(&key, |b| {
            b.manifest["window_duration_s"] = 2.0.into();
        });
        assert_eq!(load(window).reason(), "window");
        let golden = resigned(&key, |b| {
            let case = &mut b.golden.cases[0];
            let out = case.outputs.get_mut("int8").unwrap();
            out.swap(0, 1);
        });
        assert_eq!(load(golden).reason(), "golden");
    }

    #[test]
    fn targets_address_ids_labels_and_a_stable_share() {
        let t = Targets {
            agents: vec!["gw-1".into()],
            labels: vec!["line-2".into()],
            rollout_percent: 100.0,
        };
        assert!(t.includes("gw-1", &[]));
        assert!(t.includes("gw-9", &["line-2".into()]));
        assert!(!t.includes("gw-9", &["line-1".into()]));
        assert!(Targets::default().includes("anyone", &[]));
        let half = Targets {
            rollout_percent: 50.0,
            ..Targets::default()
        };
        let ids: Vec<String> = (0..1000).map(|i| format!("gw-{i}")).collect();
        let taken = ids.iter().filter(|id| half.includes(id, &[])).count();
        assert!((430..570).contains(&taken), "{taken} of 1000");
        // Monotone: a wider rollout keeps every agent of a narrower one.
        let tenth = Targets {
            rollout_percent: 10.0,
            ..Targets::default()
        };
        assert!(
            ids.iter()
                .filter(|id| tenth.includes(id, &[]))
                .all(|id| half.includes(id, &[]))
        );
        let none = Targets {
            rollout_percent: 0.0,
            ..Targets::default()
        };
        assert!(!ids.iter().any(|id| none.includes(id, &[])));
    }

    #[test]
    fn key_files_round_trip_and_bad_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_key();
        let (sp, pp) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        std::fs::write(&sp, secret_key_text(&key)).unwrap();
        std::fs::write(&pp, public_key_text(&key.verifying_key(), "test")).unwrap();
        assert_eq!(read_secret_key(&sp).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(read_public_key(&pp).unwrap(), key.verifying_key());
        let err = read_public_key(&sp).unwrap_err().to_string();
        assert!(err.contains("edgewatch-ed25519-public"), "{err}");
    }
}
