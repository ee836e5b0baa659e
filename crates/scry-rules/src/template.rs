//! Message and ticket bodies, rendered from templates in a sandbox: minijinja with a fuel limit,
//! no file or network access, and only the values handed in (the indicator context, the rule, the
//! reasons, the channel's parameters).
//!
//! Ready-made templates: `slack` and `teams` (incoming webhooks), `json` (the whole event, for
//! any receiver), `jira` (REST API v2 create issue) and `servicenow` (Table API incident). A
//! channel may instead give its own template text.

use minijinja::Environment;
use serde::Serialize;

/// Fuel for one rendering: far more than any real message needs, small enough that a template
/// looping over a huge value stops.
const FUEL: u64 = 200_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template {0:?}: use slack, teams, json, jira, servicenow, or give `body`")]
    Unknown(String),
    #[error("template does not compile: {0}")]
    Syntax(String),
    #[error("template failed to render: {0}")]
    Render(String),
    #[error("template rendered invalid JSON ({0}); use the `tojson` filter for values")]
    NotJson(String),
}

const SLACK: &str = r#"{"text": {{ (":rotating_light: *" ~ indicator.severity|upper ~ "* " ~ indicator.type ~ " `" ~ indicator.value ~ "` priority " ~ indicator.priority ~ " (rule " ~ rule ~ ")" ~ (reasons_text and ("\n" ~ reasons_text) or "") ~ (indicator.criminalip.report_url and ("\n<" ~ indicator.criminalip.report_url ~ "|Criminal IP report>") or "")) | tojson }}}"#;

const TEAMS: &str = r#"{"@type": "MessageCard", "@context": "https://schema.org/extensions", "themeColor": {{ (indicator.priority >= 80 and "C4314B" or "E3A21A") | tojson }}, "summary": {{ ("scry: " ~ indicator.value) | tojson }}, "title": {{ (indicator.severity|upper ~ " " ~ indicator.type ~ " " ~ indicator.value ~ " priority " ~ indicator.priority) | tojson }}, "text": {{ ("Rule " ~ rule ~ (reasons_text and ("\n\n" ~ reasons_text) or "")) | tojson }}{% if indicator.criminalip.report_url %}, "potentialAction": [{"@type": "OpenUri", "name": "Criminal IP report", "targets": [{"os": "default", "uri": {{ indicator.criminalip.report_url | tojson }}}]}]{% endif %}}"#;

const JSON: &str = r#"{"source": "scry", "rule": {{ rule | tojson }}, "action": {{ action | tojson }}, "indicator": {{ indicator | tojson }}, "reasons": {{ reasons | tojson }}}"#;

const JIRA: &str = r#"{"fields": {"project": {"key": {{ params.project | default("SOC") | tojson }}}, "issuetype": {"name": {{ params.issue_type | default("Task") | tojson }}}, "summary": {{ ("[scry] " ~ indicator.severity ~ " " ~ indicator.type ~ " " ~ indicator.value ~ " priority " ~ indicator.priority) | tojson }}, "description": {{ ("Rule: " ~ rule ~ "\nReasons:\n" ~ reasons_text ~ (indicator.criminalip.report_url and ("\nReport: " ~ indicator.criminalip.report_url) or "")) | tojson }}, "labels": ["scry"]}}"#;

const SERVICENOW: &str = r#"{"short_description": {{ ("[scry] " ~ indicator.severity ~ " " ~ indicator.type ~ " " ~ indicator.value ~ " priority " ~ indicator.priority) | tojson }}, "description": {{ ("Rule: " ~ rule ~ "\nReasons:\n" ~ reasons_text ~ (indicator.criminalip.report_url and ("\nReport: " ~ indicator.criminalip.report_url) or "")) | tojson }}, "category": "security", "urgency": {{ (indicator.priority >= 80 and "1" or "2") | tojson }}, "impact": {{ (indicator.priority >= 80 and "1" or "2") | tojson }}{% if params.assignment_group %}, "assignment_group": {{ params.assignment_group | tojson }}{% endif %}}"#;

