//! `pagination` and `poll` (README "Pagination", "Polling"): every
//! contradiction at once, and the plans the run follows, with every default
//! applied once here.

use crate::checks::check_pointer;
use crate::model::{
    DEFAULT_LINK_REL, DEFAULT_MAX_PAGES, DEFAULT_MAX_POLLS, DEFAULT_OFFSET_START,
    DEFAULT_PAGE_INTERVAL_MS, DEFAULT_PAGE_START, DEFAULT_POLL_INTERVAL_MS, DEFAULT_POLL_ON_STATUS,
    DEFAULT_STATUS_URL, Method, PageNext, Pagination, Poll, PollUntil, Problem, ResponseFormat,
    StatusUrl, StepConfig,
};

/// Most pages a step may fetch (`max_pages`).
pub const MAX_PAGES: u32 = 1000;
/// Most polls (`max_polls`).
pub const MAX_POLLS: u32 = 1000;
/// Longest wait between pages.
pub const MAX_PAGE_INTERVAL_MS: u32 = 60_000;
/// Longest wait between polls.
pub const MAX_POLL_INTERVAL_MS: u32 = 3_600_000;
/// Largest `max_total_response_bytes`: 1 GiB.
pub const MAX_TOTAL_RESPONSE_BYTES: u64 = 1 << 30;

/// A checked `pagination`, its defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PagePlan {
    /// How the next page is found.
    pub(crate) next: NextPage,
    /// JSON Pointer to each page's items; none: the page is one item.
    pub(crate) items: Option<String>,
    pub(crate) max_pages: u32,
    pub(crate) max_items: Option<u32>,
    pub(crate) interval_ms: u32,
    pub(crate) allowed_origins: Vec<String>,
}

/// `pagination.next`, its defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NextPage {
    /// The `Link` header's target with relation `rel` (RFC 8288).
    LinkHeader { rel: String },
    /// A URL at a JSON Pointer in the page.
    NextUrl { pointer: String },
    /// A cursor at `pointer`, sent back as query parameter `param`.
    Cursor { pointer: String, param: String },
    /// Query parameter `param` counts pages from `start`.
    Page { param: String, start: u32 },
    /// Query parameter `param` counts items from `start`, by `step` per
    /// page (none: by the items each page had).
    Offset {
        param: String,
        start: u32,
        step: Option<u32>,
    },
}

impl NextPage {
    /// The query parameter the page or offset modes count in, and where it starts.
    pub(crate) fn counter(&self) -> Option<(&str, u32)> {
        match self {
            NextPage::Page { param, start } | NextPage::Offset { param, start, .. } => {
                Some((param, *start))
            }
            _ => None,
        }
    }
}

impl PagePlan {
    fn new(p: &Pagination) -> Self {
        let next = match &p.next {
            PageNext::LinkHeader(l) => NextPage::LinkHeader {
                rel: l.rel.clone().unwrap_or_else(|| DEFAULT_LINK_REL.into()),
            },
            PageNext::NextUrl(pointer) => NextPage::NextUrl {
                pointer: pointer.clone(),
            },
            PageNext::Cursor(c) => NextPage::Cursor {
                pointer: c.pointer.clone(),
                param: c.param.clone(),
            },
            PageNext::Page(n) => NextPage::Page {
                param: n.param.clone(),
                start: n.start.unwrap_or(DEFAULT_PAGE_START),
            },
            PageNext::Offset(o) => NextPage::Offset {
                param: o.param.clone(),
                start: o.start.unwrap_or(DEFAULT_OFFSET_START),
                step: o.step,
            },
        };
        PagePlan {
            next,
            items: p.items.clone(),
            max_pages: p.max_pages.unwrap_or(DEFAULT_MAX_PAGES),
            max_items: p.max_items,
            interval_ms: p.interval_ms.unwrap_or(DEFAULT_PAGE_INTERVAL_MS),
            allowed_origins: p.allowed_origins.clone(),
        }
    }
}

/// A checked `poll`, its defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PollPlan {
    pub(crate) on_status: Vec<u16>,
    pub(crate) status_url: StatusUrl,
    pub(crate) until: Option<PollUntil>,
    pub(crate) interval_ms: u32,
    pub(crate) max_polls: u32,
    pub(crate) allowed_origins: Vec<String>,
}

impl PollPlan {
    fn new(p: &Poll) -> Self {
        PollPlan {
            on_status: p
                .on_status
                .clone()
                .unwrap_or_else(|| DEFAULT_POLL_ON_STATUS.to_vec()),
            status_url: p.status_url.clone().unwrap_or(DEFAULT_STATUS_URL),
            until: p.until.clone(),
            interval_ms: p.interval_ms.unwrap_or(DEFAULT_POLL_INTERVAL_MS),
            max_polls: p.max_polls.unwrap_or(DEFAULT_MAX_POLLS),
            allowed_origins: p.allowed_origins.clone(),
        }
    }
}

/// The plans of a config's `pagination` and `poll`.
pub(crate) type Plans = (Option<PagePlan>, Option<PollPlan>);

