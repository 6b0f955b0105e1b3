//! Pagination: one step follows a listing's pages (README "Pagination").
//!
//! Each page is a request of its own — its retries, timeout, fresh token and
//! signature — built from the first ([`super::follow`]); next links are
//! origin-locked. The items of every page are kept as JSON text, not parsed
//! values, so 1,000 pages of small items cost about their bytes; the sum of
//! the pages' bodies is capped by `max_total_response_bytes`.

use super::Done;
use super::Effects;
use super::attempts::{Exchange, Label, Session, use_json};
use super::follow::request_to;
use super::plan::Plan;
use super::redact::Redacting;
use crate::model::{PageSummary, PagesOutcome, PagesStop, Response, StepError, WaitReason};
use crate::request::{PreparedRequest, set_query_param};
use crate::sequence::{NextPage, PagePlan};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The items kept so far, as JSON text: one piece per page, joined into one
/// array at the end. (One string grown page by page would double its
/// buffer as it grows and leave the halves behind: about 4x the items' size
/// at its peak instead of 2x.)
struct Items {
    pages: Vec<String>,
    len: usize,
    count: u32,
    max: Option<u32>,
}

impl Items {
    /// Appends a page's `items`; false when `max_items` cut some off.
    fn extend<'a>(&mut self, items: impl Iterator<Item = &'a Value>) -> bool {
        let mut page = String::new();
        let mut all = true;
        for item in items {
            if self.max.is_some_and(|max| self.count >= max) {
                all = false;
                break;
            }
            if self.count > 0 {
                page.push(',');
            }
            page.push_str(&item.to_string());
            self.count += 1;
        }
        self.len += page.len();
        self.pages.push(page);
        all
    }

    fn full(&self) -> bool {
        self.max.is_some_and(|max| self.count >= max)
    }

    /// The JSON array of every item.
    fn into_json(self) -> String {
        let mut text = String::with_capacity(self.len + 2);
        text.push('[');
        for page in self.pages {
            text.push_str(&page);
        }
        text.push(']');
        text
    }
}

