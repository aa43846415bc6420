//! The model lifecycle: signed packages delivered over Kafka or from a folder, tried in the
//! shadow of the running model on live windows, promoted, watched and rolled back by rules.
//!
//! - [`package`]: the package format, signatures, targets and the checks against this agent.
//! - [`machine`]: the pure state machine (stable → shadow → watch → stable) and its rules.
//! - [`store`]: the state and the packages it names under `<data_dir>/models/`.
//! - [`consumer`]: the Kafka consumer of the models topic (a thread).
//! - [`Driver`] (here): the machine in the analysis thread, which owns every model: the active
//!   one sits in the [`Scorer`], the one beside it (candidate in shadow, previous model in
//!   watch) here. A package, a window and a decision are handled between two windows, in
//!   order, so no window is dropped or classified twice across a switch.
//!
//! Every transition is an [`Event`]: logged, counted, and sent as a record on the
//! model-status topic through the outbox (`schemas/edgewatch.model-status.json`).

pub mod consumer;
pub mod machine;
pub mod package;
pub mod store;

use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::analyze::alert::{AlertConfig, ClassVerdict};
use crate::analyze::model::{Model, ModelSource, Variant, sha256_hex};
use crate::analyze::scoring::{Classify, Scorer};
use crate::assemble::window::WindowConfig;
use machine::{Lifecycle, ModelRef, Rules, Transition};
use package::{Refusal, Verified};
use store::Store;

/// What the lifecycle needs of the configuration.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// `[agent] id`.
    pub agent_id: String,
    /// `[agent] labels`.
    pub labels: Vec<String>,
    /// `[model] trusted_keys`, read.
    pub trusted_keys: Vec<VerifyingKey>,
    /// `[model.rollout]`.
    pub rules: Rules,
    /// `[model] variant`: the variant of every package that is run.
    pub variant: Variant,
    /// `[window]`: a package trained on other windows is refused.
    pub window: WindowConfig,
    /// `[alerts]`: what counts as a fault call.
    pub alerts: AlertConfig,
    /// `<data_dir>/models`; `None`: nothing kept across restarts.
    pub state_dir: Option<PathBuf>,
}

/// One lifecycle step, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When, ms since the Unix epoch.
    pub at_unix_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub transition: EventKind,
    /// Where the package came from (`kafka:<topic>/<partition>@<offset>`, `file:<path>`),
    /// when the event is about a package just received.
    pub source: Option<String>,
    /// The model active after the event.
    pub active: ModelRef,
    /// The lifecycle's phase after the event.
    pub phase: &'static str,
}

/// A transition of the state machine, or a fall-back at start.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EventKind {
    /// A transition.
    Transition(Transition),
    /// At start, a stored package could not be used.
    FellBack(FellBack),
}

/// At start, the stored package of a model could not be used; another runs.
#[derive(Debug, Clone, Serialize)]
pub struct FellBack {
    /// Always `fell_back`.
    pub event: &'static str,
    /// The model that could not be used.
    pub model: ModelRef,
    /// The one that runs instead.
    pub to: ModelRef,
    /// The reason code.
    pub reason_code: String,
    /// Why.
    pub reason: String,
}

impl Event {
    /// The event's name.
    pub fn name(&self) -> &'static str {
        match &self.transition {
            EventKind::Transition(t) => t.name(),
            EventKind::FellBack(_) => "fell_back",
        }
    }

    /// The model the event is about.
    pub fn model(&self) -> &ModelRef {
        match &self.transition {
            EventKind::Transition(t) => t.model(),
            EventKind::FellBack(f) => &f.model,
        }
    }
}

/// Where to send events (the reporter turns them into status records).
pub type EventSender = tokio::sync::mpsc::UnboundedSender<Event>;

/// The lifecycle in the analysis thread.
pub struct Driver {
    cfg: LifecycleConfig,
    machine: Lifecycle,
    /// The model beside the active one: the candidate in shadow, the previous one in watch.
    beside: Option<Box<dyn Classify>>,
    /// The agent's own model, for a fall-back or a rollback to it.
    base_source: ModelSource,
    store: Option<Store>,
    events: Option<EventSender>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("active", &self.machine.active)
            .field("phase", &self.machine.phase.name())
            .finish_non_exhaustive()
    }
}

fn model_ref_of(v: &Verified) -> ModelRef {
    ModelRef {
        version: v.version().to_string(),
        digest: Some(v.digest.clone()),
    }
}

