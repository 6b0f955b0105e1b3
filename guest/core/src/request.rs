//! Turns a validated [`StepConfig`] into the exact request to send.

use crate::model::{KeyValue, Method, Problem, StepConfig};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::Arc;

/// `User-Agent` sent unless the config sets one (many APIs, GitHub's among
/// them, refuse requests without it).
pub const USER_AGENT: &str = concat!("https-step/", env!("CARGO_PKG_VERSION"));

/// Everything but RFC 3986 `unreserved` is percent-encoded in query keys and
/// values. Spaces become `%20`, never `+`, so servers that do not apply form
/// decoding to the query still read the intended value.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A request ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    /// Method.
    pub method: Method,
    /// Absolute URL, query included.
    pub url: url::Url,
    /// Headers in sending order.
    pub headers: Vec<KeyValue>,
    /// Body bytes (empty for no body), shared by every attempt and redirect
    /// hop of a run, so a file body is held once.
    pub body: Arc<Vec<u8>>,
}

impl PreparedRequest {
    /// `host[:port]` as sent in the request target's authority.
    pub fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// Path and query, e.g. `/orders?id=7`.
    pub fn path_with_query(&self) -> String {
        match self.url.query() {
            Some(q) => format!("{}?{q}", self.url.path()),
            None => self.url.path().to_string(),
        }
    }

    /// Value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|kv| kv.key.eq_ignore_ascii_case(name))
            .map(|kv| kv.value.as_str())
    }
}

/// Encodes one query key or value.
pub fn encode_query_component(s: &str) -> String {
    utf8_percent_encode(s, QUERY_COMPONENT).to_string()
}

/// Sets query parameter `name` of `url` to `value`: every pair already named
/// so is removed, the others are kept byte for byte (their encoding is the
/// server's business), and the new pair is appended, encoded like `query`.
pub fn set_query_param(url: &mut url::Url, name: &str, value: &str) {
    let kept: Vec<&str> = url
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty()
                && percent_encoding::percent_decode_str(&key.replace('+', " ")).decode_utf8_lossy()
                    != name
        })
        .collect();
    let added = format!(
        "{}={}",
        encode_query_component(name),
        encode_query_component(value)
    );
    let query = kept
        .into_iter()
        .chain([added.as_str()])
        .collect::<Vec<_>>()
        .join("&");
    url.set_query(Some(&query));
}

