//! scry's automation rules, pure: what a rule says, whether it matches an indicator, and the
//! messages its actions send. Running the actions (HTTP calls, store writes) is the engine's job.
//!
//! - [`lists`]: named lists of values and networks that conditions refer to by name.
//! - [`context`]: the documented indicator and budget contexts a condition sees.
//! - [`condition`]: CEL conditions, checked when loaded against the context's fields and types
//!   (every mistake an error with its position), evaluated per indicator.
//! - [`file`]: rule files read with the line and column of every part.
//! - [`rule`]: rules and playbooks as written in configuration, compiled into a [`RuleSet`].
//! - [`reference`]: the rules reference (`docs/rules.md`), generated from the definitions above.
//! - [`template`]: sandboxed message and ticket templates, with ready-made ones for Slack,
//!   Microsoft Teams, Jira, ServiceNow and generic JSON.

mod check;
pub mod condition;
pub mod context;
pub mod file;
pub mod lists;
mod native;
pub mod reference;
pub mod rule;
pub mod template;

pub use condition::{Condition, ConditionError};
pub use context::{BudgetContext, CriminalIpContext, IndicatorContext, PreviousContext};
pub use file::{Place, RuleSource, read_playbook, read_rules};
pub use lists::{ListError, NamedLists};
pub use rule::{
    ActionSpec, Rule, RuleError, RuleSet, RuleSpec, Trigger, WORKFLOW_STATUSES, check_status,
};
pub use template::{Template, TemplateError};