/// The text of a ready-made template.
pub fn builtin(name: &str) -> Option<&'static str> {
    Some(match name {
        "slack" => SLACK,
        "teams" => TEAMS,
        "json" => JSON,
        "jira" => JIRA,
        "servicenow" => SERVICENOW,
        _ => return None,
    })
}

/// A compiled-and-checked template, by text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    /// The result must be JSON (every ready-made template, and custom ones sent as JSON).
    json: bool,
}

impl Template {
    /// A ready-made template by name, or `body` when given (JSON when `json`).
    pub fn new(
        name: Option<&str>,
        body: Option<&str>,
        json: bool,
    ) -> Result<Template, TemplateError> {
        let (source, json) = match (body, name) {
            (Some(body), _) => (body.to_owned(), json),
            (None, Some(name)) => (
                builtin(name)
                    .ok_or_else(|| TemplateError::Unknown(name.to_owned()))?
                    .to_owned(),
                true,
            ),
            (None, None) => (JSON.to_owned(), true),
        };
        environment()
            .template_from_str(&source)
            .map_err(|e| TemplateError::Syntax(e.to_string()))?;
        Ok(Template { source, json })
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Renders the template with `context`.
    pub fn render(&self, context: &impl Serialize) -> Result<String, TemplateError> {
        let env = environment();
        let text = env
            .render_str(&self.source, context)
            .map_err(|e| TemplateError::Render(e.to_string()))?;
        if self.json
            && let Err(e) = serde_json::from_str::<serde_json::Value>(&text)
        {
            return Err(TemplateError::NotJson(e.to_string()));
        }
        Ok(text)
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn context() -> Value {
        json!({
            "rule": "block-high",
            "action": "notify",
            "indicator": {"type": "ipv4-addr", "value": "203.0.113.9", "priority": 92, "severity": "critical",
                          "criminalip": {"report_url": "https://www.criminalip.io/asset/report/203.0.113.9"}},
            "reasons": [{"signal": "inbound-score", "value": "Critical \"quoted\"", "points": 40}],
            "reasons_text": "+40 inbound-score Critical \"quoted\"",
            "params": {"project": "SEC"}
        })
    }

    #[test]
    fn ready_made_templates_render_valid_json_with_the_values() {
        for name in ["slack", "teams", "json", "jira", "servicenow"] {
            let text = Template::new(Some(name), None, false)
                .expect(name)
                .render(&context())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let value: Value = serde_json::from_str(&text).expect(name);
            assert!(text.contains("203.0.113.9"), "{name}: {text}");
            assert!(
                text.contains("Critical \\\"quoted\\\""),
                "{name} escapes: {text}"
            );
            if name == "jira" {
                assert_eq!(value["fields"]["project"]["key"], "SEC");
                assert_eq!(value["fields"]["issuetype"]["name"], "Task");
            }
        }
    }

    #[test]
    fn custom_templates_are_checked_and_sandboxed() {
        assert!(matches!(
            Template::new(Some("pager"), None, true),
            Err(TemplateError::Unknown(_))
        ));
        assert!(matches!(
            Template::new(None, Some("{{ broken"), true),
            Err(TemplateError::Syntax(_))
        ));
        let plain = Template::new(
            None,
            Some("{{ indicator.value }} is {{ indicator.severity }}"),
            false,
        )
        .expect("compiles");
        assert_eq!(
            plain.render(&context()).expect("renders"),
            "203.0.113.9 is critical"
        );
        let not_json =
            Template::new(None, Some("{\"v\": {{ indicator.value }}}"), true).expect("compiles");
        assert!(matches!(
            not_json.render(&context()),
            Err(TemplateError::NotJson(_))
        ));
        let endless = Template::new(
            None,
            Some(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            ),
            false,
        )
        .expect("compiles");
        assert!(
            matches!(endless.render(&context()), Err(TemplateError::Render(_))),
            "fuel runs out"
        );
    }
}
