//! The model lifecycle as one pure state machine: time (wall clock, ms since the Unix epoch)
//! is an input, nothing is read or written here.
//!
//! ```text
//!             accept                 rules pass              watch period passes
//!   Stable ───────────► Shadow ─────────────────► Watch ─────────────────────────► Stable
//!     ▲  ▲                │ rules breached          │ watch rule breached
//!     │  └────────────────┘ (candidate dropped)     │ (previous model active again)
//!     └─────────────────────────────────────────────┘
//! ```
//!
//! - **Shadow**: the candidate classifies every live window beside the active model; its calls
//!   are tallied, never acted on. When the period is over ([`Rules::shadow_windows`] windows
//!   *and* [`Rules::shadow_s`] seconds) the tally is judged ([`Tally::judge`]): pass, the
//!   candidate is promoted; breach, it is dropped.
//! - **Watch**: after a promotion the previous model keeps classifying in the shadow of the
//!   new active one, on the same windows, and the same rules are checked continuously once
//!   [`Rules::watch_min_windows`] windows are in: the first breach rolls back to the previous
//!   model. The watch ends after [`Rules::watch_s`] seconds.
//! - A package accepted during shadow or watch replaces the shadow run (`superseded`) and
//!   starts its own against the model active then.
//! - Every decision (accepted, refused, promoted, rejected, rolled back) records the package's
//!   digest: a package is judged once. A restart resumes the phase with a fresh tally and a
//!   fresh period (the tally is not persisted window by window).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// How many decided packages are remembered (oldest forgotten first). A compacted models
/// topic holds one package per model version; far fewer than this are live at once.
pub const DECIDED_MEMORY: usize = 512;

/// The promotion and rollback rules (`[model.rollout]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Windows the candidate must classify in shadow before it is judged.
    #[serde(default = "Rules::default_shadow_windows")]
    pub shadow_windows: u64,
    /// Seconds the shadow lasts at least.
    #[serde(default = "Rules::default_shadow_s")]
    pub shadow_s: f64,
    /// Of the windows the reference model calls normal, the share the other must call normal
    /// too (0..=1).
    #[serde(default = "Rules::default_min_normal_agreement")]
    pub min_normal_agreement: f64,
    /// Per asset, how far the other model's fault-call share may exceed the reference's (0..=1).
    #[serde(default = "Rules::default_max_fault_rate_increase")]
    pub max_fault_rate_increase: f64,
    /// An asset needs this many windows before its fault-call share is judged.
    #[serde(default = "Rules::default_min_asset_windows")]
    pub min_asset_windows: u64,
    /// Consecutive windows of one asset, without an active alert, on which the other model
    /// calls a fault and the reference does not, that count as the asset newly alerting on the
    /// other model's word alone (a breach). Default 3: the alert engine's default
    /// `raise_after`.
    #[serde(default = "Rules::default_solo_fault_run")]
    pub solo_fault_run: u64,
    /// Seconds the watch after a promotion lasts.
    #[serde(default = "Rules::default_watch_s")]
    pub watch_s: f64,
    /// Windows in watch before the rules are checked.
    #[serde(default = "Rules::default_watch_min_windows")]
    pub watch_min_windows: u64,
}

impl Rules {
    const fn default_shadow_windows() -> u64 {
        600
    }
    const fn default_shadow_s() -> f64 {
        600.0
    }
    const fn default_min_normal_agreement() -> f64 {
        0.95
    }
    const fn default_max_fault_rate_increase() -> f64 {
        0.05
    }
    const fn default_min_asset_windows() -> u64 {
        20
    }
    const fn default_solo_fault_run() -> u64 {
        3
    }
    const fn default_watch_s() -> f64 {
        3600.0
    }
    const fn default_watch_min_windows() -> u64 {
        60
    }

    /// `(field, reason)` for each value that cannot mean anything.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (name, v) in [("shadow_s", self.shadow_s), ("watch_s", self.watch_s)] {
            if !(v.is_finite() && v >= 0.0) {
                out.push((name, format!("{v} is not a duration (s, ≥ 0)")));
            }
        }
        for (name, v) in [
            ("min_normal_agreement", self.min_normal_agreement),
            ("max_fault_rate_increase", self.max_fault_rate_increase),
        ] {
            if !(0.0..=1.0).contains(&v) {
                out.push((name, format!("{v} is not a share between 0 and 1")));
            }
        }
        if self.shadow_windows == 0 {
            out.push(("shadow_windows", "must be at least 1".into()));
        }
        if self.solo_fault_run == 0 {
            out.push(("solo_fault_run", "must be at least 1".into()));
        }
        out
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            shadow_windows: Self::default_shadow_windows(),
            shadow_s: Self::default_shadow_s(),
            min_normal_agreement: Self::default_min_normal_agreement(),
            max_fault_rate_increase: Self::default_max_fault_rate_increase(),
            min_asset_windows: Self::default_min_asset_windows(),
            solo_fault_run: Self::default_solo_fault_run(),
            watch_s: Self::default_watch_s(),
            watch_min_windows: Self::default_watch_min_windows(),
        }
    }
}

