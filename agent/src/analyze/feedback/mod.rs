//! Feedback to the edge: operators' commands from the feedback topic, acted on in the
//! analysis thread (docs/feedback-loop.md).
//!
//! - [`record`]: the topic's records (labels, signed commands) and their checks, pure.
//! - [`Commands`] (here): the analysis thread's side. It acts on a verified command between
//!   two windows, in order: `recommission` starts the asset's commissioning again
//!   ([`Scorer::recommission`]), `shelve` holds the asset's alert raises and escalations until
//!   a wall-clock time (an active alert is cleared, naming who shelved it until when).
//! - [`consumer`]: the Kafka consumer of the feedback topic (a thread): it reads, triages,
//!   hands commands here, reports each outcome, and commits the record's offset only once the
//!   outcome is durable.
//!
//! # Invariants
//!
//! - Once per command: every `command_id` acted on is kept (the newest [`KEEP_IDS`]) in
//!   `<data_dir>/feedback/commands.json` with the shelves in force, written atomically before
//!   the outcome is reported; the same id again is a `duplicate` and changes nothing, across
//!   restarts too. A crash between acting and writing acts again on the re-read command, which
//!   both actions tolerate (they set a state, they do not toggle one).
//! - Time is an input: a shelve ends at the first window or command at or after its end
//!   ([`Commands::poll`]).
//! - Every command and every refused record gives one [`CommandStatus`]: applied, duplicate,
//!   or refused with a reason code.

pub mod consumer;
pub mod record;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::analyze::alert::AlertEvent;
use crate::analyze::scoring::Scorer;
use record::{Action, CommandBody, Refusal};

/// How many applied command ids are kept (newest first out last): far more than a plant
/// sends to one gateway between two reads of the topic.
pub const KEEP_IDS: usize = 4096;

/// `[feedback]`: commands and labels from the feedback topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackConfig {
    /// Whether to read the feedback topic; default: when `[kafka]` is configured.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The feedback topic (after `[kafka] topic_prefix`).
    #[serde(default = "FeedbackConfig::default_topic")]
    pub topic: String,
    /// Public key files (`lab model keygen`) whose signatures on commands are accepted.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// A command older than this when it arrives (by its `created_unix_ms`) is refused as
    /// `stale`, s: a topic read again from an old offset, or a command held back for days,
    /// must not re-commission a machine or shelve its alerts long after it was meant.
    #[serde(default = "FeedbackConfig::default_max_command_age_s")]
    pub max_command_age_s: f64,
}

impl FeedbackConfig {
    /// `"feedback"`.
    pub fn default_topic() -> String {
        "feedback".into()
    }

    /// 7 days: longer than the outbox and the consumer keep anything waiting, shorter than
    /// the time after which the same words would mean another repair.
    pub const fn default_max_command_age_s() -> f64 {
        604_800.0
    }

    /// Whether the topic is read, given whether `[kafka]` is configured.
    pub fn is_enabled(&self, kafka: bool) -> bool {
        self.enabled.unwrap_or(kafka)
    }
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            topic: Self::default_topic(),
            trusted_keys: Vec::new(),
            max_command_age_s: Self::default_max_command_age_s(),
        }
    }
}

/// What the feedback side needs of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandsConfig {
    /// `[agent] id`: commands for other agents are skipped.
    pub agent_id: String,
    /// `[feedback] trusted_keys`, read.
    pub trusted_keys: Vec<VerifyingKey>,
    /// The configured assets: a command about another one is refused.
    pub assets: Vec<String>,
    /// `<data_dir>/feedback`; `None`: nothing kept across restarts.
    pub state_dir: Option<PathBuf>,
    /// `[feedback] max_command_age_s`, ms.
    pub max_age_ms: u64,
}

/// `applied`, `duplicate` or `refused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acted on.
    Applied,
    /// Acted on before: nothing done.
    Duplicate,
    /// Not acted on; `reason` says why.
    Refused,
}

impl Outcome {
    /// The name in records and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Refused => "refused",
        }
    }
}

