//! The requests that follow the first: a listing's pages (`pagination`,
//! README "Pagination") and an asynchronous job's polls (`poll`, README
//! "Polling").

use https_step_core_derive::Mirror;
use serde::Deserialize;

/// Default `pagination.max_pages`.
pub const DEFAULT_MAX_PAGES: u32 = 10;
/// Default `pagination.interval_ms`: pages follow each other at once.
pub const DEFAULT_PAGE_INTERVAL_MS: u32 = 0;
/// Default `pagination.next.link_header.rel` (RFC 8288 §3.3, RFC 5988 `next`).
pub const DEFAULT_LINK_REL: &str = "next";
/// Default `pagination.next.page.start`.
pub const DEFAULT_PAGE_START: u32 = 1;
/// Default `pagination.next.offset.start`.
pub const DEFAULT_OFFSET_START: u32 = 0;
/// Default `poll.on_status`: `202 Accepted` (RFC 9110 §15.3.3).
pub const DEFAULT_POLL_ON_STATUS: [u16; 1] = [202];
/// Default `poll.status_url`: the `Location` header.
pub const DEFAULT_STATUS_URL: StatusUrl = StatusUrl::Location;
/// Default `poll.interval_ms` when a response has no `Retry-After`.
pub const DEFAULT_POLL_INTERVAL_MS: u32 = 1000;
/// Default `poll.max_polls`.
pub const DEFAULT_MAX_POLLS: u32 = 60;

/// `pagination`: one step follows a listing's pages (README "Pagination").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    /// How the next page is found: exactly one of `link_header`,
    /// `next_url`, `cursor`, `page` or `offset`.
    pub next: PageNext,
    /// JSON Pointer (RFC 6901) to each page's array of items, whose
    /// concatenation becomes the output's `json`. Required for `page` and
    /// `offset`. Default: none (each page's whole JSON is one item).
    pub items: Option<String>,
    /// Most pages fetched, from 1 to 1000. Default: 10.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_PAGES)))]
    pub max_pages: Option<u32>,
    /// Most items kept (the rest is cut, `truncated`). Default: none.
    pub max_items: Option<u32>,
    /// Wait between pages, up to 60000. Default: 0.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_PAGE_INTERVAL_MS)))]
    pub interval_ms: Option<u32>,
    /// Origins (`https://host[:port]`) next links may lead to besides the
    /// first request's. Default: none.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
    pub allowed_origins: Vec<String>,
}

/// How the next page is found (`pagination.next`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PageNext {
    /// `Link: <…>; rel="next"` (RFC 8288).
    LinkHeader(LinkHeaderNext),
    /// A JSON Pointer to the next page's URL in the page, absolute or
    /// relative to the page's URL.
    NextUrl(String),
    /// A cursor in the page, sent back as a query parameter.
    Cursor(CursorNext),
    /// Numbered pages.
    Page(PageNumberNext),
    /// Offsets.
    Offset(OffsetNext),
}

/// The next page from the `Link` header (RFC 8288).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkHeaderNext {
    /// The link relation to follow. Default: `next`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_LINK_REL)))]
    pub rel: Option<String>,
}

/// The next page from a cursor in the page's JSON, sent back as a query
/// parameter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CursorNext {
    /// JSON Pointer to the cursor; absent, null or `""` ends the pages.
    pub pointer: String,
    /// The query parameter that carries it.
    pub param: String,
}

/// Numbered pages: `param` = start, start + 1, … until an empty page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PageNumberNext {
    /// The query parameter with the page number.
    pub param: String,
    /// The first page's number. Default: 1.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_PAGE_START)))]
    pub start: Option<u32>,
}

/// Offsets: `param` = start, start + step, … until an empty page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OffsetNext {
    /// The query parameter with the offset.
    pub param: String,
    /// The first page's offset. Default: 0.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_OFFSET_START)))]
    pub start: Option<u32>,
    /// Added per page. Default: the number of items the page had.
    pub step: Option<u32>,
}

/// `poll`: an asynchronous job answered `202` with a status URL, polled
/// until it is done (README "Polling").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Poll {
    /// Statuses that mean "not done yet: poll". Default: `[202]`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_POLL_ON_STATUS)))]
    pub on_status: Option<Vec<u16>>,
    /// Where the status URL is: `"location"` (the `Location` header) or
    /// `{"pointer": "/links/status"}`. Default: `location`.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_STATUS_URL)))]
    pub status_url: Option<StatusUrl>,
    /// A value in the status JSON that says the job is done. Default:
    /// none (polling stops at the first status not in `on_status`).
    pub until: Option<PollUntil>,
    /// Wait between polls when the response has no `Retry-After`, from 0
    /// to 3600000. Default: 1000.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_POLL_INTERVAL_MS)))]
    pub interval_ms: Option<u32>,
    /// Most polls, from 1 to 1000. Default: 60.
    #[cfg_attr(feature = "schema", schemars(extend("default" = DEFAULT_MAX_POLLS)))]
    pub max_polls: Option<u32>,
    /// Origins status URLs may be on besides the first request's. Default: none.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
    pub allowed_origins: Vec<String>,
}

/// Where a polled job's status URL is (`poll.status_url`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum StatusUrl {
    /// The `Location` header (the default).
    Location,
    /// A JSON Pointer into the response JSON.
    Pointer(String),
}

/// When a polled job is done.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Mirror)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PollUntil {
    /// JSON Pointer to the job's state in each status response.
    pub pointer: String,
    /// States that end the step successfully, with that response.
    pub success: Vec<String>,
    /// States that fail the step (`unexpected-status`). Default: none.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("default" = [])))]
    pub failure: Vec<String>,
}