/// A model the lifecycle knows: a package (by digest) or the agent's own (built-in or
/// configured manifest: no digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// The model version.
    pub version: String,
    /// The package's digest; `None` for the agent's own model.
    pub digest: Option<String>,
}

/// One asset's tally of paired calls: `reference` is the model whose word is trusted now
/// (the active model in shadow, the previous one in watch), `other` the model under test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssetTally {
    /// Windows with both calls.
    pub windows: u64,
    /// Windows the reference called a fault.
    pub reference_faults: u64,
    /// Windows the other model called a fault.
    pub other_faults: u64,
    /// Windows the reference called normal.
    pub reference_normal: u64,
    /// Of those, the windows the other model called normal too.
    pub both_normal: u64,
    /// The current run of solo fault calls by the other model.
    pub solo_run: u64,
    /// The longest such run.
    pub max_solo_run: u64,
}

/// Paired calls per asset over a shadow or watch period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// By asset.
    pub assets: BTreeMap<String, AssetTally>,
}

/// A judged tally: the figures reported, and what breached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Windows with both calls.
    pub windows: u64,
    /// Share of reference-normal windows the other model called normal (`None`: none).
    pub normal_agreement: Option<f64>,
    /// Fault-call share per asset: `(reference, other)`.
    pub fault_rates: BTreeMap<String, (f64, f64)>,
    /// Longest solo fault run per asset (only assets with one).
    pub solo_runs: BTreeMap<String, u64>,
    /// Each broken rule, in words; empty: the rules pass.
    pub breaches: Vec<String>,
}

impl Tally {
    /// Adds one window of `asset`: whether each model called a fault, and whether the asset
    /// had an active alert after the window.
    pub fn add(&mut self, asset: &str, reference_fault: bool, other_fault: bool, alerting: bool) {
        let t = self.assets.entry(asset.to_string()).or_default();
        t.windows += 1;
        t.reference_faults += u64::from(reference_fault);
        t.other_faults += u64::from(other_fault);
        if !reference_fault {
            t.reference_normal += 1;
            t.both_normal += u64::from(!other_fault);
        }
        if other_fault && !reference_fault && !alerting {
            t.solo_run += 1;
            t.max_solo_run = t.max_solo_run.max(t.solo_run);
        } else {
            t.solo_run = 0;
        }
    }

    /// Windows tallied.
    pub fn windows(&self) -> u64 {
        self.assets.values().map(|t| t.windows).sum()
    }

    /// The figures and the rules' breaches.
    pub fn judge(&self, rules: &Rules) -> Judgement {
        let mut j = Judgement {
            windows: self.windows(),
            ..Judgement::default()
        };
        let (normal, both): (u64, u64) = self.assets.values().fold((0, 0), |(n, b), t| {
            (n + t.reference_normal, b + t.both_normal)
        });
        if normal > 0 {
            let agreement = both as f64 / normal as f64;
            j.normal_agreement = Some(agreement);
            if agreement < rules.min_normal_agreement {
                j.breaches.push(format!(
                    "agrees on {:.1} % of the windows the reference calls normal (rule: ≥ {:.1} %)",
                    100.0 * agreement,
                    100.0 * rules.min_normal_agreement
                ));
            }
        }
        for (asset, t) in &self.assets {
            let n = t.windows.max(1) as f64;
            let (r, o) = (t.reference_faults as f64 / n, t.other_faults as f64 / n);
            j.fault_rates.insert(asset.clone(), (r, o));
            if t.windows >= rules.min_asset_windows && o - r > rules.max_fault_rate_increase {
                j.breaches.push(format!(
                    "{asset}: calls a fault on {:.1} % of windows against {:.1} % (rule: at most \
                     {:.1} points more)",
                    100.0 * o,
                    100.0 * r,
                    100.0 * rules.max_fault_rate_increase
                ));
            }
            if t.max_solo_run > 0 {
                j.solo_runs.insert(asset.clone(), t.max_solo_run);
            }
            if t.max_solo_run >= rules.solo_fault_run {
                j.breaches.push(format!(
                    "{asset}: would alert on its word alone ({} windows in a row; rule: fewer \
                     than {})",
                    t.max_solo_run, rules.solo_fault_run
                ));
            }
        }
        j
    }
}