/// Builds the request of a config that passed [`crate::validate`];
/// `random` gives random bytes (a multipart body's boundary).
pub fn prepare(
    config: &StepConfig,
    random: &mut dyn FnMut(usize) -> Vec<u8>,
) -> Result<PreparedRequest, Problem> {
    let mut url = url::Url::parse(config.url.trim())
        .map_err(|err| Problem::new("url", format!("not a valid absolute URL: {err}")))?;
    let credential = config.auth.as_ref().map(crate::auth::credential);
    let key_in_query = match &credential {
        Some(crate::auth::Credential::Query(kv)) => Some(kv),
        _ => None,
    };
    if !config.query.is_empty() || key_in_query.is_some() {
        let added: Vec<String> = config
            .query
            .iter()
            .chain(key_in_query)
            .map(|kv| {
                format!(
                    "{}={}",
                    encode_query_component(&kv.key),
                    encode_query_component(&kv.value)
                )
            })
            .collect();
        let query = match url.query() {
            Some(existing) if !existing.is_empty() => format!("{existing}&{}", added.join("&")),
            _ => added.join("&"),
        };
        url.set_query(Some(&query));
    }
    let mut headers = config.headers.clone();
    // A fetched token is added per attempt (`run`).
    if let Some(crate::auth::Credential::Header(kv)) = credential {
        headers.push(kv);
    }
    let (body, content_type) = match &config.body {
        None => (Vec::new(), None),
        Some(body) => {
            let encoded = crate::body::encode(body, &mut || crate::body::boundary(&random(16)))?;
            (encoded.bytes, encoded.content_type)
        }
    };
    let has = |headers: &[KeyValue], name: &str| {
        headers.iter().any(|kv| kv.key.eq_ignore_ascii_case(name))
    };
    // A Content-Type configured as a header wins over the body kind's default.
    if let Some(ct) = content_type
        && !has(&headers, "content-type")
    {
        headers.push(KeyValue::new("Content-Type", ct.into_owned()));
    }
    if !has(&headers, "user-agent") {
        headers.push(KeyValue::new("User-Agent", USER_AGENT));
    }
    // Compressed responses only when asked for (RFC 9110 §12.5.3); a
    // configured Accept-Encoding is sent as it is.
    if config.decompress() && !has(&headers, "accept-encoding") {
        headers.push(KeyValue::new(
            "Accept-Encoding",
            crate::content::ACCEPT_ENCODING,
        ));
    }
    Ok(PreparedRequest {
        method: config.method,
        url,
        headers,
        body: Arc::new(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, TextBody};
    use serde_json::json;

    fn no_random(_: usize) -> Vec<u8> {
        unreachable!("no multipart body here")
    }

    #[test]
    fn query_is_appended_and_percent_encoded() {
        let mut c = StepConfig::get("https://api.example.com/v1/items?fixed=1");
        c.query = vec![
            KeyValue::new("q", "a b&c=d/é"),
            KeyValue::new("tag", "x"),
            KeyValue::new("tag", "y+z"),
            KeyValue::new("empty", ""),
        ];
        let r = prepare(&c, &mut no_random).expect("prepare");
        assert_eq!(
            r.path_with_query(),
            "/v1/items?fixed=1&q=a%20b%26c%3Dd%2F%C3%A9&tag=x&tag=y%2Bz&empty="
        );
        assert_eq!(r.authority(), "api.example.com");
    }

    #[test]
    fn query_params_are_replaced_keeping_the_rest() {
        let mut url =
            url::Url::parse("https://x.test/items?a=1%202&page=3&b=x+y&page=4").expect("url");
        set_query_param(&mut url, "page", "5");
        assert_eq!(url.query(), Some("a=1%202&b=x+y&page=5"));
        let mut url = url::Url::parse("https://x.test/items").expect("url");
        set_query_param(&mut url, "cursor", "a/b c");
        assert_eq!(url.query(), Some("cursor=a%2Fb%20c"));
    }

    #[test]
    fn explicit_port_and_ip_authority() {
        let r =
            prepare(&StepConfig::get("http://127.0.0.1:8080"), &mut no_random).expect("prepare");
        assert_eq!(r.authority(), "127.0.0.1:8080");
        assert_eq!(r.path_with_query(), "/");
        let r = prepare(&StepConfig::get("https://[::1]:9443/x"), &mut no_random).expect("prepare");
        assert_eq!(r.authority(), "[::1]:9443");
    }

    #[test]
    fn bodies_get_their_content_type() {
        let mut c = StepConfig::get("https://x.test");
        c.method = Method::Post;
        c.body = Some(Body::Json(json!({"b": [1, true, null], "a": "é"}).into()));
        let r = prepare(&c, &mut no_random).expect("prepare");
        // Key order is kept as configured (serde_json `preserve_order`).
        assert_eq!(*r.body, "{\"b\":[1,true,null],\"a\":\"é\"}".as_bytes());
        assert_eq!(r.header("content-type"), Some("application/json"));

        c.body = Some(Body::Form(vec![
            KeyValue::new("name", "Ada Lovelace"),
            KeyValue::new("x", "1&2=3"),
        ]));
        let r = prepare(&c, &mut no_random).expect("prepare");
        assert_eq!(*r.body, b"name=Ada+Lovelace&x=1%262%3D3");
        assert_eq!(
            r.header("Content-Type"),
            Some("application/x-www-form-urlencoded")
        );

        c.body = Some(Body::Text(TextBody {
            text: "a,b".into(),
            content_type: Some("text/csv".into()),
        }));
        assert_eq!(
            prepare(&c, &mut no_random)
                .expect("prepare")
                .header("content-type"),
            Some("text/csv")
        );
        c.body = Some(Body::Text(TextBody {
            text: "hi".into(),
            content_type: None,
        }));
        assert_eq!(
            prepare(&c, &mut no_random)
                .expect("prepare")
                .header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }

    #[test]
    fn configured_headers_win_and_keep_order() {
        let mut c = StepConfig::get("https://x.test");
        c.method = Method::Put;
        c.headers = vec![
            KeyValue::new("content-type", "application/vnd.api+json"),
            KeyValue::new("User-Agent", "mine"),
        ];
        c.body = Some(Body::Json(json!(1).into()));
        let r = prepare(&c, &mut no_random).expect("prepare");
        assert_eq!(r.headers[..2], c.headers[..]);
        let r = prepare(&StepConfig::get("https://x.test"), &mut no_random).expect("prepare");
        assert_eq!(r.header("user-agent"), Some(USER_AGENT));
        assert!(r.body.is_empty() && r.header("content-type").is_none());
    }

    #[test]
    fn accept_encoding_unless_configured_or_off() {
        let mut c = StepConfig::get("https://x.test");
        assert_eq!(
            prepare(&c, &mut no_random)
                .expect("prepare")
                .header("accept-encoding"),
            Some("gzip, deflate, br")
        );
        c.headers = vec![KeyValue::new("Accept-Encoding", "identity")];
        let r = prepare(&c, &mut no_random).expect("prepare");
        assert_eq!(
            r.headers
                .iter()
                .filter(|kv| kv.key.eq_ignore_ascii_case("accept-encoding"))
                .count(),
            1
        );
        assert_eq!(r.header("accept-encoding"), Some("identity"));
        c.headers.clear();
        c.decompress = Some(false);
        assert_eq!(
            prepare(&c, &mut no_random)
                .expect("prepare")
                .header("accept-encoding"),
            None
        );
    }
}