impl Driver {
    /// Decides at start which model is active: the stored active package if it still verifies
    /// and loads, else the previous one, else `base` (the built-in or configured model, loaded
    /// from `base_source`). Returns the driver and the model to put in the scorer.
    pub fn start(
        cfg: LifecycleConfig,
        base: Model,
        base_source: ModelSource,
        events: Option<EventSender>,
        now_unix_ms: u64,
    ) -> (Self, Box<dyn Classify>) {
        let base_ref = ModelRef {
            version: base.version().to_string(),
            digest: None,
        };
        let store = cfg.state_dir.clone().map(Store::new);
        let stored = match store.as_ref().map(Store::load) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::error!(error = %e, "model lifecycle state unreadable: starting afresh");
                metrics::counter!("edgewatch_model_state_damaged_total").increment(1);
                None
            }
            None => None,
        };
        let mut driver = Self {
            cfg,
            machine: stored.unwrap_or_else(|| Lifecycle::new(base_ref.clone())),
            beside: None,
            base_source,
            store,
            events,
        };
        let mut base = Some(base);
        // The active model: its package, else the previous one's, else the base.
        let active: Box<dyn Classify> = loop {
            let want = driver.machine.active.clone();
            match driver.open(&want, &mut base) {
                Ok(m) => break m,
                Err(refusal) => {
                    let to = match &driver.machine.previous {
                        Some(p) if *p != want => p.clone(),
                        _ => base_ref.clone(),
                    };
                    tracing::error!(
                        model = %want.version,
                        to = %to.version,
                        error = %refusal,
                        "the stored model cannot be used: falling back"
                    );
                    metrics::counter!("edgewatch_model_fallbacks_total", "reason" => refusal.reason())
                        .increment(1);
                    metrics::gauge!("edgewatch_model_fallback").set(1.0);
                    driver.machine.fall_back(to.clone());
                    driver.emit(
                        EventKind::FellBack(FellBack {
                            event: "fell_back",
                            model: want,
                            to,
                            reason_code: refusal.reason().into(),
                            reason: refusal.to_string(),
                        }),
                        None,
                        now_unix_ms,
                    );
                }
            }
        };
        // The agent's own model changed since the state was written (a new build or
        // configuration): it is what runs without a package.
        if driver.machine.active.digest.is_none() {
            driver.machine.active = base_ref.clone();
        }
        if let Some(p) = &mut driver.machine.previous
            && p.digest.is_none()
        {
            *p = base_ref;
        }
        // The model beside it, for a shadow or a watch in progress.
        let beside = match &driver.machine.phase {
            machine::Phase::Shadow { candidate, .. } => Some(candidate.clone()),
            machine::Phase::Watch { .. } => driver.machine.previous.clone(),
            machine::Phase::Stable => None,
        };
        if let Some(want) = beside {
            match driver.open(&want, &mut base) {
                Ok(m) => {
                    driver.beside = Some(m);
                    if let Some(t) = driver.machine.resume(now_unix_ms) {
                        driver.emit(EventKind::Transition(t), None, now_unix_ms);
                    }
                }
                Err(refusal) => {
                    tracing::error!(model = %want.version, error = %refusal, "the model beside the active one cannot be used: its shadow or watch ends");
                    driver.machine.phase = machine::Phase::Stable;
                }
            }
        }
        driver.save();
        driver.publish_gauges();
        (driver, active)
    }

    /// Opens a model the state names: a stored package (verified again) or the base.
    fn open(
        &self,
        want: &ModelRef,
        base: &mut Option<Model>,
    ) -> Result<Box<dyn Classify>, Refusal> {
        let Some(digest) = &want.digest else {
            let model = match base.take() {
                Some(m) => m,
                None => Model::open(&self.base_source, self.cfg.variant)
                    .map_err(|e| Refusal::Model(e.to_string()))?,
            };
            return Ok(Box::new(model));
        };
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| Refusal::Model("no state directory".into()))?;
        let bytes = store
            .get(digest)
            .map_err(|e| Refusal::Model(format!("stored package: {e}")))?;
        let verified = package::verify(&bytes, &self.cfg.trusted_keys)?;
        if verified.digest != *digest {
            return Err(Refusal::Model(format!(
                "the stored package's digest is {}, the state names {digest}",
                verified.digest
            )));
        }
        Ok(Box::new(package::load_model(
            &verified,
            self.cfg.variant,
            &self.cfg.window,
        )?))
    }

    fn emit(&mut self, kind: EventKind, source: Option<&str>, now_unix_ms: u64) {
        let event = Event {
            at_unix_ms: now_unix_ms,
            transition: kind,
            source: source.map(str::to_string),
            active: self.machine.active.clone(),
            phase: self.machine.phase.name(),
        };
        metrics::counter!("edgewatch_model_lifecycle_events_total", "event" => event.name())
            .increment(1);
        match &event.transition {
            EventKind::Transition(Transition::Refused {
                reason_code,
                reason,
                model,
            }) => {
                metrics::counter!("edgewatch_model_packages_refused_total", "reason" => reason_code.clone())
                    .increment(1);
                tracing::warn!(model = %model.version, reason = %reason, source = ?source, "model package refused; the running model keeps classifying");
            }
            other => {
                tracing::info!(
                    event = event.name(),
                    model = %event.model().version,
                    active = %event.active.version,
                    phase = event.phase,
                    details = %serde_json::to_string(other).unwrap_or_default(),
                    "model lifecycle"
                );
            }
        }
        if let Some(tx) = &self.events {
            // The reporter has stopped only when the agent shuts down.
            let _ = tx.send(event);
        }
    }

    fn save(&self) {
        if let Some(store) = &self.store
            && let Err(e) = store.save(&self.machine)
        {
            tracing::error!(error = %e, "cannot persist the model lifecycle state");
            metrics::counter!("edgewatch_model_state_write_errors_total").increment(1);
        }
    }

    fn publish_gauges(&self) {
        metrics::gauge!("edgewatch_model_lifecycle_phase")
            .set(f64::from(self.machine.phase.code()));
        static SHADOW: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let mut current = SHADOW.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = current.take() {
            metrics::gauge!("edgewatch_model_shadow_info", "version" => v).set(0.0);
        }
        if let machine::Phase::Shadow { candidate, .. } = &self.machine.phase {
            metrics::gauge!("edgewatch_model_shadow_info", "version" => candidate.version.clone())
                .set(1.0);
            *current = Some(candidate.version.clone());
        }
        crate::analyze::model::set_model_info(&self.machine.active.version, self.cfg.variant);
    }

    /// The lifecycle's state.
    pub fn state(&self) -> &Lifecycle {
        &self.machine
    }

    /// A package's bytes arrived from `source` at `now_unix_ms`. Packages not addressed to
    /// this agent and packages already decided on are ignored; any other is checked and
    /// refused, or put in shadow.
    pub fn offer(&mut self, bytes: &[u8], source: &str, now_unix_ms: u64) {
        // Targets and identity from the unverified body: a forged target only makes this
        // agent check (and refuse) a package, or ignore one that was not for it anyway.
        let (digest, version, addressed) = match package::Envelope::parse(bytes)
            .and_then(|e| Ok((e.body_bytes()?, e.body().ok())))
        {
            Ok((body_bytes, body)) => (
                sha256_hex(&body_bytes),
                body.as_ref()
                    .map_or_else(|| "unknown".to_string(), |b| b.model_version.clone()),
                body.is_none_or(|b| b.targets.includes(&self.cfg.agent_id, &self.cfg.labels)),
            ),
            Err(_) => (sha256_hex(bytes), "unknown".to_string(), true),
        };
        if !addressed {
            metrics::counter!("edgewatch_model_packages_total", "result" => "not_addressed")
                .increment(1);
            tracing::debug!(%version, source, "model package not addressed to this agent");
            return;
        }
        if self.machine.knows(&digest) {
            // The same body signed again (a key rotation): the stored copy of a model in use
            // takes the new signatures, so it still verifies once the old key is withdrawn.
            let in_use = |m: &ModelRef| m.digest.as_deref() == Some(digest.as_str());
            if (in_use(&self.machine.active) || self.machine.previous.as_ref().is_some_and(in_use))
                && let Some(store) = &self.store
                && store.get(&digest).is_ok_and(|old| old != bytes)
                && package::verify(bytes, &self.cfg.trusted_keys).is_ok()
            {
                match store.put(&digest, bytes) {
                    Ok(()) => tracing::info!(%version, source, "stored package re-signed"),
                    Err(e) => tracing::error!(error = %e, "cannot store the re-signed package"),
                }
            }
            metrics::counter!("edgewatch_model_packages_total", "result" => "known").increment(1);
            tracing::debug!(%version, source, "model package already decided on");
            return;
        }
        metrics::counter!("edgewatch_model_packages_total", "result" => "received").increment(1);
        let model = ModelRef {
            version,
            digest: Some(digest),
        };
        let checked = package::verify(bytes, &self.cfg.trusted_keys).and_then(|v| {
            let m = package::load_model(&v, self.cfg.variant, &self.cfg.window)?;
            Ok((v, m))
        });
        let transitions = match checked {
            Err(refusal) => self
                .machine
                .refused(model, refusal.reason(), &refusal.to_string()),
            Ok((verified, candidate)) => {
                if let Some(store) = &self.store
                    && let Err(e) = store.put(&verified.digest, &verified.bytes)
                {
                    // Without its file a restart could not resume it: not tried now either.
                    tracing::error!(error = %e, "cannot store the model package");
                    self.machine.refused(
                        model_ref_of(&verified),
                        "storage",
                        &format!("cannot store the package: {e}"),
                    )
                } else {
                    self.beside = Some(Box::new(candidate));
                    self.machine
                        .accepted(model_ref_of(&verified), now_unix_ms, &self.cfg.rules)
                }
            }
        };
        self.save();
        for t in transitions {
            let src = matches!(t, Transition::Received { .. }).then_some(source);
            self.emit(EventKind::Transition(t), src, now_unix_ms);
        }
        self.publish_gauges();
    }

    /// One scored window of `asset`: the model beside the active one classifies the same
    /// inputs, both calls are tallied, and any decision due is taken (the scorer's model is
    /// switched here when one is).
    pub fn on_window(
        &mut self,
        asset: &str,
        inputs: &[f32],
        active: Option<&ClassVerdict>,
        alerting: bool,
        scorer: &mut Scorer,
        now_unix_ms: u64,
    ) {
        if let (Some(beside), Some(active)) = (self.beside.as_mut(), active)
            && let Some(other) = beside.classify(inputs)
        {
            let active_fault = self.cfg.alerts.calls_fault(active);
            let beside_fault = self.cfg.alerts.calls_fault(&other);
            self.machine
                .window(asset, active_fault, beside_fault, alerting);
        }
        self.poll(scorer, now_unix_ms);
    }

    /// Takes any decision due at `now_unix_ms`.
    pub fn poll(&mut self, scorer: &mut Scorer, now_unix_ms: u64) {
        let Some(t) = self.machine.poll(now_unix_ms, &self.cfg.rules) else {
            return;
        };
        match &t {
            Transition::Promoted { .. } => {
                // The candidate becomes active; the old active model runs beside it (watch).
                if let Some(candidate) = self.beside.take() {
                    self.beside = scorer.replace_classifier(candidate);
                }
                metrics::counter!("edgewatch_model_promotions_total").increment(1);
            }
            Transition::RolledBack { .. } => {
                if let Some(previous) = self.beside.take() {
                    scorer.replace_classifier(previous);
                }
                metrics::counter!("edgewatch_model_rollbacks_total").increment(1);
            }
            Transition::ShadowRejected { .. } | Transition::WatchPassed { .. } => {
                self.beside = None;
            }
            _ => {}
        }
        self.save();
        self.emit(EventKind::Transition(t), None, now_unix_ms);
        self.publish_gauges();
    }

    /// The agent's own model was replaced (SIGHUP with a new `[model] manifest`): it is the
    /// base from now on; it becomes active when no package is.
    pub fn base_replaced(&mut self, source: ModelSource, version: &str) -> bool {
        self.base_source = source;
        let base = ModelRef {
            version: version.to_string(),
            digest: None,
        };
        if let Some(p) = &mut self.machine.previous
            && p.digest.is_none()
        {
            *p = base.clone();
        }
        let active_is_base = self.machine.active.digest.is_none();
        if active_is_base {
            self.machine.active = base;
        }
        self.save();
        self.publish_gauges();
        active_is_base
    }
}

