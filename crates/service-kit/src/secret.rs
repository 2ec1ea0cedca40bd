//! Secrets in memory: an API key, a private key, a user's bearer token. `Debug` and `Display`
//! never print them, so a struct that holds one can derive `Debug` and be logged safely.

/// A secret string, shown only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, to put it where it belongs (a header, a key parser).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_secret_never_prints() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            key: super::Secret,
        }
        let c = Config {
            key: super::Secret::new("sk-live-123"),
        };
        assert!(!format!("{c:?}").contains("sk-live"));
        assert!(!format!("{}", c.key).contains("sk-live"));
        assert_eq!(c.key.expose(), "sk-live-123");
    }
}
