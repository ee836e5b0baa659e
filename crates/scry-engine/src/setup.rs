//! The composition root: one call builds what every front end runs on — the egress gate, the
//! sources (given the store's answer archive, its shared rate window and the credits already
//! spent when they are built), the targeting of paid calls, the engine over the store, and the
//! rules with their channels, tickets and blocklists. The CLI's commands, the server, workers and
//! the benchmarks all build through here, so no path wires a source, a budget or a rule apart.

use std::sync::Arc;

use scry_sources::SourceContext;
use scry_store::{Store, StoreError};

use crate::Engine;
use crate::automation::Automation;
use crate::config::{ConfigError, LoadedConfig};

/// Whether to load the rules, and how they act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// No rules: the engine alone (checks, no store, tools that only read).
    Off,
    /// The configured rules (over the store, when one is open); with `dry_run`, actions are
    /// recorded, not done.
    On { dry_run: bool },
}

/// What a front end runs on, built once.
pub struct Services {
    pub engine: Arc<Engine>,
    /// The rules, when asked for (acting only when a store is open).
    pub automation: Option<Arc<Automation>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("sources", &self.engine.sources().len())
            .field("automation", &self.automation)
            .finish()
    }
}

/// Why the services could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading what earlier runs spent from the store failed: {0}")]
    Store(#[from] StoreError),
    /// Every problem of every rule, list and endpoint, each naming where it is.
    #[error("{}", .0.join("\n"))]
    Rules(Vec<String>),
}

/// Builds the services from `loaded` over `store` (none: nothing is kept, nothing shared).
pub async fn build(
    loaded: &LoadedConfig,
    store: Option<&Arc<dyn Store>>,
    rules: Rules,
) -> Result<Services, SetupError> {
    let context = match store {
        Some(store) => crate::archive::source_context(store).await?,
        None => SourceContext::default(),
    };
    let sources = loaded.build_sources(&context)?;
    let mut engine = Engine::new(loaded.egress_gate()?, sources)
        .with_targeting(crate::targeting::from_config(loaded)?);
    if let Some(store) = store {
        engine = engine.with_store(Arc::clone(store));
    }
    let engine = Arc::new(engine);
    let automation = match rules {
        Rules::On { dry_run } => {
            let names: Vec<String> = engine
                .sources()
                .iter()
                .map(|s| s.name().to_owned())
                .collect();
            let mut automation =
                crate::automation::load(loaded, &names).map_err(SetupError::Rules)?;
            if dry_run {
                automation.set_dry_run(true);
            }
            if let Some(store) = store {
                automation = automation.with_store(Arc::clone(store));
            }
            Some(Arc::new(automation.with_engine(Arc::clone(&engine))))
        }
        Rules::Off => None,
    };
    Ok(Services { engine, automation })
}
