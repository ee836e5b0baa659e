//! Configuration: `scry.toml` plus `SCRY_*` environment overrides, typed and validated.
//!
//! Where the file comes from: `--config FILE` (or `SCRY_CONFIG`), else `./scry.toml`, else
//! `$XDG_CONFIG_HOME/scry/scry.toml` (`~/.config/scry/scry.toml`), else built-in defaults.
//! Environment variables override file values with `__` between levels:
//! `SCRY_ENRICH__CONCURRENCY=16`, `SCRY_EGRESS__ALLOWLIST='["10.0.0.0/8"]'`. Unknown keys are
//! errors that name the key and where it came from, so a typo never silently does nothing.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use scry_core::{EgressGate, EgressPolicy, Tlp};
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub store: StoreConfig,
    pub egress: EgressConfig,
    pub enrich: EnrichConfig,
    pub sources: SourcesConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite:///path/scry.db` or `postgres://…`; `--store` / `SCRY_STORE` take precedence.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// IPs, CIDR blocks, ranges, ASNs, domains and `*.domain` wildcards never sent to any source.
    pub allowlist: Vec<String>,
    /// Files with one allowlist entry per line (`#` comments allowed).
    pub allowlist_files: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// Indicators enriched at once (each source also has its own limits).
    pub concurrency: usize,
    /// TLP assumed for indicators whose input states none.
    pub default_tlp: Option<String>,
}

impl Default for EnrichConfig {
    fn default() -> EnrichConfig {
        EnrichConfig {
            concurrency: 8,
            default_tlp: None,
        }
    }
}

/// Sources that need configuration. Built-in classification needs none and is always on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {}

/// A configuration problem, said so that it can be fixed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist (create one with `scry config init {0}`)")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
    #[error("invalid configuration{}: {message}", origin.as_ref().map(|o| format!(" in {o}")).unwrap_or_default())]
    Value {
        origin: Option<String>,
        message: String,
    },
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

/// The commented example `scry config init` writes. It must load as the defaults (tested).
pub const EXAMPLE: &str = r#"# scry configuration. Every key is optional; the values shown are the defaults.
# Environment variables override this file: SCRY_ENRICH__CONCURRENCY=16, and so on
# (SCRY_ + section + __ + key, upper-case).

[store]
# Where results are stored. --store and SCRY_STORE take precedence.
# Default: an SQLite file in the XDG data directory (~/.local/share/scry/scry.db).
# url = "sqlite:///var/lib/scry/scry.db"

[egress]
# Never sent to any external source, whatever rules say: your own networks and
# known-good infrastructure. IPs, CIDR blocks, ranges (a-b), ASNs (AS64512),
# exact domains, and *.domain for every name below a domain.
# Private, loopback, link-local, documentation and other special-use addresses,
# and names under internal suffixes (.local, .corp, .internal, .home.arpa, ...)
# are never sent out in any case.
allowlist = []
# Files with one entry per line; '#' starts a comment.
allowlist_files = []

[enrich]
# Indicators enriched at once.
concurrency = 8
# TLP assumed for indicators whose input states none (clear, green, amber,
# amber+strict, red). An indicator above a source's maximum TLP is not sent to it.
# default_tlp = "amber"

[sources]
# External enrichment sources are configured here, one table per source.
"#;

/// Where the configuration file is looked for when none is named.
pub fn default_config_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("scry.toml")];
    if let Some(dir) = xdg_dir("XDG_CONFIG_HOME", ".config") {
        paths.push(dir.join("scry").join("scry.toml"));
    }
    paths
}

/// The default store: an SQLite file in the XDG data directory.
pub fn default_store_url() -> String {
    let dir = xdg_dir("XDG_DATA_HOME", ".local/share").unwrap_or_else(|| PathBuf::from("."));
    format!("sqlite://{}", dir.join("scry").join("scry.db").display())
}

fn xdg_dir(variable: &str, fallback_under_home: &str) -> Option<PathBuf> {
    match std::env::var_os(variable) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(fallback_under_home)),
    }
}