/// What became of one command or refused record: the body of a command-status record
/// (`schemas/edgewatch.command-status.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandStatus {
    /// The command's id; `None` when it could not be read.
    pub command_id: Option<String>,
    /// What it asked for, when it could be read.
    pub action: Option<Action>,
    /// The asset (the record's `asset_id`), when it could be read.
    #[serde(skip)]
    pub asset_id: Option<String>,
    /// What became of it.
    pub result: Outcome,
    /// For a refusal, its reason code ([`Refusal::REASONS`]); `None` otherwise.
    pub reason: Option<&'static str>,
    /// One sentence for people.
    pub detail: String,
    /// Where it came from: `kafka:<topic>/<partition>@<offset>`.
    pub source: String,
    /// Who issued it, when it could be read.
    pub issued_by: Option<String>,
    /// For a shelve, its end, ms since the Unix epoch.
    pub shelve_until_unix_ms: Option<u64>,
    /// When the agent decided, ms since the Unix epoch.
    pub at_unix_ms: u64,
}

impl CommandStatus {
    /// The status of a record refused before it reached the analysis thread (or in it).
    pub fn refused(
        refusal: &Refusal,
        body: Option<&CommandBody>,
        source: &str,
        at_unix_ms: u64,
    ) -> Self {
        Self {
            command_id: body.map(|b| b.command_id.clone()),
            action: body.map(|b| b.action),
            asset_id: body.map(|b| b.asset_id.clone()),
            result: Outcome::Refused,
            reason: Some(refusal.reason()),
            detail: refusal.to_string(),
            source: source.to_string(),
            issued_by: body.map(|b| b.issued_by.clone()),
            shelve_until_unix_ms: body.and_then(shelve_until),
            at_unix_ms,
        }
    }

    /// Logs and counts it (once it is durable).
    pub fn emit(&self) {
        metrics::counter!("edgewatch_feedback_commands_total", "result" => self.result.as_str())
            .increment(1);
        let action = self.action.map_or("unknown", Action::as_str);
        match self.result {
            Outcome::Applied => {
                metrics::counter!("edgewatch_commands_applied_total", "action" => action)
                    .increment(1);
                tracing::info!(
                    command_id = self.command_id.as_deref().unwrap_or_default(),
                    action,
                    asset = self.asset_id.as_deref().unwrap_or_default(),
                    source = %self.source,
                    "command applied: {}",
                    self.detail
                );
            }
            Outcome::Duplicate => tracing::info!(
                command_id = self.command_id.as_deref().unwrap_or_default(),
                action,
                source = %self.source,
                "command already applied: nothing done"
            ),
            Outcome::Refused => {
                let reason = self.reason.unwrap_or("unknown");
                metrics::counter!("edgewatch_feedback_refused_total", "reason" => reason)
                    .increment(1);
                tracing::warn!(
                    command_id = self.command_id.as_deref().unwrap_or("none"),
                    action,
                    reason,
                    source = %self.source,
                    "feedback record refused: {}",
                    self.detail
                );
            }
        }
    }
}

fn shelve_until(b: &CommandBody) -> Option<u64> {
    (b.action == Action::Shelve)
        .then_some(b.shelve_until_unix_ms)
        .flatten()
}

/// What acting on a command gave: its status, and the alert a shelve cleared.
#[derive(Debug, Clone)]
pub struct Acted {
    /// To report on the command-status topic.
    pub status: CommandStatus,
    /// An active alert the shelve cleared: to report on the alerts topic.
    pub cleared: Option<AlertEvent>,
}

/// What a command acts on: the scorer, or a fake in tests.
pub trait Target {
    /// Starts commissioning `asset` again.
    fn recommission(&mut self, asset: &str);
    /// Holds `asset`'s alerts; returns the event of an active alert it cleared.
    fn shelve(&mut self, asset: &str, reason: &str, now_ms: u64) -> Option<AlertEvent>;
    /// Ends the hold.
    fn unshelve(&mut self, asset: &str);
}

impl Target for Scorer {
    fn recommission(&mut self, asset: &str) {
        Scorer::recommission(self, asset);
    }
    fn shelve(&mut self, asset: &str, reason: &str, now_ms: u64) -> Option<AlertEvent> {
        Scorer::shelve(self, asset, reason, now_ms)
    }
    fn unshelve(&mut self, asset: &str) {
        Scorer::unshelve(self, asset);
    }
}