/// Fetches the pages, from the plan's request on.
pub(super) fn follow(
    plan: &Plan,
    p: &PagePlan,
    session: &mut Session<'_>,
    fx: &mut Redacting<'_>,
) -> Done {
    let max_pages = p.max_pages;
    let mut items = Items {
        pages: Vec::new(),
        len: 0,
        count: 0,
        max: p.max_items,
    };
    let mut pages: Vec<PageSummary> = Vec::new();
    let mut total_bytes: u64 = 0;
    let mut previous: Option<[u8; 32]> = None;
    // The page or offset counter of those modes: the first page's, then the next's.
    let mut position: u64 = 0;
    let mut request = plan.request.clone();
    if let Some((param, start)) = p.next.counter() {
        position = u64::from(start);
        set_query_param(&mut request.url, param, &position.to_string());
    }
    let mut same_origin = true;
    let mut number: u32 = 1;
    // The last page's response, for the output when a later page cannot be
    // fetched because the host's request budget is spent.
    let mut last_page: Option<Response> = None;
    let failed = |pages: Vec<PageSummary>, response: Option<Response>, error: StepError| Done {
        response,
        outputs: Vec::new(),
        error: Some(error),
        pagination: Some(PagesOutcome {
            pages,
            truncated: false,
            stopped: PagesStop::Failed,
        }),
    };
    let (last, stopped, truncated) = loop {
        let ex = Exchange {
            request: &request,
            label: Label::Page(number),
            also_ok: &[],
            use_json: false,
            credentials: same_origin,
        };
        let got = session.exchange(&ex, fx);
        if got.budget_spent
            && let Some(last) = last_page.take()
        {
            // Like max_pages: the pages so far are the output, marked truncated.
            fx.progress(&format!(
                "page {number}: the host's request budget for this run is spent; stopping"
            ));
            break (last, PagesStop::MaxRequestsPerRun, true);
        }
        let response = match (got.response, got.error) {
            (response, Some(error)) => return failed(pages, response, error),
            (Some(response), None) => response,
            (None, None) => {
                return failed(
                    pages,
                    None,
                    StepError::Internal(format!("page {number} ended without a response")),
                );
            }
        };
        let Some(json) = got.json else {
            let error = StepError::InvalidResponse(format!(
                "page {number} is not JSON; pagination reads each page's JSON"
            ));
            return failed(pages, Some(response), error);
        };
        let page_items: Vec<&Value> = match &p.items {
            None => vec![&json],
            Some(pointer) => match json.pointer(pointer) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(list)) => list.iter().collect(),
                Some(other) => {
                    let error = StepError::InvalidResponse(format!(
                        "page {number}: pagination.items {pointer:?} is {}, not a list of items",
                        crate::model::json_type_name(other)
                    ));
                    return failed(pages, Some(response), error);
                }
            },
        };
        total_bytes += response.body.len() as u64;
        let hash: [u8; 32] = Sha256::digest(response.body.as_bytes()).into();
        let repeated = previous == Some(hash);
        previous = Some(hash);
        let added = if repeated { 0 } else { page_items.len() };
        let before = items.count;
        let all_kept = repeated || items.extend(page_items.iter().copied());
        pages.push(PageSummary {
            page: number,
            status: response.status,
            items: items.count - before,
        });
        fx.progress(&format!(
            "page {number}: {} items{}",
            items.count - before,
            if repeated {
                " (the same page as before: stopping)"
            } else {
                ""
            }
        ));
        if repeated {
            break (response, PagesStop::RepeatedPage, false);
        }
        let found = next_target(
            &p.next,
            &request,
            &plan.request,
            &response,
            &json,
            &mut position,
            added,
        );
        if added == 0 {
            break (response, PagesStop::EmptyPage, false);
        }
        // max_items cut this page short, or is reached with more pages there.
        if !all_kept || (items.full() && number < max_pages && matches!(found, Ok(Some(_)))) {
            break (response, PagesStop::MaxItems, true);
        }
        if total_bytes > plan.max_total_response_bytes {
            break (response, PagesStop::MaxTotalResponseBytes, true);
        }
        let target = match found {
            Ok(Some(target)) => target,
            Ok(None) => break (response, PagesStop::NoNext, false),
            Err(error) => return failed(pages, Some(response), error.with_page(number)),
        };
        if number >= max_pages {
            break (response, PagesStop::MaxPages, true);
        }
        let interval = u64::from(p.interval_ms);
        if session.left_ms(fx).is_some_and(|left| interval >= left) {
            break (response, PagesStop::Deadline, true);
        }
        let next = match request_to(
            plan,
            &request.url,
            &target,
            plan.request.method,
            &p.allowed_origins,
            &format!("page {number}'s next link"),
            "pagination.allowed_origins",
        ) {
            Ok(next) => next,
            Err(error) => return failed(pages, Some(response), error),
        };
        request = next.request;
        same_origin = next.same_origin;
        last_page = Some(response);
        if interval > 0 {
            session.wait(interval, WaitReason::PageInterval, fx);
        }
        number += 1;
    };
    let count = items.count;
    let all = items.into_json();
    let mut response = last;
    let outputs = if plan.schema.is_some() || !plan.outputs.is_empty() {
        match serde_json::from_str::<Value>(&all) {
            Ok(all) => use_json(plan, Some(&all)),
            Err(e) => Err(StepError::Internal(format!(
                "the items did not make a JSON array: {e}"
            ))),
        }
    } else {
        Ok(Vec::new())
    };
    response.json = Some(all);
    let (outputs, error) = match outputs {
        Ok(outputs) => (outputs, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    fx.progress(&format!(
        "{} pages, {count} items, stopped: {}{}",
        pages.len(),
        stopped.as_str(),
        if truncated { " (truncated)" } else { "" }
    ));
    Done {
        response: Some(response),
        outputs,
        error,
        pagination: Some(PagesOutcome {
            pages,
            truncated,
            stopped,
        }),
    }
}

/// A next-page problem, before the page number is known to it.
struct NextError(String);

impl NextError {
    fn with_page(self, number: u32) -> StepError {
        StepError::InvalidResponse(format!("page {number}: {}", self.0))
    }
}

fn links(response: &Response, rel: &str) -> Vec<String> {
    let values = response
        .headers
        .iter()
        .filter(|kv| kv.key.eq_ignore_ascii_case("link"))
        .map(|kv| kv.value.as_str());
    crate::link::targets(values, rel)
}

/// A cursor value as query text: a non-empty string or a number; `None`
/// when absent, null or empty (the last page).
fn cursor_text(value: Option<&Value>) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!(
            "the cursor is {}, not a string or number",
            crate::model::json_type_name(other)
        )),
    }
}