/// Where the lifecycle is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// One model, nothing under test.
    Stable,
    /// A candidate classifies in the shadow of the active model.
    Shadow {
        /// The candidate.
        candidate: ModelRef,
        /// When the shadow (re)started, ms since the Unix epoch.
        since_unix_ms: u64,
        /// Its tally (reference: the active model).
        #[serde(skip)]
        tally: Tally,
    },
    /// A promoted model is watched against the one it replaced.
    Watch {
        /// When the watch (re)started.
        since_unix_ms: u64,
        /// Its tally (reference: the previous model).
        #[serde(skip)]
        tally: Tally,
    },
}

impl Phase {
    /// `stable`, `shadow` or `watch`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Shadow { .. } => "shadow",
            Self::Watch { .. } => "watch",
        }
    }

    /// Gauge value: 0 stable, 1 shadow, 2 watch.
    pub fn code(&self) -> u8 {
        match self {
            Self::Stable => 0,
            Self::Shadow { .. } => 1,
            Self::Watch { .. } => 2,
        }
    }
}

/// A step of the lifecycle: each is reported (status record, log, metrics); the ones marked
/// *act* tell the driver to change which model runs where.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Transition {
    /// A package addressed to this agent arrived (before its checks).
    Received {
        /// Its model.
        model: ModelRef,
    },
    /// A package was refused by its checks.
    Refused {
        /// Its model.
        model: ModelRef,
        /// The reason code.
        reason_code: String,
        /// The reason in words.
        reason: String,
    },
    /// *Act*: the candidate starts classifying in shadow.
    ShadowStarted {
        /// The candidate (compared with the active model, which every event names).
        model: ModelRef,
        /// Resumed after a restart (its period starts again).
        resumed: bool,
    },
    /// *Act*: a shadow run ended without a decision because a newer package arrived.
    Superseded {
        /// The model whose run ended.
        model: ModelRef,
        /// Its figures so far.
        judgement: Judgement,
    },
    /// *Act*: the shadow period is over and the rules breached: the candidate is dropped.
    ShadowRejected {
        /// The candidate.
        model: ModelRef,
        /// The figures.
        judgement: Judgement,
    },
    /// *Act*: the shadow period is over and the rules passed: the candidate becomes active, the
    /// active model becomes the previous one and is watched against.
    Promoted {
        /// The new active model.
        model: ModelRef,
        /// The model it replaces.
        previous: ModelRef,
        /// The shadow's figures.
        judgement: Judgement,
    },
    /// *Act*: the watch period passed; the previous model stops classifying.
    WatchPassed {
        /// The active model.
        model: ModelRef,
        /// The watch's figures.
        judgement: Judgement,
    },
    /// *Act*: the watch rule breached: the previous model is active again.
    RolledBack {
        /// The model withdrawn.
        model: ModelRef,
        /// The model active again.
        restored: ModelRef,
        /// The watch's figures.
        judgement: Judgement,
    },
}

impl Transition {
    /// The event's name in status records and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Received { .. } => "received",
            Self::Refused { .. } => "refused",
            Self::ShadowStarted { .. } => "shadow_started",
            Self::Superseded { .. } => "superseded",
            Self::ShadowRejected { .. } => "shadow_rejected",
            Self::Promoted { .. } => "promoted",
            Self::WatchPassed { .. } => "watch_passed",
            Self::RolledBack { .. } => "rolled_back",
        }
    }

    /// The model the event is about.
    pub fn model(&self) -> &ModelRef {
        match self {
            Self::Received { model }
            | Self::Refused { model, .. }
            | Self::ShadowStarted { model, .. }
            | Self::Superseded { model, .. }
            | Self::ShadowRejected { model, .. }
            | Self::Promoted { model, .. }
            | Self::WatchPassed { model, .. }
            | Self::RolledBack { model, .. } => model,
        }
    }
}

/// The lifecycle's state: what is active, what came before, the phase, and the decided
/// packages. Serialised as the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// The model whose word counts.
    pub active: ModelRef,
    /// The model before it (kept for rollback and for a fallback at start).
    pub previous: Option<ModelRef>,
    /// Where the lifecycle is.
    pub phase: Phase,
    /// Digests of every package decided on, oldest first.
    pub decided: VecDeque<String>,
}

