//! The feedback topic's records (`schemas/edgewatch.feedback.json`, version 1) and the checks
//! of a command before it is acted on.
//!
//! ```text
//! label   {"schema_version": 1, "type": "label", "feedback_id", "created_unix_ms", "operator",
//!          "asset_id", "agent_id", "label": "alert_confirmed" | ..., <the label's fields>}
//! command {"schema_version": 1, "type": "command", "format": "edgewatch-command",
//!          "body": "<base64 of the body's JSON bytes>",   // exactly the bytes that are signed
//!          "signatures": [{"key_id", "public_key", "signature"}]}
//! body    {"command_id": "<32 hex>", "agent_id", "asset_id", "action": "recommission" | "shelve",
//!          "shelve_until_unix_ms", "issued_by", "created_unix_ms"}
//! ```
//!
//! A command is signed like a model package (Ed25519 over the body's bytes as they travel, the
//! same code: [`package::verify_signatures`]); its addressee, asset and action are inside the
//! signed body. [`triage`] is pure: what to do with one record's bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::analyze::lifecycle::package::{self, SignatureEntry, SignatureError};

/// `schema_version` of the feedback records this agent reads and the lab writes.
pub const FEEDBACK_SCHEMA_VERSION: u32 = 1;
/// `format` of a command.
pub const COMMAND_FORMAT: &str = "edgewatch-command";
/// The largest feedback record read; a command is a few hundred bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// What a command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Learn the asset's baseline and its sensors' health references again (after a repair).
    Recommission,
    /// Raise and escalate no alert for the asset until `shelve_until_unix_ms`.
    Shelve,
}

impl Action {
    /// The name in records and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Recommission => "recommission",
            Self::Shelve => "shelve",
        }
    }
}

/// The signed part of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// 32 lowercase hex digits; the agent acts on each once.
    pub command_id: String,
    /// The agent it is for.
    pub agent_id: String,
    /// The asset it is about.
    pub asset_id: String,
    /// What to do.
    pub action: Action,
    /// For `shelve`: until when, ms since the Unix epoch (ignored otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelve_until_unix_ms: Option<u64>,
    /// Who issued it (for people and the status record).
    pub issued_by: String,
    /// When it was made, ms since the Unix epoch.
    pub created_unix_ms: u64,
}

impl CommandBody {
    /// The body's bytes: what is signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a command body serialises")
    }
}

/// A command as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRecord {
    /// [`FEEDBACK_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Always `command`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always [`COMMAND_FORMAT`].
    pub format: String,
    /// The body's JSON bytes, base64.
    pub body: String,
    /// Ed25519 signatures over the body's bytes.
    #[serde(default)]
    pub signatures: Vec<SignatureEntry>,
}

impl CommandRecord {
    /// An unsigned command around `body`.
    pub fn new(body: &CommandBody) -> Self {
        Self {
            schema_version: FEEDBACK_SCHEMA_VERSION,
            kind: "command".into(),
            format: COMMAND_FORMAT.into(),
            body: B64.encode(body.to_bytes()),
            signatures: Vec::new(),
        }
    }

    /// Adds `key`'s signature over the body.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), Refusal> {
        let body = self.body_bytes()?;
        package::add_signature(&mut self.signatures, key, &body);
        Ok(())
    }

    /// The body's bytes.
    pub fn body_bytes(&self) -> Result<Vec<u8>, Refusal> {
        B64.decode(&self.body)
            .map_err(|e| Refusal::Malformed(format!("body is not base64: {e}")))
    }

    /// The body, parsed (no signature checked).
    pub fn parse_body(&self) -> Result<CommandBody, Refusal> {
        serde_json::from_slice(&self.body_bytes()?)
            .map_err(|e| Refusal::Malformed(format!("body: {e}")))
    }

    /// The record's bytes (one line of JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a command serialises")
    }
}

