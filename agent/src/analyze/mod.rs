//! Analysis: from a window's samples to features, a model's call, the asset's baseline verdict
//! and alert transitions.
//!
//! - [`features`]: spectrum, envelope spectrum, RMS, kurtosis, velocity severity (pure).
//! - [`model`]: the on-device classifier (tract) and its manifest; owned by the analysis thread.
//! - [`baseline`]: the per-asset learned baseline and its lifecycle.
//! - [`health`]: a sensor's health indicator over life, onset of degradation, remaining life.
//! - [`diagnosis`]: the bearing part from the envelope line families, when the physics is sure.
//! - [`alert`]: alert rules and the hysteresis engine.
//! - [`feedback`]: operators' commands (recommission, shelve) from the feedback topic.
//! - [`lifecycle`]: model packages, shadow, promotion and rollback (the models this thread owns).
//! - [`scoring`]: joins model, baseline and rules for one window.
//! - [`stage`]: the stage's driver: the analysis thread.

pub mod alert;
pub mod baseline;
pub mod diagnosis;
pub mod drift;
pub mod features;
pub mod feedback;
pub mod health;
pub mod lifecycle;
pub mod model;
pub(crate) mod persist;
pub mod scoring;
mod stage;

pub use stage::{
    AnalysisConfig, AnalyzedAsset, FeatureStage, Input, ModelControl, ReloadError, WindowReport,
    extract_features,
};