/// One command acted on, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedCommand {
    /// Its id.
    pub command_id: String,
    /// What it did.
    pub action: Action,
    /// To which asset.
    pub asset_id: String,
    /// When, ms since the Unix epoch.
    pub at_unix_ms: u64,
}

/// A shelve in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shelf {
    /// Its end, ms since the Unix epoch.
    pub until_unix_ms: u64,
    /// Who issued it.
    pub issued_by: String,
    /// The command.
    pub command_id: String,
}

/// Version of `commands.json`.
const STATE_FORMAT: u32 = 1;

/// What `<data_dir>/feedback/commands.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Always [`STATE_FORMAT`].
    pub format: u32,
    /// The commands acted on, oldest first, at most [`KEEP_IDS`].
    pub applied: VecDeque<AppliedCommand>,
    /// The shelves in force, by asset.
    pub shelves: BTreeMap<String, Shelf>,
}

/// `ms` since the Unix epoch as UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// The analysis thread's side of the feedback loop.
#[derive(Debug)]
pub struct Commands {
    cfg: CommandsConfig,
    state: State,
}

impl Commands {
    /// The state kept in `cfg.state_dir` (none, or unreadable: empty, said in the log), and
    /// its shelves still in force at `now_unix_ms` put on `target`.
    pub fn start(cfg: CommandsConfig, target: &mut dyn Target, now_unix_ms: u64) -> Self {
        let state = match cfg.state_dir.as_ref().map(|d| d.join("commands.json")) {
            None => State::default(),
            Some(path) => match std::fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                    Ok(s) if s.format == STATE_FORMAT => s,
                    other => {
                        let why = other
                            .map_or_else(|e| e.to_string(), |s| format!("format {}", s.format));
                        tracing::error!(path = %path.display(), error = %why, "feedback state unreadable: set aside, starting without it (commands may be acted on again)");
                        let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                        State::default()
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "feedback state unreadable");
                    State::default()
                }
            },
        };
        let mut c = Self { cfg, state };
        c.state.format = STATE_FORMAT;
        for (asset, shelf) in &c.state.shelves {
            if shelf.until_unix_ms > now_unix_ms {
                tracing::info!(
                    asset,
                    until = %utc(shelf.until_unix_ms),
                    by = %shelf.issued_by,
                    "shelve resumed"
                );
                // Nothing can be active: the shelve cleared it and nothing was raised since.
                let _ = target.shelve(asset, &shelf_reason(shelf), 0);
            }
        }
        c.poll(target, now_unix_ms);
        c
    }

    /// The configuration.
    pub fn config(&self) -> &CommandsConfig {
        &self.cfg
    }

    /// The kept state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether `asset` is shelved at `now_unix_ms`.
    pub fn is_shelved(&self, asset: &str, now_unix_ms: u64) -> bool {
        self.state
            .shelves
            .get(asset)
            .is_some_and(|s| s.until_unix_ms > now_unix_ms)
    }

    /// Ends the shelves whose time has come at `now_unix_ms`.
    pub fn poll(&mut self, target: &mut dyn Target, now_unix_ms: u64) {
        let ended: Vec<String> = self
            .state
            .shelves
            .iter()
            .filter(|(_, s)| s.until_unix_ms <= now_unix_ms)
            .map(|(a, _)| a.clone())
            .collect();
        for asset in &ended {
            if let Some(s) = self.state.shelves.remove(asset) {
                target.unshelve(asset);
                tracing::info!(
                    asset,
                    by = %s.issued_by,
                    until = %utc(s.until_unix_ms),
                    "shelve ended: the asset's alerts are judged again"
                );
            }
        }
        if !ended.is_empty() {
            self.save();
        }
        metrics::gauge!("edgewatch_feedback_shelved_assets").set(self.state.shelves.len() as f64);
    }

    /// Acts on a verified command from `source` at wall-clock `now_unix_ms` (agent clock
    /// `now_ms`, for an alert it clears).
    pub fn act(
        &mut self,
        cmd: &CommandBody,
        source: &str,
        target: &mut dyn Target,
        now_unix_ms: u64,
        now_ms: u64,
    ) -> Acted {
        self.poll(target, now_unix_ms);
        let status = |result, reason: Option<&'static str>, detail: String| CommandStatus {
            command_id: Some(cmd.command_id.clone()),
            action: Some(cmd.action),
            asset_id: Some(cmd.asset_id.clone()),
            result,
            reason,
            detail,
            source: source.to_string(),
            issued_by: Some(cmd.issued_by.clone()),
            shelve_until_unix_ms: shelve_until(cmd),
            at_unix_ms: now_unix_ms,
        };
        let done = |status| Acted {
            status,
            cleared: None,
        };
        if let Some(before) = self
            .state
            .applied
            .iter()
            .find(|a| a.command_id == cmd.command_id)
        {
            return done(status(
                Outcome::Duplicate,
                None,
                format!(
                    "applied before, at {}: nothing done",
                    utc(before.at_unix_ms)
                ),
            ));
        }
        let refuse = |r: Refusal| done(CommandStatus::refused(&r, Some(cmd), source, now_unix_ms));
        if now_unix_ms.saturating_sub(cmd.created_unix_ms) > self.cfg.max_age_ms {
            return refuse(Refusal::Stale {
                created_unix_ms: cmd.created_unix_ms,
                now_unix_ms,
            });
        }
        if !self.cfg.assets.contains(&cmd.asset_id) {
            return refuse(Refusal::UnknownAsset(cmd.asset_id.clone()));
        }
        let mut cleared = None;
        let detail = match cmd.action {
            Action::Recommission => {
                target.recommission(&cmd.asset_id);
                tracing::warn!(
                    asset = %cmd.asset_id,
                    by = %cmd.issued_by,
                    command_id = %cmd.command_id,
                    "recommissioning on command: the baseline and the health references are learned again"
                );
                "commissioning started again: the baseline and the sensors' health references are learned anew".to_string()
            }
            Action::Shelve => {
                let until = cmd.shelve_until_unix_ms.unwrap_or_default();
                if until <= now_unix_ms {
                    return refuse(Refusal::Expired {
                        until_unix_ms: until,
                        now_unix_ms,
                    });
                }
                let shelf = Shelf {
                    until_unix_ms: until,
                    issued_by: cmd.issued_by.clone(),
                    command_id: cmd.command_id.clone(),
                };
                cleared = target.shelve(&cmd.asset_id, &shelf_reason(&shelf), now_ms);
                self.state.shelves.insert(cmd.asset_id.clone(), shelf);
                metrics::gauge!("edgewatch_feedback_shelved_assets")
                    .set(self.state.shelves.len() as f64);
                format!(
                    "no alert raised or escalated until {}{}",
                    utc(until),
                    match &cleared {
                        Some(a) => format!("; active alert {} cleared", a.id),
                        None => String::new(),
                    }
                )
            }
        };
        self.state.applied.push_back(AppliedCommand {
            command_id: cmd.command_id.clone(),
            action: cmd.action,
            asset_id: cmd.asset_id.clone(),
            at_unix_ms: now_unix_ms,
        });
        while self.state.applied.len() > KEEP_IDS {
            self.state.applied.pop_front();
        }
        self.save();
        Acted {
            status: status(Outcome::Applied, None, detail),
            cleared,
        }
    }

    fn save(&self) {
        let Some(dir) = &self.cfg.state_dir else {
            return;
        };
        let path = dir.join("commands.json");
        let bytes = serde_json::to_vec(&self.state).expect("the feedback state serialises");
        if let Err(e) = crate::analyze::persist::write_atomically(&path, &bytes) {
            tracing::error!(path = %path.display(), error = %e, "cannot persist the feedback state: a restart may act on these commands again");
            metrics::counter!("edgewatch_feedback_state_write_errors_total").increment(1);
        }
    }
}

