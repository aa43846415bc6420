//! Logging set-up shared by the workspace's binaries (`firmware-sim` and the agent): plain lines
//! on stderr, filtered by `RUST_LOG`.
//!
//! `RUST_LOG` takes `level` and `target=level` directives, comma-separated
//! (`info,edgewatch_agent::forward=debug`), parsed as a [`Targets`] filter. `EnvFilter`'s span
//! and field filters are not offered: they need a regex engine, which made each gateway binary
//! 0.25-0.33 MB larger (docs/deploy.md), and a gateway's log needs a level per module.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// The filter for a `RUST_LOG` value: `info` when it is unset or blank, and when it does not
/// parse (then with the reason, for a warning once logging is up).
pub fn filter(rust_log: Option<&str>) -> (Targets, Option<String>) {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim) {
        None | Some("") => (default(), None),
        Some(directives) => match directives.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (default(), Some(format!("RUST_LOG={directives:?}: {e}"))),
        },
    }
}

/// Installs the global subscriber: stderr, colours only on a terminal, [`filter`] of
/// `RUST_LOG`. A `RUST_LOG` that does not parse is reported as a warning, not an exit: the
/// process keeps logging at `info`.
pub fn init() {
    let (targets, refused) = filter(std::env::var("RUST_LOG").ok().as_deref());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(targets)
        .init();
    if let Some(reason) = refused {
        tracing::warn!(target: "logging", "logging at info, RUST_LOG ignored: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn unset_blank_and_bad_values_log_at_info() {
        for value in [None, Some(""), Some("  ")] {
            let (t, refused) = filter(value);
            assert!(t.would_enable("any", &Level::INFO), "{value:?}");
            assert!(!t.would_enable("any", &Level::DEBUG), "{value:?}");
            assert_eq!(refused, None);
        }
        let (t, refused) = filter(Some("agent=loud"));
        assert!(t.would_enable("any", &Level::INFO));
        assert!(!t.would_enable("any", &Level::DEBUG));
        assert!(refused.unwrap().contains("agent=loud"));
    }

    #[test]
    fn levels_and_per_target_directives_apply() {
        let (t, _) = filter(Some("debug"));
        assert!(t.would_enable("edgewatch_agent::forward", &Level::DEBUG));
        assert!(!t.would_enable("edgewatch_agent::forward", &Level::TRACE));

        let (t, refused) = filter(Some("warn,edgewatch_agent::forward=debug"));
        assert_eq!(refused, None);
        assert!(t.would_enable("edgewatch_agent::forward", &Level::DEBUG));
        assert!(t.would_enable("edgewatch_agent::forward::kafka", &Level::DEBUG));
        assert!(!t.would_enable("edgewatch_agent::pipeline", &Level::INFO));
        assert!(t.would_enable("edgewatch_agent::pipeline", &Level::WARN));
    }
}