/// What `agent validate` says about the stored lifecycle: each stored model the state names
/// (active, previous, in shadow) that would not load now, and why (`run` falls back).
pub fn check_stored(cfg: &LifecycleConfig) -> Vec<String> {
    let Some(store) = cfg.state_dir.clone().map(Store::new) else {
        return Vec::new();
    };
    let state = match store.load() {
        Ok(Some(s)) => s,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![format!("state unreadable: {e}")],
    };
    let mut named = vec![("active", Some(state.active.clone()))];
    named.push(("previous", state.previous.clone()));
    if let machine::Phase::Shadow { candidate, .. } = &state.phase {
        named.push(("in shadow", Some(candidate.clone())));
    }
    let mut out = Vec::new();
    for (role, m) in named {
        let Some(m) = m else { continue };
        let Some(digest) = &m.digest else { continue };
        let checked = store
            .get(digest)
            .map_err(|e| Refusal::Model(format!("stored package: {e}")))
            .and_then(|bytes| package::verify(&bytes, &cfg.trusted_keys))
            .and_then(|v| package::load_model(&v, cfg.variant, &cfg.window).map(|_| ()));
        if let Err(e) = checked {
            out.push(format!(
                "the {role} package {} ({digest}) cannot be used: {e}; `run` falls back",
                m.version
            ));
        }
    }
    out
}

