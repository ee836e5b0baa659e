//! Priority with its explanation: every point an indicator scores is a [`Reason`] that names the
//! source, the signal, the observed value and the points it added.
//!
//! The priority is the sum of the reasons' points clamped to 0–100, so an analyst can always
//! recompute it from the list shown beside it. Severity bands follow the priority.

/// One contribution to an indicator's priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub source: String,
    pub signal: String,
    pub value: String,
    pub points: i32,
}

impl Reason {
    pub fn new(source: &str, signal: &str, value: impl Into<String>, points: i32) -> Reason {
        Reason {
            source: source.into(),
            signal: signal.into(),
            value: value.into(),
            points,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The band a priority falls in: critical ≥ 90, high ≥ 70, medium ≥ 40, low ≥ 20, else info.
    pub fn from_priority(priority: u8) -> Severity {
        match priority {
            90.. => Severity::Critical,
            70..=89 => Severity::High,
            40..=69 => Severity::Medium,
            20..=39 => Severity::Low,
            _ => Severity::Info,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

/// The priority the reasons add up to.
pub fn priority(reasons: &[Reason]) -> u8 {
    let sum: i64 = reasons.iter().map(|r| i64::from(r.points)).sum();
    sum.clamp(0, 100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(points: i32) -> Reason {
        Reason {
            source: "s".into(),
            signal: "x".into(),
            value: "v".into(),
            points,
        }
    }

    #[test]
    fn priority_is_the_clamped_sum() {
        assert_eq!(priority(&[]), 0);
        assert_eq!(priority(&[reason(30), reason(25)]), 55);
        assert_eq!(priority(&[reason(80), reason(40)]), 100);
        assert_eq!(priority(&[reason(10), reason(-30)]), 0);
    }

    #[test]
    fn severity_bands() {
        let bands: Vec<_> = [0, 19, 20, 39, 40, 69, 70, 89, 90, 100]
            .map(|p| Severity::from_priority(p).as_str())
            .to_vec();
        assert_eq!(
            bands,
            [
                "info", "info", "low", "low", "medium", "medium", "high", "high", "critical",
                "critical"
            ]
        );
    }
}