impl Lifecycle {
    /// A lifecycle running `active`, nothing under test.
    pub fn new(active: ModelRef) -> Self {
        Self {
            active,
            previous: None,
            phase: Phase::Stable,
            decided: VecDeque::new(),
        }
    }

    /// Whether the package `digest` was already decided on (or is active, previous or under
    /// test): then it is not judged again.
    pub fn knows(&self, digest: &str) -> bool {
        let is = |m: &ModelRef| m.digest.as_deref() == Some(digest);
        self.decided.iter().any(|d| d == digest)
            || is(&self.active)
            || self.previous.as_ref().is_some_and(is)
            || matches!(&self.phase, Phase::Shadow { candidate, .. } if is(candidate))
    }

    fn decide(&mut self, digest: Option<&str>) {
        if let Some(d) = digest
            && !self.decided.iter().any(|x| x == d)
        {
            self.decided.push_back(d.to_string());
            while self.decided.len() > DECIDED_MEMORY {
                self.decided.pop_front();
            }
        }
    }

    /// After a restart: the phase starts its period again at `now_unix_ms` with an empty
    /// tally. Returns the shadow's restart (to report) when one resumes.
    pub fn resume(&mut self, now_unix_ms: u64) -> Option<Transition> {
        match &mut self.phase {
            Phase::Stable => None,
            Phase::Shadow {
                candidate,
                since_unix_ms,
                tally,
            } => {
                *since_unix_ms = now_unix_ms;
                *tally = Tally::default();
                Some(Transition::ShadowStarted {
                    model: candidate.clone(),
                    resumed: true,
                })
            }
            Phase::Watch {
                since_unix_ms,
                tally,
            } => {
                *since_unix_ms = now_unix_ms;
                *tally = Tally::default();
                None
            }
        }
    }

    /// A package addressed to this agent arrived and was refused by its checks.
    pub fn refused(&mut self, model: ModelRef, reason_code: &str, reason: &str) -> Vec<Transition> {
        self.decide(model.digest.as_deref());
        vec![
            Transition::Received {
                model: model.clone(),
            },
            Transition::Refused {
                model,
                reason_code: reason_code.to_string(),
                reason: reason.to_string(),
            },
        ]
    }

    /// A package passed its checks at `now_unix_ms`: it goes into shadow (ending a shadow or
    /// watch in progress).
    pub fn accepted(
        &mut self,
        model: ModelRef,
        now_unix_ms: u64,
        rules: &Rules,
    ) -> Vec<Transition> {
        let mut out = vec![Transition::Received {
            model: model.clone(),
        }];
        match std::mem::replace(&mut self.phase, Phase::Stable) {
            Phase::Shadow {
                candidate, tally, ..
            } => {
                // Decided: dropped unjudged, not tried again.
                self.decide(candidate.digest.as_deref());
                out.push(Transition::Superseded {
                    model: candidate,
                    judgement: tally.judge(rules),
                });
            }
            Phase::Watch { tally, .. } => out.push(Transition::WatchPassed {
                model: self.active.clone(),
                judgement: tally.judge(rules),
            }),
            Phase::Stable => {}
        }
        self.decide(model.digest.as_deref());
        self.phase = Phase::Shadow {
            candidate: model.clone(),
            since_unix_ms: now_unix_ms,
            tally: Tally::default(),
        };
        out.push(Transition::ShadowStarted {
            model,
            resumed: false,
        });
        out
    }

    /// One live window of `asset`: whether the active model called a fault, whether the model
    /// running beside it (the candidate in shadow, the previous model in watch) did, and
    /// whether the asset has an active alert after it.
    pub fn window(&mut self, asset: &str, active_fault: bool, beside_fault: bool, alerting: bool) {
        match &mut self.phase {
            Phase::Stable => {}
            Phase::Shadow { tally, .. } => tally.add(asset, active_fault, beside_fault, alerting),
            // The previous model is the reference; the active one is under watch.
            Phase::Watch { tally, .. } => tally.add(asset, beside_fault, active_fault, alerting),
        }
    }