/// Offers every package (`*.ewpkg`) in `dir` to the analysis thread, in file-name order.
/// Returns how many were offered; a folder that cannot be read is logged and offers none.
pub async fn offer_dir(
    dir: &std::path::Path,
    tx: &tokio::sync::mpsc::Sender<crate::analyze::Input>,
) -> usize {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|x| x == package::PACKAGE_EXTENSION)
            })
            .collect(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "model package folder unreadable");
            return 0;
        }
    };
    files.sort();
    let mut offered = 0;
    for f in files {
        let bytes = match std::fs::read(&f) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %f.display(), error = %e, "model package unreadable");
                continue;
            }
        };
        let input = crate::analyze::Input::Package {
            bytes,
            source: format!("file:{}", f.display()),
        };
        if tx.send(input).await.is_err() {
            break;
        }
        offered += 1;
    }
    offered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::baseline::BaselineConfig;
    use std::path::Path;

    fn base() -> Model {
        Model::open(&ModelSource::Builtin, Variant::Int8)
            .or_else(|_| {
                Model::load(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.json"),
                    Variant::Int8,
                )
            })
            .unwrap()
    }

    fn cfg(dir: &Path, trusted: Vec<VerifyingKey>) -> LifecycleConfig {
        LifecycleConfig {
            agent_id: "gw".into(),
            labels: Vec::new(),
            trusted_keys: trusted,
            rules: Rules {
                shadow_windows: 3,
                shadow_s: 0.0,
                ..Rules::default()
            },
            variant: Variant::Int8,
            window: WindowConfig::default(),
            alerts: AlertConfig::default(),
            state_dir: Some(dir.to_path_buf()),
        }
    }

    fn signed(body: &package::Body, keys: &[&ed25519_dalek::SigningKey]) -> Vec<u8> {
        let mut e = package::Envelope::new(body);
        for k in keys {
            e.sign(k).unwrap();
        }
        e.to_bytes()
    }

    #[test]
    fn a_promoted_package_survives_a_restart_and_a_key_rotation_by_re_signing() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (package::generate_key(), package::generate_key());
        let body = package::build(&package::PackageInput {
            manifest: Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.json"),
            golden: None,
            version: Some("r2".into()),
            lineage: Some(package::Lineage {
                dataset_id: "t".into(),
                dataset_size: 1,
                code_revision: "t".into(),
                trainer: serde_json::Value::Null,
                parent_model_version: None,
                created_unix_ms: 1,
            }),
            targets: package::Targets::default(),
            created_unix_ms: 1,
        })
        .unwrap()
        .body()
        .unwrap();
        let both = vec![old.verifying_key(), new.verifying_key()];
        let (mut d, active) = Driver::start(
            cfg(dir.path(), both.clone()),
            base(),
            ModelSource::Builtin,
            None,
            0,
        );
        let mut scorer = Scorer::new(
            Some(active),
            BaselineConfig::default(),
            AlertConfig::default(),
            None,
        );
        d.offer(&signed(&body, &[&old]), "test", 0);
        assert_eq!(d.state().phase.name(), "shadow");
        let x = [0.0f32; crate::analyze::features::MODEL_INPUT_LEN];
        for _ in 0..3 {
            let v = scorer.classify_inputs(&x);
            d.on_window("a", &x, v.as_ref(), false, &mut scorer, 1);
        }
        assert_eq!(d.state().active.version, "r2");
        assert_eq!(scorer.classify_inputs(&x).unwrap().model_version, "r2");
        // The same body, signed by the new key only: the stored copy takes it.
        d.offer(&signed(&body, &[&new]), "test", 2);
        drop(d);
        let (d, mut active) = Driver::start(
            cfg(dir.path(), vec![new.verifying_key()]),
            base(),
            ModelSource::Builtin,
            None,
            3,
        );
        assert_eq!(d.state().active.version, "r2");
        assert_eq!(active.classify(&x).unwrap().model_version, "r2");
    }
}
