//! How every configuration section reports an unacceptable value: the TOML path of the field
//! and the reason. A leaf module, so each stage's `config.rs` can validate its own section
//! without importing the whole configuration.

use std::fmt;

/// One unacceptable value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// TOML path of the value, e.g. `asset[0].sensors`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl FieldError {
    /// The error for `field` (a TOML path) with its reason.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::error::Error for FieldError {}