/// What a label says (the `label` field and the fields that go with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "label", rename_all = "snake_case")]
pub enum LabelKind {
    /// The alert was right; `fault` is the class found.
    AlertConfirmed {
        /// The alert's id.
        alert_id: String,
        /// The class found on the machine.
        fault: String,
    },
    /// A false alarm: the machine was `normal`.
    AlertRejected {
        /// The alert's id.
        alert_id: String,
    },
    /// Maintenance was done.
    Maintenance {
        /// When, ms since the Unix epoch.
        at_unix_ms: u64,
        /// What was done.
        action: String,
    },
    /// The machine's true state over a time range.
    AssetState {
        /// From, ms since the Unix epoch.
        from_unix_ms: u64,
        /// To, ms since the Unix epoch.
        to_unix_ms: u64,
        /// A class name.
        state: String,
    },
}

/// An operator's label, for the central store (the agent skips labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// [`FEEDBACK_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Always `label`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 32 lowercase hex digits.
    pub feedback_id: String,
    /// When it was made, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// Who labelled.
    pub operator: String,
    /// The asset.
    pub asset_id: String,
    /// The agent that watches the asset, when known.
    pub agent_id: Option<String>,
    /// What the label says.
    #[serde(flatten)]
    pub label: LabelKind,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a feedback record is refused. None is worth retrying with the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a feedback record this agent reads.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The signature does not stand.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// A shelve whose end has passed.
    #[error("the shelve ended at {until_unix_ms}, before it arrived ({now_unix_ms})")]
    Expired {
        /// Its end.
        until_unix_ms: u64,
        /// When it arrived.
        now_unix_ms: u64,
    },
    /// The asset is not one of this agent's.
    #[error("asset `{0}` is not monitored by this agent")]
    UnknownAsset(String),
    /// Made longer ago than `[feedback] max_command_age_s` when it arrived.
    #[error("made at {created_unix_ms}, too long before it arrived ({now_unix_ms})")]
    Stale {
        /// When it was made.
        created_unix_ms: u64,
        /// When it arrived.
        now_unix_ms: u64,
    },
}

impl Refusal {
    /// Short code for metrics and status records.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Signature(s) => s.reason(),
            Self::Expired { .. } => "expired",
            Self::UnknownAsset(_) => "unknown_asset",
            Self::Stale { .. } => "stale",
        }
    }

    /// Every reason code, for metrics that must exist before the first refusal.
    pub const REASONS: [&'static str; 7] = [
        "malformed",
        "unsigned",
        "untrusted_key",
        "bad_signature",
        "expired",
        "unknown_asset",
        "stale",
    ];
}

/// A command whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The body.
    pub body: CommandBody,
    /// The trusted key that signed it.
    pub key_id: String,
}

/// What to do with one record of the feedback topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triage {
    /// A label: for the central store, skipped here.
    Label,
    /// A command for another agent (by its unverified body: a forged addressee only makes
    /// this agent skip a command that was not for it).
    NotAddressed,
    /// A command for this agent, signed by a trusted key: act on it.
    Act(Verified),
    /// Refused before acting; the command's id, action and asset when they could be read.
    Refused {
        /// Why.
        refusal: Refusal,
        /// The unverified body, when it parsed.
        body: Option<CommandBody>,
    },
}