    /// Decisions due at `now_unix_ms` under `rules`.
    pub fn poll(&mut self, now_unix_ms: u64, rules: &Rules) -> Option<Transition> {
        match &self.phase {
            Phase::Stable => None,
            Phase::Shadow {
                candidate,
                since_unix_ms,
                tally,
            } => {
                let elapsed_s = now_unix_ms.saturating_sub(*since_unix_ms) as f64 / 1000.0;
                if tally.windows() < rules.shadow_windows || elapsed_s < rules.shadow_s {
                    return None;
                }
                let judgement = tally.judge(rules);
                let candidate = candidate.clone();
                if judgement.breaches.is_empty() {
                    let previous = std::mem::replace(&mut self.active, candidate.clone());
                    self.previous = Some(previous.clone());
                    self.phase = Phase::Watch {
                        since_unix_ms: now_unix_ms,
                        tally: Tally::default(),
                    };
                    Some(Transition::Promoted {
                        model: candidate,
                        previous,
                        judgement,
                    })
                } else {
                    self.phase = Phase::Stable;
                    Some(Transition::ShadowRejected {
                        model: candidate,
                        judgement,
                    })
                }
            }
            Phase::Watch {
                since_unix_ms,
                tally,
            } => {
                let elapsed_s = now_unix_ms.saturating_sub(*since_unix_ms) as f64 / 1000.0;
                let judged =
                    tally.windows() >= rules.watch_min_windows || elapsed_s >= rules.watch_s;
                if !judged {
                    return None;
                }
                let judgement = tally.judge(rules);
                if tally.windows() >= rules.watch_min_windows && !judgement.breaches.is_empty() {
                    let restored = self.previous.take()?;
                    let withdrawn = std::mem::replace(&mut self.active, restored.clone());
                    self.phase = Phase::Stable;
                    return Some(Transition::RolledBack {
                        model: withdrawn,
                        restored,
                        judgement,
                    });
                }
                if elapsed_s >= rules.watch_s {
                    self.phase = Phase::Stable;
                    return Some(Transition::WatchPassed {
                        model: self.active.clone(),
                        judgement,
                    });
                }
                None
            }
        }
    }

    /// At start, the stored active package could not be used: the previous one (if it can be,
    /// `previous_ok`) or the agent's own model becomes active; the phase is dropped.
    pub fn fall_back(&mut self, to: ModelRef) {
        if let Some(d) = self.active.digest.clone() {
            self.decide(Some(&d));
        }
        if self.previous.as_ref() == Some(&to) {
            self.previous = None;
        }
        self.active = to;
        self.phase = Phase::Stable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &str) -> ModelRef {
        ModelRef {
            version: v.into(),
            digest: Some(format!("digest-{v}")),
        }
    }

    fn rules() -> Rules {
        Rules {
            shadow_windows: 10,
            shadow_s: 60.0,
            watch_s: 120.0,
            watch_min_windows: 10,
            min_asset_windows: 5,
            ..Rules::default()
        }
    }

    fn names(t: &[Transition]) -> Vec<&str> {
        t.iter().map(Transition::name).collect()
    }

    #[test]
    fn a_candidate_that_agrees_is_promoted_after_both_windows_and_time_then_watched() {
        let mut l = Lifecycle::new(m("a"));
        let t = l.accepted(m("b"), 0, &rules());
        assert_eq!(names(&t), ["received", "shadow_started"]);
        for _ in 0..20 {
            l.window("pump", false, false, false);
        }
        // Enough windows, not enough time.
        assert_eq!(l.poll(59_999, &rules()), None);
        let t = l.poll(60_000, &rules()).unwrap();
        assert_eq!(t.name(), "promoted");
        assert_eq!(l.active, m("b"));
        assert_eq!(l.previous, Some(m("a")));
        assert_eq!(l.phase.name(), "watch");
        for _ in 0..20 {
            l.window("pump", false, false, false);
        }
        assert_eq!(l.poll(60_000 + 119_000, &rules()), None);
        let t = l.poll(60_000 + 120_000, &rules()).unwrap();
        assert_eq!(t.name(), "watch_passed");
        assert_eq!(l.phase, Phase::Stable);
        assert!(l.knows("digest-b"));
    }

    #[test]
    fn a_candidate_that_calls_everything_faulty_is_rejected_with_its_figures() {
        let mut l = Lifecycle::new(m("a"));
        l.accepted(m("bad"), 0, &rules());
        for _ in 0..30 {
            l.window("pump", false, true, false);
        }
        let Some(Transition::ShadowRejected { judgement, .. }) = l.poll(60_000, &rules()) else {
            panic!("not rejected");
        };
        assert_eq!(judgement.normal_agreement, Some(0.0));
        assert_eq!(judgement.fault_rates["pump"], (0.0, 1.0));
        assert_eq!(judgement.breaches.len(), 3, "{:?}", judgement.breaches);
        assert_eq!(l.active, m("a"));
        assert_eq!(l.phase, Phase::Stable);
        assert!(
            l.knows("digest-bad"),
            "a rejected package is not tried again"
        );
    }

