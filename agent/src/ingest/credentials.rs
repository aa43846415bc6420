//! Credentials shared by the MQTT source and the Kafka forwarder: a password given inline or,
//! better, in a file (readable only by the service, e.g. under `/etc/edgewatch/`), whose first
//! line is the password.

use std::path::Path;

/// The password from `inline`, else from the first line of `file` (`None` if neither is
/// given). The inline one wins; configuration validation refuses both at once.
pub fn password(inline: Option<&str>, file: Option<&Path>) -> std::io::Result<Option<String>> {
    match (inline, file) {
        (Some(p), _) => Ok(Some(p.to_string())),
        (None, Some(f)) => {
            let bytes = std::fs::read(f)?;
            Ok(Some(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_password_wins_and_a_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "secret\nignored\n").unwrap();
        assert_eq!(
            password(Some("inline"), Some(&f)).unwrap().as_deref(),
            Some("inline")
        );
        assert_eq!(password(None, Some(&f)).unwrap().as_deref(), Some("secret"));
        assert_eq!(password(None, None).unwrap(), None);
        assert!(password(None, Some(&dir.path().join("missing"))).is_err());
    }
}