/// Environment variables that are options of the binary, not configuration keys.
const NOT_CONFIG_KEYS: &[&str] = &["config", "store", "log"];

/// Loads the configuration: the named file (which must exist), else the first default path that
/// exists, else defaults; then environment overrides.
pub fn load(explicit: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let path = match explicit {
        Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_owned())),
        Some(p) => Some(p.to_owned()),
        None => default_config_paths().into_iter().find(|p| p.exists()),
    };
    let mut figment = Figment::new();
    if let Some(p) = &path {
        figment = figment.merge(Toml::file_exact(p));
    }
    figment = figment.merge(
        Env::prefixed("SCRY_")
            .split("__")
            .filter(|key| !NOT_CONFIG_KEYS.contains(&key.as_str().to_ascii_lowercase().as_str())),
    );
    let config: Config = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
    let loaded = LoadedConfig { config, path };
    loaded.validate()?;
    Ok(loaded)
}

/// Parses configuration text (used by tests and `config check` of a given string).
pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
    Figment::new()
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

impl LoadedConfig {
    fn origin(&self) -> Option<String> {
        self.path.as_ref().map(|p| p.display().to_string())
    }

    fn value_error(&self, message: String) -> ConfigError {
        ConfigError::Value {
            origin: self.origin(),
            message,
        }
    }

    /// Checks values that parse as TOML but mean nothing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.config.enrich.concurrency == 0 {
            return Err(self.value_error("[enrich] concurrency must be at least 1".into()));
        }
        self.default_tlp()?;
        self.egress_gate()?;
        Ok(())
    }

    pub fn default_tlp(&self) -> Result<Option<Tlp>, ConfigError> {
        self.config
            .enrich
            .default_tlp
            .as_deref()
            .map(|t| {
                t.parse::<Tlp>()
                    .map_err(|e| self.value_error(format!("[enrich] default_tlp: {e}")))
            })
            .transpose()
    }

    /// The egress gate built from `[egress]`, including allowlist files.
    pub fn egress_gate(&self) -> Result<EgressGate, ConfigError> {
        let mut policy = EgressPolicy::default();
        for entry in &self.config.egress.allowlist {
            policy
                .allow(entry)
                .map_err(|e| self.value_error(format!("[egress] allowlist: {e}")))?;
        }
        for file in &self.config.egress.allowlist_files {
            let resolved = self.resolve(file);
            let text = std::fs::read_to_string(&resolved).map_err(|e| {
                self.value_error(format!(
                    "[egress] allowlist_files: cannot read {}: {e}",
                    resolved.display()
                ))
            })?;
            for (number, line) in text.lines().enumerate() {
                let entry = line.split('#').next().unwrap_or("").trim();
                if !entry.is_empty() {
                    policy.allow(entry).map_err(|e| ConfigError::Value {
                        origin: Some(format!("{}:{}", resolved.display(), number + 1)),
                        message: e.to_string(),
                    })?;
                }
            }
        }
        Ok(EgressGate::new(policy))
    }

    /// Relative paths in the configuration are relative to the file they are written in.
    fn resolve(&self, path: &Path) -> PathBuf {
        match self.path.as_ref().and_then(|p| p.parent()) {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// The store URL: the command-line value, else the configured one, else the default.
    pub fn store_url(&self, from_command_line: Option<&str>) -> String {
        from_command_line
            .map(str::to_owned)
            .or_else(|| self.config.store.url.clone())
            .unwrap_or_else(default_store_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_the_defaults() {
        assert_eq!(
            from_toml_str(EXAMPLE).expect("example parses"),
            Config::default()
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = from_toml_str("[enrich]\nconcurency = 4\n").expect_err("typo");
        let text = err.to_string();
        assert!(text.contains("concurency"), "{text}");
        let err = from_toml_str("[sources.virustotal]\nkey = 'x'\n").expect_err("unknown source");
        assert!(err.to_string().contains("virustotal"), "{err}");
    }
}