    #[test]
    fn solo_fault_calls_on_an_asset_already_alerting_are_not_a_new_alert() {
        let mut t = Tally::default();
        for _ in 0..10 {
            t.add("fan", false, true, true);
        }
        assert!(t.judge(&Rules::default()).solo_runs.is_empty());
        let mut t = Tally::default();
        for k in 0..10 {
            // Interleaved normal calls break the run.
            t.add("fan", false, k % 3 != 2, false);
        }
        assert_eq!(t.judge(&Rules::default()).solo_runs["fan"], 2);
    }

    #[test]
    fn a_watch_breach_rolls_back_to_the_previous_model() {
        let mut l = Lifecycle::new(m("a"));
        l.accepted(m("b"), 0, &rules());
        for _ in 0..10 {
            l.window("quiet", false, false, false);
        }
        assert_eq!(l.poll(60_000, &rules()).unwrap().name(), "promoted");
        // A machine that was stopped during the shadow starts: the new model calls it faulty,
        // the previous one does not.
        for _ in 0..9 {
            l.window("loud", true, false, false);
        }
        assert_eq!(
            l.poll(61_000, &rules()),
            None,
            "not before watch_min_windows"
        );
        l.window("loud", true, false, false);
        let Some(Transition::RolledBack {
            model, restored, ..
        }) = l.poll(62_000, &rules())
        else {
            panic!("no rollback")
        };
        assert_eq!((model, restored), (m("b"), m("a")));
        assert_eq!(l.active, m("a"));
        assert_eq!(l.previous, None);
        assert!(l.knows("digest-b"));
    }

    #[test]
    fn a_newer_package_supersedes_a_shadow_run_and_a_refusal_is_remembered() {
        let mut l = Lifecycle::new(m("a"));
        l.accepted(m("b"), 0, &rules());
        let t = l.accepted(m("c"), 10, &rules());
        assert_eq!(names(&t), ["received", "superseded", "shadow_started"]);
        assert!(l.knows("digest-b") && l.knows("digest-c"));
        let t = l.refused(m("d"), "unsigned", "the package is not signed");
        assert_eq!(names(&t), ["received", "refused"]);
        assert!(l.knows("digest-d"));
        assert!(matches!(&l.phase, Phase::Shadow { candidate, .. } if *candidate == m("c")));
    }

    #[test]
    fn the_state_round_trips_and_a_resumed_shadow_starts_its_period_again() {
        let mut l = Lifecycle::new(m("a"));
        l.accepted(m("b"), 0, &rules());
        for _ in 0..5 {
            l.window("pump", false, false, false);
        }
        let text = serde_json::to_string(&l).unwrap();
        let mut back: Lifecycle = serde_json::from_str(&text).unwrap();
        let t = back.resume(500_000).unwrap();
        assert!(matches!(t, Transition::ShadowStarted { resumed: true, .. }));
        for _ in 0..10 {
            back.window("pump", false, false, false);
        }
        assert_eq!(back.poll(500_000 + 59_000, &rules()), None);
        assert_eq!(
            back.poll(500_000 + 60_000, &rules()).unwrap().name(),
            "promoted"
        );
    }

    #[test]
    fn decided_digests_are_bounded() {
        let mut l = Lifecycle::new(m("a"));
        for i in 0..DECIDED_MEMORY + 10 {
            l.refused(m(&i.to_string()), "unsigned", "");
        }
        assert_eq!(l.decided.len(), DECIDED_MEMORY);
        assert!(!l.knows("digest-0"));
        assert!(l.knows(&format!("digest-{}", DECIDED_MEMORY + 9)));
    }

    #[test]
    fn a_fall_back_at_start_drops_the_phase_and_remembers_the_bad_package() {
        let mut l = Lifecycle::new(m("a"));
        l.accepted(m("b"), 0, &rules());
        l.window("p", false, false, false);
        let mut r = rules();
        r.shadow_windows = 1;
        r.shadow_s = 0.0;
        l.poll(0, &r).unwrap();
        l.fall_back(m("a"));
        assert_eq!(l.active, m("a"));
        assert_eq!(l.previous, None);
        assert_eq!(l.phase, Phase::Stable);
        assert!(l.knows("digest-b"));
    }
}
