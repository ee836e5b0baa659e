//! Message and ticket bodies, rendered from templates in a sandbox: minijinja with a fuel limit,
//! no file or network access, and only the values handed in (the indicator context, the rule, the
//! reasons, the channel's parameters).
//!
//! Ready-made templates: `slack` and `teams` (incoming webhooks), `json` (the whole event, for
//! any receiver), `email` (plain text, with [`EMAIL_SUBJECT`] as its subject), `jira` (REST API v2
//! create issue) and `servicenow` (Table API incident). A channel may instead give its own
//! template text.
//!
//! Messages are about an indicator (`indicator`, `reasons`, `reasons_text`) or, for
//! `budget-alert` rules, about a source's credits (`budget`); the message templates say either.
//! Every template also sees `rule`, `action`, `trigger` and the channel's `params`.

use minijinja::Environment;
use serde::Serialize;

/// Fuel for one rendering: far more than any real message needs, small enough that a template
/// looping over a huge value stops.
const FUEL: u64 = 200_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown template {0:?}: use slack, teams, json, email, jira, servicenow, or give `body`"
    )]
    Unknown(String),
    #[error("template does not compile: {0}")]
    Syntax(String),
    #[error("template failed to render: {0}")]
    Render(String),
    #[error("template rendered invalid JSON ({0}); use the `tojson` filter for values")]
    NotJson(String),
}

const SLACK: &str = r#"{% if budget %}{"text": {{ (":warning: *" ~ budget.source ~ " credits*: " ~ budget.message ~ " (rule " ~ rule ~ ")") | tojson }}}{% else %}{"text": {{ (":rotating_light: *" ~ indicator.severity|upper ~ "* " ~ indicator.type ~ " `" ~ indicator.value ~ "` priority " ~ indicator.priority ~ " (rule " ~ rule ~ ")" ~ (reasons_text and ("\n" ~ reasons_text) or "") ~ (indicator.criminalip.report_url and ("\n<" ~ indicator.criminalip.report_url ~ "|Criminal IP report>") or "")) | tojson }}}{% endif %}"#;

const TEAMS: &str = r#"{% if budget %}{"@type": "MessageCard", "@context": "https://schema.org/extensions", "themeColor": {{ (budget.event == "alert" and "E3A21A" or "C4314B") | tojson }}, "summary": {{ ("scry: " ~ budget.source ~ " credits") | tojson }}, "title": {{ (budget.source ~ " credits") | tojson }}, "text": {{ (budget.message ~ "\n\nRule " ~ rule) | tojson }}}{% else %}{"@type": "MessageCard", "@context": "https://schema.org/extensions", "themeColor": {{ (indicator.priority >= 80 and "C4314B" or "E3A21A") | tojson }}, "summary": {{ ("scry: " ~ indicator.value) | tojson }}, "title": {{ (indicator.severity|upper ~ " " ~ indicator.type ~ " " ~ indicator.value ~ " priority " ~ indicator.priority) | tojson }}, "text": {{ ("Rule " ~ rule ~ (reasons_text and ("\n\n" ~ reasons_text) or "")) | tojson }}{% if indicator.criminalip.report_url %}, "potentialAction": [{"@type": "OpenUri", "name": "Criminal IP report", "targets": [{"os": "default", "uri": {{ indicator.criminalip.report_url | tojson }}}]}]{% endif %}}{% endif %}"#;

const JSON: &str = r#"{"source": "scry", "rule": {{ rule | tojson }}, "action": {{ action | tojson }}, {% if budget %}"budget": {{ budget | tojson }}{% else %}"indicator": {{ indicator | tojson }}, "reasons": {{ reasons | tojson }}{% endif %}}"#;

const EMAIL: &str = r#"{% if budget %}{{ budget.message }}

Source: {{ budget.source }}
{% if budget.period %}Period: {{ budget.period }}
Used: {{ budget.used }} of {{ budget.limit }} credits ({{ budget.percent }} %)
{% endif %}Rule: {{ rule }}
{% else %}{{ indicator.severity | upper }} {{ indicator.type }} {{ indicator.value }}, priority {{ indicator.priority }}

Rule: {{ rule }}
Status: {{ indicator.status or "new" }}
{% if indicator.asn %}Network: AS{{ indicator.asn }} {{ indicator.as_name }}{% if indicator.country %} ({{ indicator.country }}){% endif %}
{% endif %}{% if reasons_text %}
Why:
{{ reasons_text }}
{% endif %}{% if indicator.criminalip.report_url %}
Criminal IP report: {{ indicator.criminalip.report_url }}
{% endif %}{% endif %}
-- 
scry
"#;

