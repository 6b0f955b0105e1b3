//! The `Link` header (RFC 8288 §3): the targets of a given relation.
//!
//! Hand-written rather than a crate: the crates that parse it
//! (`parse_link_header`, `http-link`) bring `regex` or a URI stack the guest
//! does not otherwise need; the grammar needed here is small —
//! `<uri-reference> *( ";" param )`, comma-separated, with quoted-string
//! parameter values (RFC 9110 §5.6.4) and space-separated relation types.

/// The URI references of every link whose `rel` contains `rel` (relation
/// types compare case-insensitively, RFC 8288 §2.1.1), in order, from one or
/// more `Link` header values.
pub fn targets<'a>(values: impl IntoIterator<Item = &'a str>, rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    for value in values {
        let mut rest = value;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>') else {
                break;
            };
            let target = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            let (params, tail) = split_params(rest);
            rest = tail;
            if params.iter().any(|(name, value)| {
                name.eq_ignore_ascii_case("rel")
                    && value
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case(rel))
            }) {
                out.push(target.trim().to_string());
            }
        }
    }
    out
}

/// The parameters after a link's `>`, up to the comma that ends the link
/// (outside quotes), and what follows it.
fn split_params(text: &str) -> (Vec<(String, String)>, &str) {
    let mut params = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        match rest.chars().next() {
            Some(';') => rest = &rest[1..],
            Some(',') => return (params, &rest[1..]),
            _ => return (params, rest),
        }
        let rest_trimmed = rest.trim_start();
        let name_end = rest_trimmed
            .find(['=', ';', ','])
            .unwrap_or(rest_trimmed.len());
        let name = rest_trimmed[..name_end].trim().to_string();
        rest = &rest_trimmed[name_end..];
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            if let Some(quoted) = after.strip_prefix('"') {
                // quoted-string: `\` escapes the next character.
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, next)) = chars.next() {
                                value.push(next);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                rest = &quoted[end.min(quoted.len())..];
            } else {
                let end = after.find([';', ',']).unwrap_or(after.len());
                value = after[..end].trim().to_string();
                rest = &after[end..];
            }
        }
        params.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_style_links() {
        // GitHub's REST API (docs: "Using pagination in the REST API").
        let v = r#"<https://api.github.com/repositories/1300192/issues?page=2>; rel="prev", <https://api.github.com/repositories/1300192/issues?page=4>; rel="next", <https://api.github.com/repositories/1300192/issues?page=515>; rel="last""#;
        assert_eq!(
            targets([v], "next"),
            ["https://api.github.com/repositories/1300192/issues?page=4"]
        );
        assert_eq!(
            targets([v], "LAST"),
            ["https://api.github.com/repositories/1300192/issues?page=515"]
        );
        assert!(targets([v], "first").is_empty());
    }

    #[test]
    fn rfc_8288_forms() {
        // Unquoted rel, several relation types, other parameters with commas
        // and semicolons inside quotes, several header fields, relative targets.
        let a = r#"</items?cursor=a>; title="a; b, c"; rel=next"#;
        let b = r#"<https://x.test/p2>; rel="prefetch next", <https://x.test/help>; rel=help"#;
        assert_eq!(
            targets([a, b], "next"),
            ["/items?cursor=a", "https://x.test/p2"]
        );
        assert_eq!(targets([r#"<a>; rel="ne\"xt""#], "ne\"xt"), ["a"]);
        assert!(targets(["garbage", "<unclosed; rel=next", ""], "next").is_empty());
    }
}