fn shelf_reason(s: &Shelf) -> String {
    format!(
        "shelved by {} until {} (command {})",
        s.issued_by,
        utc(s.until_unix_ms),
        s.command_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::alert::{Finding, Level, Transition};

    /// Records what was asked of it; has an active alert on `pump-1` until shelved.
    #[derive(Debug, Default)]
    struct Fake {
        calls: Vec<String>,
        active: bool,
    }

    impl Target for Fake {
        fn recommission(&mut self, asset: &str) {
            self.calls.push(format!("recommission {asset}"));
        }
        fn shelve(&mut self, asset: &str, reason: &str, now_ms: u64) -> Option<AlertEvent> {
            self.calls.push(format!("shelve {asset}"));
            std::mem::take(&mut self.active).then(|| AlertEvent {
                id: "a-1".into(),
                asset: asset.into(),
                transition: Transition::Cleared,
                level: Level::Warning,
                at_ms: now_ms,
                window_start_us: 0,
                window_end_us: 0,
                sensor_id: 1,
                finding: Finding {
                    kind: "outer".into(),
                    reason: reason.into(),
                    class: None,
                    probability: None,
                    model_version: None,
                    anomaly_score: None,
                    top_features: Vec::new(),
                    bearing_line: ("BPFO".into(), 0.0, 0.0),
                    velocity_rms_mm_s: 0.0,
                    zone: crate::analyze::features::SeverityZone::A,
                    temperature_c: None,
                    decided_by: String::new(),
                    line_scores: Vec::new(),
                    health: None,
                },
                inputs: Vec::new(),
            })
        }
        fn unshelve(&mut self, asset: &str) {
            self.calls.push(format!("unshelve {asset}"));
        }
    }

    fn cfg(dir: Option<&std::path::Path>) -> CommandsConfig {
        CommandsConfig {
            agent_id: "gw-1".into(),
            trusted_keys: Vec::new(),
            assets: vec!["pump-1".into(), "fan-1".into()],
            state_dir: dir.map(|d| d.join("feedback")),
            max_age_ms: 86_400_000,
        }
    }

    fn cmd(id: u128, action: Action, until: Option<u64>) -> CommandBody {
        CommandBody {
            command_id: format!("{id:032x}"),
            agent_id: "gw-1".into(),
            asset_id: "pump-1".into(),
            action,
            shelve_until_unix_ms: until,
            issued_by: "j.doe".into(),
            created_unix_ms: 0,
        }
    }

    #[test]
    fn a_command_is_applied_once_and_its_repeat_is_a_duplicate_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake::default();
        let mut c = Commands::start(cfg(Some(dir.path())), &mut fake, 0);
        let r = cmd(1, Action::Recommission, None);
        let first = c.act(&r, "kafka:f/0@0", &mut fake, 1_000, 1);
        assert_eq!(first.status.result, Outcome::Applied);
        assert_eq!(first.status.reason, None);
        assert_eq!(fake.calls, ["recommission pump-1"]);
        let again = c.act(&r, "kafka:f/0@1", &mut fake, 2_000, 2);
        assert_eq!(again.status.result, Outcome::Duplicate);
        assert_eq!(fake.calls.len(), 1, "nothing done the second time");
        drop(c);
        let mut fake = Fake::default();
        let mut c = Commands::start(cfg(Some(dir.path())), &mut fake, 3_000);
        let after = c.act(&r, "kafka:f/0@0", &mut fake, 3_000, 0);
        assert_eq!(after.status.result, Outcome::Duplicate);
        assert!(fake.calls.is_empty());
        assert!(
            after.status.detail.contains("1970-01-01T00:00:01.000Z"),
            "{}",
            after.status.detail
        );
    }

    #[test]
    fn the_kept_ids_are_bounded_and_the_oldest_go_first() {
        let mut fake = Fake::default();
        let mut c = Commands::start(cfg(None), &mut fake, 0);
        for i in 0..(KEEP_IDS as u128 + 10) {
            c.act(&cmd(i, Action::Recommission, None), "t", &mut fake, 1, 1);
        }
        assert_eq!(c.state().applied.len(), KEEP_IDS);
        assert_eq!(c.state().applied[0].command_id, format!("{:032x}", 10));
    }

    #[test]
    fn a_shelve_clears_the_active_alert_holds_until_its_end_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut fake = Fake {
            active: true,
            ..Fake::default()
        };
        let mut c = Commands::start(cfg(Some(dir.path())), &mut fake, 0);
        let s = cmd(7, Action::Shelve, Some(60_000));
        let acted = c.act(&s, "kafka:f/0@3", &mut fake, 1_000, 5);
        assert_eq!(acted.status.result, Outcome::Applied);
        assert_eq!(acted.status.shelve_until_unix_ms, Some(60_000));
        let cleared = acted.cleared.expect("the active alert is cleared");
        assert!(
            cleared
                .finding
                .reason
                .starts_with("shelved by j.doe until 1970-01-01T00:01:00.000Z"),
            "{}",
            cleared.finding.reason
        );
        assert!(c.is_shelved("pump-1", 59_999));
        drop(c);
        // Restarted before its end: the shelve is put back.
        let mut fake = Fake::default();
        let mut c = Commands::start(cfg(Some(dir.path())), &mut fake, 30_000);
        assert_eq!(fake.calls, ["shelve pump-1"]);
        c.poll(&mut fake, 59_999);
        assert_eq!(fake.calls.len(), 1);
        c.poll(&mut fake, 60_000);
        assert_eq!(fake.calls, ["shelve pump-1", "unshelve pump-1"]);
        assert!(!c.is_shelved("pump-1", 60_000));
        drop(c);
        // Restarted after its end: not put back, and the command is still a duplicate.
        let mut fake = Fake::default();
        let mut c = Commands::start(cfg(Some(dir.path())), &mut fake, 90_000);
        assert!(fake.calls.is_empty());
        let again = c.act(&s, "kafka:f/0@3", &mut fake, 90_000, 0);
        assert_eq!(again.status.result, Outcome::Duplicate);
    }

    #[test]
    fn an_expired_shelve_and_an_unknown_asset_are_refused_and_not_remembered() {
        let mut fake = Fake::default();
        let mut c = Commands::start(cfg(None), &mut fake, 0);
        let late = cmd(1, Action::Shelve, Some(1_000));
        let r = c.act(&late, "t", &mut fake, 1_000, 0);
        assert_eq!(
            (r.status.result, r.status.reason),
            (Outcome::Refused, Some("expired"))
        );
        let mut elsewhere = cmd(2, Action::Recommission, None);
        elsewhere.asset_id = "press-9".into();
        let r = c.act(&elsewhere, "t", &mut fake, 1_000, 0);
        assert_eq!(r.status.reason, Some("unknown_asset"));
        assert!(fake.calls.is_empty());
        assert!(c.state().applied.is_empty());
        // Refused is not remembered: a corrected command with the same id is acted on.
        let mut fixed = late.clone();
        fixed.shelve_until_unix_ms = Some(5_000);
        assert_eq!(
            c.act(&fixed, "t", &mut fake, 1_000, 0).status.result,
            Outcome::Applied
        );
    }

    #[test]
    fn a_command_made_longer_ago_than_the_age_limit_is_refused_as_stale() {
        let mut fake = Fake::default();
        let mut c = Commands::start(cfg(None), &mut fake, 0);
        let old = cmd(3, Action::Recommission, None);
        // Made at 0; the limit is a day: one day later it is still taken, a moment after,
        // not.
        let day = 86_400_000;
        let r = c.act(&old, "t", &mut fake, old.created_unix_ms + day + 1, 0);
        assert_eq!(
            (r.status.result, r.status.reason),
            (Outcome::Refused, Some("stale"))
        );
        assert!(fake.calls.is_empty());
        let r = c.act(&old, "t", &mut fake, old.created_unix_ms + day, 0);
        assert_eq!(r.status.result, Outcome::Applied);
        // Once applied, a late repeat is a duplicate, not stale: the answer is about the id.
        let r = c.act(&old, "t", &mut fake, old.created_unix_ms + 10 * day, 0);
        assert_eq!(r.status.result, Outcome::Duplicate);
    }

    #[test]
    fn a_damaged_state_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feedback/commands.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{ not json").unwrap();
        let mut fake = Fake::default();
        let c = Commands::start(cfg(Some(dir.path())), &mut fake, 0);
        assert!(c.state().applied.is_empty());
        assert!(path.with_extension("json.bad").exists());
    }

    #[test]
    fn utc_formats_the_epoch_and_a_leap_day() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }
}