/// Checks `pagination`, `poll` and `max_total_response_bytes`, adding every
/// problem to `problems`; the plans when there was none.
pub(crate) fn plan(config: &StepConfig, problems: &mut Vec<Problem>) -> Option<Plans> {
    let before = problems.len();
    check(config, problems);
    (problems.len() == before).then(|| {
        (
            config.pagination.as_ref().map(PagePlan::new),
            config.poll.as_ref().map(PollPlan::new),
        )
    })
}

/// The problems of `pagination`, `poll` and `max_total_response_bytes`.
fn check(config: &StepConfig, problems: &mut Vec<Problem>) {
    if config.pagination.is_some() && config.poll.is_some() {
        problems.push(Problem::new("poll", "cannot be combined with pagination; a step either pages through a listing or waits for a job"));
    }
    if let Some(total) = config.max_total_response_bytes
        && !(1..=MAX_TOTAL_RESPONSE_BYTES).contains(&total)
    {
        problems.push(Problem::new(
            "max_total_response_bytes",
            format!("must be from 1 to {MAX_TOTAL_RESPONSE_BYTES} (1 GiB), not {total}"),
        ));
    }
    let needs_json = |field: &str, problems: &mut Vec<Problem>| {
        let format = config.response_format();
        if matches!(format, ResponseFormat::Text | ResponseFormat::Binary) {
            problems.push(Problem::new(
                "response_format",
                format!(
                    "is {}, but {field} reads the response JSON; use \"auto\" or \"json\"",
                    format.as_str()
                ),
            ));
        }
        if config.method == Method::Head {
            problems.push(Problem::new(
                "method",
                format!("HEAD responses have no body, which {field} needs; use GET"),
            ));
        }
    };
    if let Some(p) = &config.pagination {
        check_pagination(config, p, problems);
        needs_json("pagination", problems);
    }
    if let Some(p) = &config.poll {
        check_poll(p, problems);
        if p.until.is_some() || matches!(p.status_url, Some(StatusUrl::Pointer(_))) {
            needs_json("poll", problems);
        }
    }
}

fn check_pagination(config: &StepConfig, p: &Pagination, problems: &mut Vec<Problem>) {
    const AT: &str = "pagination";
    match p.max_pages {
        Some(n) if !(1..=MAX_PAGES).contains(&n) => problems.push(Problem::new(
            format!("{AT}.max_pages"),
            format!("must be from 1 to {MAX_PAGES}, not {n}"),
        )),
        _ => {}
    }
    if p.max_items == Some(0) {
        problems.push(Problem::new(
            format!("{AT}.max_items"),
            "must be at least 1 (leave it out for no limit)",
        ));
    }
    if let Some(ms) = p.interval_ms.filter(|&ms| ms > MAX_PAGE_INTERVAL_MS) {
        problems.push(Problem::new(
            format!("{AT}.interval_ms"),
            format!("must be at most {MAX_PAGE_INTERVAL_MS}, not {ms}"),
        ));
    }
    match &p.items {
        Some(items) => check_pointer(&format!("{AT}.items"), items, problems),
        None if matches!(p.next, PageNext::Page(_) | PageNext::Offset(_)) => problems.push(Problem::new(
            format!("{AT}.items"),
            "is required with page and offset pagination, which stop on an empty page; give the pointer to each page's array, e.g. \"/data\"",
        )),
        None => {}
    }
    let (field, param) = match &p.next {
        PageNext::LinkHeader(l) => {
            if l.rel
                .as_ref()
                .is_some_and(|r| r.trim().is_empty() || r.contains(char::is_whitespace))
            {
                problems.push(Problem::new(
                    format!("{AT}.next.link_header.rel"),
                    "must be one relation type, such as \"next\"",
                ));
            }
            (None, None)
        }
        PageNext::NextUrl(pointer) => {
            check_pointer(&format!("{AT}.next.next_url"), pointer, problems);
            (None, None)
        }
        PageNext::Cursor(c) => {
            check_pointer(&format!("{AT}.next.cursor.pointer"), &c.pointer, problems);
            (Some("cursor"), Some(c.param.as_str()))
        }
        PageNext::Page(n) => (Some("page"), Some(n.param.as_str())),
        PageNext::Offset(o) => {
            if o.step == Some(0) {
                problems.push(Problem::new(
                    format!("{AT}.next.offset.step"),
                    "must be at least 1 (leave it out to step by the items of each page)",
                ));
            }
            (Some("offset"), Some(o.param.as_str()))
        }
    };
    if let (Some(mode), Some(param)) = (field, param) {
        let path = format!("{AT}.next.{mode}.param");
        if param.is_empty() {
            problems.push(Problem::new(
                path,
                "is empty; give the query parameter's name",
            ));
        } else if query_sets(config, param) {
            problems.push(Problem::new(
                path,
                format!("{param:?} is already set by the configured query or URL; pagination sets it on every page, so remove it there"),
            ));
        }
    }
    check_origins(
        &format!("{AT}.allowed_origins"),
        &p.allowed_origins,
        problems,
    );
}

