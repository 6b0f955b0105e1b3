//! `expected_status`: exact codes, classes (`"2xx"`) and ranges (`"200-299"`).

use crate::model::{Problem, StatusPattern};
use std::ops::RangeInclusive;

/// A parsed `expected_status`: a set of inclusive status ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<RangeInclusive<u16>>);

impl Default for StatusSet {
    /// `["2xx"]`, the default of `expected_status`.
    fn default() -> Self {
        StatusSet(vec![200..=299])
    }
}

impl StatusSet {
    /// Whether `status` is expected.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }
}

impl std::fmt::Display for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match (r.start(), r.end()) {
                (a, b) if a == b => a.to_string(),
                (a, b) if a % 100 == 0 && *b == a + 99 => format!("{}xx", a / 100),
                (a, b) => format!("{a}-{b}"),
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

const VALID: RangeInclusive<u16> = 100..=599;

fn parse_code(s: &str) -> Option<u16> {
    let code: u16 = s.trim().parse().ok()?;
    VALID.contains(&code).then_some(code)
}

fn parse_one(pattern: &StatusPattern) -> Result<RangeInclusive<u16>, String> {
    match pattern {
        StatusPattern::Code(code) if VALID.contains(code) => Ok(*code..=*code),
        StatusPattern::Code(code) => Err(format!("{code} is not an HTTP status code (100 to 599)")),
        StatusPattern::Pattern(text) => {
            let t = text.trim();
            let lower = t.to_ascii_lowercase();
            if let Some(class) = lower.strip_suffix("xx") {
                match class.parse::<u16>() {
                    Ok(c @ 1..=5) if class.len() == 1 => Ok(c * 100..=c * 100 + 99),
                    _ => Err(format!("{text:?} is not a status class; use 1xx to 5xx")),
                }
            } else if let Some((a, b)) = t.split_once('-') {
                match (parse_code(a), parse_code(b)) {
                    (Some(a), Some(b)) if a <= b => Ok(a..=b),
                    _ => Err(format!(
                        "{text:?} is not a status range; write two codes from 100 to 599, low-high, e.g. \"200-299\""
                    )),
                }
            } else if let Some(code) = parse_code(t) {
                Ok(code..=code)
            } else {
                Err(format!(
                    "{text:?} is not a status code, class (\"2xx\") or range (\"200-299\")"
                ))
            }
        }
    }
}

/// Parses `expected_status`, reporting every bad entry.
pub fn parse_patterns(patterns: &[StatusPattern]) -> Result<StatusSet, Vec<Problem>> {
    if patterns.is_empty() {
        return Err(vec![Problem::new(
            "expected_status",
            "is empty; list at least one code or pattern, or leave it out for the default \"2xx\"",
        )]);
    }
    let mut ranges = Vec::new();
    let mut problems = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        match parse_one(p) {
            Ok(r) => ranges.push(r),
            Err(msg) => problems.push(Problem::new(format!("expected_status[{i}]"), msg)),
        }
    }
    if problems.is_empty() {
        Ok(StatusSet(ranges))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StatusPattern::{Code, Pattern};

    fn set(p: &[StatusPattern]) -> StatusSet {
        parse_patterns(p).expect("valid")
    }

    #[test]
    fn default_is_2xx() {
        let s = StatusSet::default();
        assert!(s.contains(200) && s.contains(299) && !s.contains(300) && !s.contains(199));
        assert_eq!(s.to_string(), "2xx");
    }

    #[test]
    fn codes_classes_ranges() {
        let s = set(&[
            Code(201),
            Pattern("4XX".into()),
            Pattern(" 300 - 302 ".into()),
            Pattern("204".into()),
        ]);
        for ok in [201, 400, 499, 300, 302, 204] {
            assert!(s.contains(ok), "{ok}");
        }
        for no in [200, 303, 500] {
            assert!(!s.contains(no), "{no}");
        }
        assert_eq!(s.to_string(), "201, 4xx, 300-302, 204");
    }

    #[test]
    fn bad_entries_are_all_reported() {
        let err = parse_patterns(&[
            Code(99),
            Pattern("6xx".into()),
            Pattern("299-200".into()),
            Pattern("abc".into()),
            Code(200),
        ])
        .expect_err("invalid");
        let paths: Vec<_> = err.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "expected_status[0]",
                "expected_status[1]",
                "expected_status[2]",
                "expected_status[3]"
            ]
        );
        assert!(parse_patterns(&[]).is_err());
    }
}
