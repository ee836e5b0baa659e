//! scry's automation rules, pure: what a rule says, whether it matches an indicator, and the
//! messages its actions send. Running the actions (HTTP calls, store writes) is the engine's job.
//!
//! - [`lists`]: named lists of values and networks that conditions refer to by name.
//! - [`context`]: the documented indicator and budget contexts a condition sees.
//! - [`condition`]: CEL conditions, checked when loaded (unknown variables, functions and list
//!   names are errors with their position), evaluated per indicator.
//! - [`rule`]: rules and playbooks as written in configuration, compiled into a [`RuleSet`].
//! - [`template`]: sandboxed message and ticket templates, with ready-made ones for Slack,
//!   Microsoft Teams, Jira, ServiceNow and generic JSON.

pub mod condition;
pub mod context;
pub mod lists;
mod native;
pub mod rule;
pub mod template;

pub use condition::{Condition, ConditionError};
pub use context::{BudgetContext, CriminalIpContext, IndicatorContext, PreviousContext};
pub use lists::{ListError, NamedLists};
pub use rule::{ActionSpec, Rule, RuleError, RuleSet, RuleSpec, Trigger};
pub use template::{Template, TemplateError};