fn is_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Sorts one record's bytes: a label, a command for another agent, a verified command for
/// `agent_id` (signed by one of `trusted`), or a refusal.
pub fn triage(bytes: &[u8], agent_id: &str, trusted: &[VerifyingKey]) -> Triage {
    let refused = |refusal, body| Triage::Refused { refusal, body };
    if bytes.len() > MAX_RECORD_BYTES {
        return refused(
            Refusal::Malformed(format!(
                "{} bytes, over the {MAX_RECORD_BYTES}-byte limit",
                bytes.len()
            )),
            None,
        );
    }
    #[derive(Deserialize)]
    struct Head {
        schema_version: Option<serde_json::Value>,
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    let head: Head = match serde_json::from_slice(bytes) {
        Ok(h) => h,
        Err(e) => return refused(Refusal::Malformed(format!("not a JSON object: {e}")), None),
    };
    if head.schema_version != Some(FEEDBACK_SCHEMA_VERSION.into()) {
        return refused(
            Refusal::Malformed(format!(
                "schema_version {} (this agent reads {FEEDBACK_SCHEMA_VERSION})",
                head.schema_version
                    .map_or("missing".into(), |v| v.to_string())
            )),
            None,
        );
    }
    match head.kind.as_ref().and_then(|k| k.as_str()) {
        Some("label") => return Triage::Label,
        Some("command") => {}
        other => {
            return refused(
                Refusal::Malformed(format!(
                    "type {}: neither `label` nor `command`",
                    other.unwrap_or("missing")
                )),
                None,
            );
        }
    }
    let record: CommandRecord = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => return refused(Refusal::Malformed(format!("command: {e}")), None),
    };
    let body = record.parse_body().ok();
    if let Some(b) = &body
        && b.agent_id != agent_id
    {
        return Triage::NotAddressed;
    }
    match verify(&record, trusted) {
        Ok(v) => Triage::Act(v),
        Err(refusal) => refused(refusal, body),
    }
}

/// Checks a command's format, signature (by one of `trusted`) and body.
pub fn verify(record: &CommandRecord, trusted: &[VerifyingKey]) -> Result<Verified, Refusal> {
    if record.format != COMMAND_FORMAT {
        return Err(Refusal::Malformed(format!(
            "format is `{}`, not `{COMMAND_FORMAT}`",
            record.format
        )));
    }
    let body_bytes = record.body_bytes()?;
    let key_id = package::verify_signatures(&body_bytes, &record.signatures, trusted)?;
    let body: CommandBody = serde_json::from_slice(&body_bytes)
        .map_err(|e| Refusal::Malformed(format!("body: {e}")))?;
    if !is_id(&body.command_id) {
        return Err(Refusal::Malformed(format!(
            "command_id `{}` is not 32 lowercase hex digits",
            body.command_id
        )));
    }
    if body.action == Action::Shelve && body.shelve_until_unix_ms.is_none() {
        return Err(Refusal::Malformed(
            "a shelve without shelve_until_unix_ms".into(),
        ));
    }
    Ok(Verified { body, key_id })
}