/// The next page's URL (absolute or relative to this page's), or `None`
/// when this was the last page.
fn next_target(
    next: &NextPage,
    request: &PreparedRequest,
    first: &PreparedRequest,
    response: &Response,
    json: &Value,
    position: &mut u64,
    added: usize,
) -> Result<Option<String>, NextError> {
    let counted = |param: &str, position: u64| {
        let mut url = request.url.clone();
        set_query_param(&mut url, param, &position.to_string());
        Some(url.to_string())
    };
    Ok(match next {
        NextPage::LinkHeader { rel } => links(response, rel).into_iter().next(),
        NextPage::NextUrl { pointer } => match json.pointer(pointer) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(NextError(format!(
                    "the next URL at {pointer:?} is {}, not a string",
                    crate::model::json_type_name(other)
                )));
            }
        },
        NextPage::Cursor { pointer, param } => cursor_text(json.pointer(pointer))
            .map_err(NextError)?
            .map(|cursor| {
                // The cursor goes on the first request's URL: its other query
                // parameters stay as configured on every page.
                let mut url = first.url.clone();
                set_query_param(&mut url, param, &cursor);
                url.to_string()
            }),
        NextPage::Page { param, .. } => {
            *position += 1;
            counted(param, *position)
        }
        NextPage::Offset { param, step, .. } => {
            // Without a fixed step, by the items this page had.
            *position += step.map_or(added as u64, u64::from);
            counted(param, *position)
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::model::{
        Body, CursorNext, KeyValue, LinkHeaderNext, Method, OffsetNext, PageNext, PageNumberNext,
        Pagination, StepConfig,
    };
    use crate::run::run;
    use crate::run::tests::{Fake, reply};

    fn paginated(url: &str, next: PageNext, items: Option<&str>) -> StepConfig {
        let mut c = StepConfig::get(url);
        c.pagination = Some(Pagination {
            next,
            items: items.map(Into::into),
            max_pages: None,
            max_items: None,
            interval_ms: None,
            allowed_origins: vec![],
        });
        c
    }

    fn urls(fx: &Fake) -> Vec<String> {
        fx.sent.iter().map(|r| r.url.to_string()).collect()
    }

    /// The host's refusal of a request beyond the run's budget.
    fn budget_spent() -> Result<crate::RawResponse, crate::SendError> {
        Err(crate::SendError {
            error: crate::StepError::Denied("the host allows this run no more requests".into()),
            maybe_sent: false,
            budget_spent: true,
        })
    }

    #[test]
    fn a_spent_request_budget_ends_the_listing_with_its_pages() {
        let c = paginated(
            "https://api.test/items",
            PageNext::Page(PageNumberNext {
                param: "page".into(),
                start: None,
            }),
            Some("/data"),
        );
        let mut fx = Fake::replying(vec![
            reply(200, r#"{"data": [1, 2]}"#),
            reply(200, r#"{"data": [3]}"#),
            budget_spent(),
        ]);
        let out = run(c, "{}".into(), &mut fx).expect("the pages so far are the output");
        assert_eq!(
            out.response.and_then(|r| r.json).as_deref(),
            Some("[1,2,3]")
        );
        let p = out.pagination.expect("pagination");
        assert_eq!(
            (p.pages.len(), p.truncated, p.stopped),
            (2, true, crate::model::PagesStop::MaxRequestsPerRun)
        );
        // Spent on the first request: nothing to show, the step is denied,
        // and the message says which limit and how many requests were made.
        let c = paginated(
            "https://api.test/items",
            PageNext::Page(PageNumberNext {
                param: "page".into(),
                start: None,
            }),
            Some("/data"),
        );
        let failure = run(c, "{}".into(), &mut Fake::replying(vec![budget_spent()]))
            .expect_err("nothing was fetched");
        assert_eq!(failure.error.kind(), "denied");
        assert!(
            failure
                .error
                .to_string()
                .contains("this run has made 0 requests")
                && failure.error.to_string().contains("max_requests_per_run"),
            "{}",
            failure.error
        );
    }

    #[test]
    fn cursor_pages_keep_the_query_and_concatenate_items() {
        let mut c = paginated(
            "https://api.test/items?limit=2",
            PageNext::Cursor(CursorNext {
                pointer: "/next".into(),
                param: "cursor".into(),
            }),
            Some("/data"),
        );
        c.query = vec![KeyValue::new("q", "a b")];
        let mut fx = Fake::replying(vec![
            reply(200, r#"{"data": [1, 2], "next": "c2"}"#),
            reply(200, r#"{"data": [3], "next": 7}"#),
            reply(200, r#"{"data": [{"x": 4}], "next": null}"#),
        ]);
        let out = run(c, "{}".into(), &mut fx).expect("ok");
        assert_eq!(
            urls(&fx),
            [
                "https://api.test/items?limit=2&q=a%20b",
                "https://api.test/items?limit=2&q=a%20b&cursor=c2",
                "https://api.test/items?limit=2&q=a%20b&cursor=7"
            ]
        );
        assert_eq!(
            out.response.and_then(|r| r.json).as_deref(),
            Some(r#"[1,2,3,{"x":4}]"#)
        );
        let p = out.pagination.expect("pagination");
        assert_eq!(
            (
                p.pages.iter().map(|p| p.items).collect::<Vec<_>>(),
                p.truncated,
                p.stopped
            ),
            (vec![2, 1, 1], false, crate::model::PagesStop::NoNext)
        );
        assert_eq!(
            out.attempts.iter().map(|a| a.page).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3)]
        );
    }

    #[test]
    fn page_and_offset_modes_stop_on_an_empty_page() {
        let c = paginated(
            "https://api.test/items",
            PageNext::Page(PageNumberNext {
                param: "page".into(),
                start: None,
            }),
            Some("/items"),
        );
        let mut fx = Fake::replying(vec![
            reply(200, r#"{"items": [1]}"#),
            reply(200, r#"{"items": [2]}"#),
            reply(200, r#"{"items": []}"#),
        ]);
        let out = run(c, "{}".into(), &mut fx).expect("ok");
        assert_eq!(
            urls(&fx),
            [
                "https://api.test/items?page=1",
                "https://api.test/items?page=2",
                "https://api.test/items?page=3"
            ]
        );
        assert_eq!(
            out.pagination.map(|p| p.stopped),
            Some(crate::model::PagesStop::EmptyPage)
        );

        let c = paginated(
            "https://api.test/items",
            PageNext::Offset(OffsetNext {
                param: "offset".into(),
                start: Some(10),
                step: None,
            }),
            Some("/items"),
        );
        let mut fx = Fake::replying(vec![
            reply(200, r#"{"items": [1, 2, 3]}"#),
            reply(200, r#"{"items": [4]}"#),
            reply(200, r#"{"items": []}"#),
        ]);
        run(c, "{}".into(), &mut fx).expect("ok");
        assert_eq!(
            urls(&fx),
            [
                "https://api.test/items?offset=10",
                "https://api.test/items?offset=13",
                "https://api.test/items?offset=14"
            ]
        );
    }

    #[test]
    fn limits_truncate_and_a_repeated_page_stops() {
        let mut c = paginated(
            "https://api.test/items",
            PageNext::Page(PageNumberNext {
                param: "p".into(),
                start: Some(0),
            }),
            Some("/d"),
        );
        c.pagination.as_mut().expect("p").max_pages = Some(2);
        let mut fx = Fake::replying(vec![
            reply(200, r#"{"d": [1]}"#),
            reply(200, r#"{"d": [2]}"#),
        ]);
        let p = run(c.clone(), "{}".into(), &mut fx)
            .expect("ok")
            .pagination
            .expect("p");
        assert_eq!(
            (p.pages.len(), p.truncated, p.stopped),
            (2, true, crate::model::PagesStop::MaxPages)
        );

        c.pagination.as_mut().expect("p").max_pages = Some(5);
        c.pagination.as_mut().expect("p").max_items = Some(3);
        let mut fx = Fake::replying(vec![
            reply(200, r#"{"d": [1, 2]}"#),
            reply(200, r#"{"d": [3, 4]}"#),
        ]);
        let out = run(c.clone(), "{}".into(), &mut fx).expect("ok");
        assert_eq!(
            out.response.and_then(|r| r.json).as_deref(),
            Some("[1,2,3]")
        );
        assert_eq!(
            out.pagination.map(|p| (p.truncated, p.stopped)),
            Some((true, crate::model::PagesStop::MaxItems))
        );

        let c = paginated(
            "https://api.test/items",
            PageNext::LinkHeader(LinkHeaderNext { rel: None }),
            Some("/d"),
        );
        let link = |to: &str| reply_link(r#"{"d": [1]}"#, to);
        let mut fx = Fake::replying(vec![
            link("</items?page=2>; rel=\"next\""),
            link("</items?page=2>; rel=\"next\""),
        ]);
        let out = run(c, "{}".into(), &mut fx).expect("ok");
        assert_eq!(out.response.and_then(|r| r.json).as_deref(), Some("[1]"));
        assert_eq!(
            out.pagination.map(|p| (p.truncated, p.stopped)),
            Some((false, crate::model::PagesStop::RepeatedPage))
        );
    }

    fn reply_link(body: &str, link: &str) -> Result<crate::RawResponse, crate::SendError> {
        Ok(crate::RawResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("link".into(), link.as_bytes().to_vec()),
            ],
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn next_links_to_other_origins_are_denied_unless_allowed() {
        let c = paginated(
            "https://api.test/items",
            PageNext::NextUrl("/next".into()),
            Some("/d"),
        );
        let mut fx = Fake::replying(vec![reply(
            200,
            r#"{"d": [1], "next": "https://evil.test/steal"}"#,
        )]);
        let err = run(c.clone(), "{}".into(), &mut fx).expect_err("denied");
        assert_eq!(err.error.kind(), "denied");
        assert!(
            err.error.to_string().contains("https://evil.test"),
            "{}",
            err.error
        );
        assert_eq!(err.pagination.map(|p| p.pages.len()), Some(1));
        assert_eq!(fx.sent.len(), 1);

        let mut c = c;
        c.headers = vec![KeyValue::new("Authorization", "Bearer secret-token")];
        c.pagination.as_mut().expect("p").allowed_origins = vec!["https://cdn.test".into()];
        let mut fx = Fake::replying(vec![
            reply(200, r#"{"d": [1], "next": "https://cdn.test/p2"}"#),
            reply(200, r#"{"d": [2]}"#),
        ]);
        run(c, "{}".into(), &mut fx).expect("ok");
        assert_eq!(fx.sent[1].url.as_str(), "https://cdn.test/p2");
        assert_eq!(
            fx.sent[1].header("authorization"),
            None,
            "credentials stay on the first origin"
        );
    }

    #[test]
    fn a_failed_page_fails_the_step_with_the_pages_so_far_and_post_bodies_repeat() {
        let mut c = paginated(
            "https://api.test/search",
            PageNext::Cursor(CursorNext {
                pointer: "/n".into(),
                param: "c".into(),
            }),
            Some("/d"),
        );
        c.method = Method::Post;
        c.body = Some(Body::Json(serde_json::json!({"q": "x"}).into()));
        c.retry = Some(crate::model::RetryPolicy {
            intervals_ms: Some(vec![1]),
            ..Default::default()
        });
        let mut fx = Fake::replying(vec![
            reply(200, r#"{"d": [1], "n": "2"}"#),
            reply(500, "{}"),
            reply(500, "{}"),
        ]);
        let err = run(c, "{}".into(), &mut fx).expect_err("failed");
        assert_eq!(err.error.kind(), "unexpected-status");
        assert!(err.error.to_string().starts_with("page 2"), "{}", err.error);
        assert_eq!(
            err.pagination.map(|p| (p.pages.len(), p.stopped)),
            Some((1, crate::model::PagesStop::Failed))
        );
        assert_eq!(*fx.sent[1].body, *fx.sent[0].body);
        let key = |i: usize| fx.sent[i].header("idempotency-key").map(str::to_string);
        assert!(key(0).is_some() && key(0) != key(1), "a key per page");
        assert_eq!(key(1), key(2), "one key for the retries of a page");
    }
}