/// Whether the configured URL or `query` already sets parameter `name`.
fn query_sets(config: &StepConfig, name: &str) -> bool {
    let in_url =
        url::Url::parse(config.url.trim()).is_ok_and(|u| u.query_pairs().any(|(k, _)| k == name));
    in_url || config.query.iter().any(|kv| kv.key == name)
}

fn check_poll(p: &Poll, problems: &mut Vec<Problem>) {
    const AT: &str = "poll";
    if let Some(statuses) = &p.on_status {
        if statuses.is_empty() {
            problems.push(Problem::new(
                format!("{AT}.on_status"),
                "is empty; list the statuses that mean \"still running\", e.g. [202]",
            ));
        }
        for (i, s) in statuses.iter().enumerate() {
            if !(100..=599).contains(s) {
                problems.push(Problem::new(
                    format!("{AT}.on_status[{i}]"),
                    format!("{s} is not an HTTP status (100 to 599)"),
                ));
            }
        }
    }
    if let Some(StatusUrl::Pointer(pointer)) = &p.status_url {
        check_pointer(&format!("{AT}.status_url.pointer"), pointer, problems);
    }
    if let Some(until) = &p.until {
        check_pointer(&format!("{AT}.until.pointer"), &until.pointer, problems);
        if until.success.is_empty() {
            problems.push(Problem::new(
                format!("{AT}.until.success"),
                "is empty; list the states that mean the job is done, e.g. [\"succeeded\"]",
            ));
        }
        if let Some(both) = until.success.iter().find(|s| until.failure.contains(s)) {
            problems.push(Problem::new(
                format!("{AT}.until.failure"),
                format!("{both:?} is listed as success too"),
            ));
        }
    }
    match p.max_polls {
        Some(n) if !(1..=MAX_POLLS).contains(&n) => problems.push(Problem::new(
            format!("{AT}.max_polls"),
            format!("must be from 1 to {MAX_POLLS}, not {n}"),
        )),
        _ => {}
    }
    if let Some(ms) = p.interval_ms.filter(|&ms| ms > MAX_POLL_INTERVAL_MS) {
        problems.push(Problem::new(
            format!("{AT}.interval_ms"),
            format!("must be at most {MAX_POLL_INTERVAL_MS} (1 hour), not {ms}"),
        ));
    }
    check_origins(
        &format!("{AT}.allowed_origins"),
        &p.allowed_origins,
        problems,
    );
}

/// Each entry must be an origin: `https://host[:port]` (or `http://`), nothing more.
fn check_origins(field: &str, origins: &[String], problems: &mut Vec<Problem>) {
    for (i, origin) in origins.iter().enumerate() {
        let ok = url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "https" | "http")
                && u.host_str().is_some()
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
        }) && !origin.trim_end_matches('/').ends_with(':');
        if !ok {
            problems.push(Problem::new(
                format!("{field}[{i}]"),
                format!(
                    "{origin:?} is not an origin; write \"https://host\" or \"https://host:port\""
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{
        CursorNext, KeyValue, PageNext, PageNumberNext, Pagination, Poll, PollUntil, Problem,
        StepConfig,
    };

    fn validate(c: &StepConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        super::check(c, &mut problems);
        problems
    }

    #[test]
    fn contradictions_are_reported_at_once() {
        let mut c = StepConfig::get("https://api.test/items?page=1");
        c.query = vec![KeyValue::new("cursor", "x")];
        c.pagination = Some(Pagination {
            next: PageNext::Page(PageNumberNext {
                param: "page".into(),
                start: None,
            }),
            items: None,
            max_pages: Some(0),
            max_items: Some(0),
            interval_ms: None,
            allowed_origins: vec!["https://ok.test".into(), "https://x.test/path".into()],
        });
        c.poll = Some(Poll {
            on_status: Some(vec![]),
            status_url: None,
            until: Some(PollUntil {
                pointer: "status".into(),
                success: vec![],
                failure: vec![],
            }),
            interval_ms: None,
            max_polls: Some(0),
            allowed_origins: vec![],
        });
        let paths: Vec<String> = validate(&c).into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "poll",
                "pagination.max_pages",
                "pagination.max_items",
                "pagination.items",
                "pagination.next.page.param",
                "pagination.allowed_origins[1]",
                "poll.on_status",
                "poll.until.pointer",
                "poll.until.success",
                "poll.max_polls"
            ]
        );
        let mut c = StepConfig::get("https://api.test/items");
        c.query = vec![KeyValue::new("cursor", "x")];
        c.pagination = Some(Pagination {
            next: PageNext::Cursor(CursorNext {
                pointer: "/next".into(),
                param: "cursor".into(),
            }),
            items: None,
            max_pages: None,
            max_items: None,
            interval_ms: None,
            allowed_origins: vec![],
        });
        assert!(validate(&c)[0].message.contains("already set"));
    }
}