/// A fresh random id (128 bits, lowercase hex): a command's or a label's.
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(agent: &str, action: Action) -> CommandBody {
        CommandBody {
            command_id: "0123456789abcdef0123456789abcdef".into(),
            agent_id: agent.into(),
            asset_id: "pump-1".into(),
            action,
            shelve_until_unix_ms: (action == Action::Shelve).then_some(10_000),
            issued_by: "j.doe".into(),
            created_unix_ms: 1,
        }
    }

    fn signed(b: &CommandBody, key: Option<&SigningKey>) -> Vec<u8> {
        let mut r = CommandRecord::new(b);
        if let Some(k) = key {
            r.sign(k).unwrap();
        }
        r.to_bytes()
    }

    fn reason(t: Triage) -> &'static str {
        match t {
            Triage::Refused { refusal, .. } => refusal.reason(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_command_signed_by_a_trusted_key_for_this_agent_is_to_be_acted_on() {
        let key = package::generate_key();
        let b = body("gw-1", Action::Shelve);
        match triage(&signed(&b, Some(&key)), "gw-1", &[key.verifying_key()]) {
            Triage::Act(v) => {
                assert_eq!(v.body, b);
                assert_eq!(v.key_id, package::key_id(&key.verifying_key()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn labels_and_commands_for_other_agents_are_skipped_not_refused() {
        let label = Label {
            schema_version: 1,
            kind: "label".into(),
            feedback_id: new_id(),
            created_unix_ms: 1,
            operator: "j.doe".into(),
            asset_id: "pump-1".into(),
            agent_id: Some("gw-1".into()),
            label: LabelKind::AlertConfirmed {
                alert_id: "a-1".into(),
                fault: "outer".into(),
            },
            note: Some("spall on outer race".into()),
        };
        let bytes = serde_json::to_vec(&label).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["label"], "alert_confirmed");
        assert_eq!(v["fault"], "outer");
        assert_eq!(triage(&bytes, "gw-1", &[]), Triage::Label);
        let key = package::generate_key();
        let other = signed(&body("gw-2", Action::Recommission), Some(&key));
        assert_eq!(
            triage(&other, "gw-1", &[key.verifying_key()]),
            Triage::NotAddressed
        );
    }

    #[test]
    fn unsigned_untrusted_altered_and_garbage_records_are_refused_with_their_reason() {
        let key = package::generate_key();
        let stranger = package::generate_key();
        let trusted = [key.verifying_key()];
        let b = body("gw-1", Action::Recommission);
        assert_eq!(
            reason(triage(&signed(&b, None), "gw-1", &trusted)),
            "unsigned"
        );
        let t = triage(&signed(&b, Some(&stranger)), "gw-1", &trusted);
        assert_eq!(
            t,
            Triage::Refused {
                refusal: Refusal::Signature(SignatureError::UntrustedKey(package::key_id(
                    &stranger.verifying_key()
                ))),
                body: Some(b.clone()),
            },
            "the refusal names the command it refuses"
        );
        // The body changed after signing: another asset.
        let mut r: CommandRecord = serde_json::from_slice(&signed(&b, Some(&key))).unwrap();
        let mut changed = b.clone();
        changed.asset_id = "pump-2".into();
        r.body = B64.encode(changed.to_bytes());
        assert_eq!(
            reason(triage(&r.to_bytes(), "gw-1", &trusted)),
            "bad_signature"
        );
        for garbage in [
            &b"\x00\x01 not json"[..],
            b"[1, 2]",
            b"{\"schema_version\": 2, \"type\": \"command\"}",
            b"{\"schema_version\": 1, \"type\": \"order\"}",
            b"{\"schema_version\": 1, \"type\": \"command\", \"body\": 5}",
        ] {
            assert_eq!(reason(triage(garbage, "gw-1", &trusted)), "malformed");
        }
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        assert_eq!(reason(triage(&huge, "gw-1", &trusted)), "malformed");
        // Signed, but not a command this agent can act on.
        let mut bad_id = b.clone();
        bad_id.command_id = "x".into();
        assert_eq!(
            reason(triage(&signed(&bad_id, Some(&key)), "gw-1", &trusted)),
            "malformed"
        );
        let mut no_end = body("gw-1", Action::Shelve);
        no_end.shelve_until_unix_ms = None;
        assert_eq!(
            reason(triage(&signed(&no_end, Some(&key)), "gw-1", &trusted)),
            "malformed"
        );
    }

    proptest::proptest! {
        /// Whatever arrives on the feedback topic, the agent never acts on it without a trusted
        /// signature and never panics: bytes, JSON of the right shape with any body, any
        /// signature.
        #[test]
        fn no_record_is_acted_on_without_a_trusted_signature(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            signature in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
        ) {
            use base64::Engine as _;
            let trusted = [crate::analyze::lifecycle::package::generate_key().verifying_key()];
            let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
            let shaped = serde_json::json!({
                "schema_version": 1, "type": "command", "format": "edgewatch-command",
                "body": b64(&body),
                "signatures": [{"key_id": "x", "public_key": b64(trusted[0].as_bytes()),
                                "signature": b64(&signature)}],
            });
            // A well-formed command for this agent under the same random signature: only the
            // signature check stands between it and the analysis thread.
            let mut valid = shaped.clone();
            valid["body"] = b64(&self::body("gw-1", Action::Recommission).to_bytes()).into();
            for input in [
                bytes,
                serde_json::to_vec(&shaped).unwrap(),
                serde_json::to_vec(&valid).unwrap(),
            ] {
                let t = triage(&input, "gw-1", &trusted);
                proptest::prop_assert!(!matches!(t, Triage::Act(_)));
            }
        }
    }
}