/// The subject line of `email` messages.
pub const EMAIL_SUBJECT: &str = r#"{% if budget %}[scry] {{ budget.source }} credits: {{ budget.message }}{% else %}[scry] {{ indicator.severity | upper }} {{ indicator.type }} {{ indicator.value }} priority {{ indicator.priority }} ({{ rule }}){% endif %}"#;

const JIRA: &str = r#"{"fields": {"project": {"key": {{ params.project | default("SOC") | tojson }}}, "issuetype": {"name": {{ params.issue_type | default("Task") | tojson }}}, "summary": {{ ("[scry] " ~ indicator.severity ~ " " ~ indicator.type ~ " " ~ indicator.value ~ " priority " ~ indicator.priority) | tojson }}, "description": {{ ("Rule: " ~ rule ~ "\nReasons:\n" ~ reasons_text ~ (indicator.criminalip.report_url and ("\nReport: " ~ indicator.criminalip.report_url) or "")) | tojson }}, "labels": ["scry"]}}"#;

const SERVICENOW: &str = r#"{"short_description": {{ ("[scry] " ~ indicator.severity ~ " " ~ indicator.type ~ " " ~ indicator.value ~ " priority " ~ indicator.priority) | tojson }}, "description": {{ ("Rule: " ~ rule ~ "\nReasons:\n" ~ reasons_text ~ (indicator.criminalip.report_url and ("\nReport: " ~ indicator.criminalip.report_url) or "")) | tojson }}, "category": "security", "urgency": {{ (indicator.priority >= 80 and "1" or "2") | tojson }}, "impact": {{ (indicator.priority >= 80 and "1" or "2") | tojson }}{% if params.assignment_group %}, "assignment_group": {{ params.assignment_group | tojson }}{% endif %}}"#;

/// The text of a ready-made template, and whether it renders JSON.
pub fn builtin(name: &str) -> Option<(&'static str, bool)> {
    Some(match name {
        "slack" => (SLACK, true),
        "teams" => (TEAMS, true),
        "json" => (JSON, true),
        "email" => (EMAIL, false),
        "jira" => (JIRA, true),
        "servicenow" => (SERVICENOW, true),
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
            (None, Some(name)) => {
                let (text, json) =
                    builtin(name).ok_or_else(|| TemplateError::Unknown(name.to_owned()))?;
                (text.to_owned(), json)
            }
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
    fn messages_about_credits_say_so_in_every_ready_made_form() {
        let budget = json!({
            "rule": "credits-low",
            "action": "notify",
            "budget": {"source": "criminalip", "event": "alert", "period": "daily", "used": 80,
                       "limit": 100, "percent": 80,
                       "message": "daily credits at 80 % (80 of 100)"},
            "params": {}
        });
        for name in ["slack", "teams", "json"] {
            let text = Template::new(Some(name), None, false)
                .expect(name)
                .render(&budget)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
            assert!(text.contains("80 of 100"), "{name}: {text}");
            assert!(
                !text.contains("priority"),
                "{name} is not about an indicator: {text}"
            );
        }
        let email = Template::new(Some("email"), None, true).expect("email");
        assert!(
            !email.is_json(),
            "e-mail is plain text whatever the channel says"
        );
        let text = email.render(&budget).expect("renders");
        assert!(
            text.starts_with("daily credits at 80 % (80 of 100)\n"),
            "{text}"
        );
        assert!(text.contains("Used: 80 of 100 credits (80 %)"), "{text}");
        let subject = Template::new(None, Some(EMAIL_SUBJECT), false).expect("subject");
        assert_eq!(
            subject.render(&budget).expect("renders"),
            "[scry] criminalip credits: daily credits at 80 % (80 of 100)"
        );
        let text = email.render(&context()).expect("renders");
        assert!(
            text.starts_with("CRITICAL ipv4-addr 203.0.113.9, priority 92\n"),
            "{text}"
        );
        assert!(text.contains("Why:\n+40 inbound-score"), "{text}");
        assert!(
            text.contains("Criminal IP report: https://www.criminalip.io/asset/report/203.0.113.9"),
            "{text}"
        );
        assert_eq!(
            subject.render(&context()).expect("renders"),
            "[scry] CRITICAL ipv4-addr 203.0.113.9 priority 92 (block-high)"
        );
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
