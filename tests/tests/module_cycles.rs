//! No import cycle between the modules of any crate of the workspace, at
//! any level of its module tree: within every module that has submodules
//! (the crate root included), its children — each counted with all of its
//! own submodules as one unit, so a directory module is one unit — must
//! depend on each other acyclically. A module's edges are the paths it names
//! in `use` items and in code, outside comments: `crate::…`, and `super::…`
//! and `self::…` resolved against the module itself. Every member of the
//! root `Cargo.toml`'s workspace is checked.
//! Run alone: `cargo test --release -p https-step-tests --test module_cycles`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path: `["egress", "pool"]` for `src/egress/pool.rs`; empty for
/// the crate root.
type Module = Vec<String>;

/// The module of `file` under the crate's `src`, or none for files that are
/// crates of their own (`src/bin/…`).
fn module_of(root: &Path, file: &Path) -> Option<Module> {
    let rel = file.strip_prefix(root).ok()?.with_extension("");
    let mut parts: Module = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    Some(parts)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source directories of the workspace's members, from the root manifest.
fn crates(workspace: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(workspace.join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .split("\nmembers")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("a members list");
    members
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|member| workspace.join(member).join("src"))
        .filter(|src| src.is_dir())
        .collect()
}

/// The text without comments (line, doc and nested block comments) and
/// with the contents of string and character literals blanked, so neither
/// a path in a comment nor `"/*"` in a string is read as code.
fn code(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let at = |k: usize| chars.get(i + k).copied().unwrap_or('\0');
        match (chars[i], at(1)) {
            ('/', '/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ('/', '*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            ('r', '"' | '#')
                if i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') =>
            {
                // A raw string: r"…", r#"…"#, … (or an identifier starting with r#).
                let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    out.push(chars[i]);
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                while i < chars.len() {
                    if chars[i] == '"'
                        && chars[i + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&c| c == '#')
                            .count()
                            == hashes
                    {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
                out.push_str("\"\"");
            }
            ('"', _) => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            ('\'', '\\') => {
                // An escaped character literal: '\n', '\'', '\u{…}'.
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            ('\'', _) if at(2) == '\'' => i += 3,
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The paths a module's code names, each as the module it starts from and
/// its segments: `crate::a::b` from the root, `super::a` from the parent,
/// `self::a` from `module` itself; grouped `use` items expanded.
fn paths(module: &Module, text: &str) -> Vec<Module> {
    let text = code(text);
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    for anchor in ["crate::", "super::", "self::"] {
        for (i, _) in text.match_indices(anchor) {
            // A whole word: not `$crate::`, `my_crate::` or `Self::`.
            if i > 0
                && (bytes[i - 1].is_ascii_alphanumeric() || matches!(bytes[i - 1], b'_' | b'$'))
            {
                continue;
            }
            if i > 0 && anchor == "super::" && text[..i].ends_with("super::") {
                continue; // counted from the first `super::`
            }
            let mut base: Module = match anchor {
                "crate::" => Vec::new(),
                _ => module.clone(),
            };
            let mut rest = &text[i + anchor.len()..];
            if anchor == "super::" {
                base.pop();
                while let Some(more) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = more;
                }
            }
            for tail in expand(rest) {
                let mut path = base.clone();
                path.extend(tail);
                found.push(path);
            }
        }
    }
    found
}

/// The paths of a `use` tree at the start of `rest`: `a::b`, or
/// `{a, b::{c, d}}` expanded.
fn expand(rest: &str) -> Vec<Module> {
    let ident_end = |s: &str| {
        s.find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        // The group's text up to its matching brace, split at top-level commas.
        let mut depth = 0;
        let mut items = Vec::new();
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return items.into_iter().flat_map(expand).collect();
    }
    let end = ident_end(rest);
    if end == 0 {
        return vec![Vec::new()];
    }
    let (head, tail) = rest.split_at(end);
    let mut out = Vec::new();
    match tail.strip_prefix("::") {
        Some(more) => {
            for mut sub in expand(more) {
                sub.insert(0, head.to_string());
                out.push(sub);
            }
        }
        None => out.push(vec![head.to_string()]),
    }
    out
}

/// The longest known module that `path` starts with.
fn resolve(path: &Module, modules: &BTreeSet<Module>) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| modules.contains(m))
}

/// A cycle among the units of one level, if any.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut c = stack[from..].to_vec();
                    c.push(next.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str())
            && let Some(c) = visit(n, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// Every cycle of a crate given as (module, source text) pairs: one per
/// level of the module tree that has one, as `parent: a -> b -> a`.
fn crate_cycles(sources: &[(Module, String)]) -> Vec<String> {
    let modules: BTreeSet<Module> = sources.iter().map(|(m, _)| m.clone()).collect();
    // Module-to-module edges, self-references dropped.
    let edges: Vec<(Module, Module)> = sources
        .iter()
        .flat_map(|(module, text)| {
            paths(module, text)
                .into_iter()
                .filter_map(|p| resolve(&p, &modules))
                .filter(move |target| target != module)
                .map(move |target| (module.clone(), target))
        })
        .collect();
    let mut cycles = Vec::new();
    // Each level: the children of `parent`, each with its subtree, as units;
    // every module with children is a parent, the root included.
    let parents: BTreeSet<Module> = modules
        .iter()
        .flat_map(|m| (0..m.len()).map(|n| m[..n].to_vec()))
        .collect();
    for parent in &parents {
        let unit = |m: &Module| -> Option<String> {
            (m.len() > parent.len() && m.starts_with(parent)).then(|| m[parent.len()].clone())
        };
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in &edges {
            if let (Some(a), Some(b)) = (unit(from), unit(to))
                && a != b
            {
                graph.entry(a).or_default().insert(b);
            }
        }
        if let Some(c) = cycle(&graph) {
            let at = if parent.is_empty() {
                "the crate root".to_string()
            } else {
                parent.join("::")
            };
            cycles.push(format!("{at}: {}", c.join(" -> ")));
        }
    }
    cycles
}

#[test]
fn no_crate_has_a_module_import_cycle() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crates = crates(&workspace);
    assert!(crates.len() >= 10, "the workspace's crates: {crates:?}");
    let mut cycles = Vec::new();
    for root in crates {
        let mut all = Vec::new();
        files(&root, &mut all);
        let sources: Vec<(Module, String)> = all
            .iter()
            .filter_map(|f| Some((module_of(&root, f)?, std::fs::read_to_string(f).ok()?)))
            .collect();
        for c in crate_cycles(&sources) {
            cycles.push(format!("{}: {c}", root.display()));
        }
    }
    assert!(
        cycles.is_empty(),
        "module import cycles:\n{}",
        cycles.join("\n")
    );
}

fn module(path: &str) -> Module {
    path.split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn paths_are_read_from_use_items_and_code() {
    let at = module("egress::pool");
    let text = "use crate::{a, b::{c, d::E}};\nuse super::proxy::Proxy; // crate::ignored\n\
                let x = crate::tenant::f(); let y = super::super::z::Y; use self::inner::*;\n\
                /* crate::block /* nested */ crate::still_comment */ $crate::not_this; Self::not_this_either;\n\
                let s = \"application/* crate::in_string\"; let r = r#\"crate::in_raw\"#; let c = '\"';\n\
                let l: &'static str = crate::after::X;";
    let found: BTreeSet<String> = paths(&at, text).iter().map(|p| p.join("::")).collect();
    let expected: BTreeSet<String> = [
        "a",
        "b::c",
        "b::d::E",
        "egress::proxy::Proxy",
        "tenant::f",
        "z::Y",
        "egress::pool::inner",
        "after::X",
    ]
    .map(String::from)
    .into();
    assert_eq!(found, expected);
}

#[test]
fn a_cycle_between_directory_modules_is_found() {
    // The layout the host had: `egress/` used the tenant, and the tenant
    // used `egress/`'s submodules. Parent and child of one directory are
    // one unit, so only the cycle between the two units counts.
    let planted = [
        ("egress", "use crate::tenant::Tenant;\nmod pool; mod proxy;"),
        ("egress::pool", "use super::Guarded;"),
        ("egress::proxy", ""),
        ("tenant", "use crate::egress::{pool::Pool, proxy};"),
        ("runtime", "use crate::tenant::Tenant;"),
    ]
    .map(|(m, t)| (module(m), t.to_string()));
    assert_eq!(
        crate_cycles(&planted),
        ["the crate root: egress -> tenant -> egress"]
    );
    // Only through a submodule, and only through `super::super::`: still the same cycle.
    let planted = [
        ("egress", ""),
        ("egress::pool", "use super::super::tenant::Tenant;"),
        ("tenant", "fn f() { crate::egress::pool::Pool::new(); }"),
    ]
    .map(|(m, t)| (module(m), t.to_string()));
    assert_eq!(
        crate_cycles(&planted),
        ["the crate root: egress -> tenant -> egress"]
    );
    // Siblings inside a directory are checked at that level.
    let planted = [
        ("run", ""),
        ("run::a", "use super::b::X;"),
        ("run::b", "use crate::run::a::Y;"),
    ]
    .map(|(m, t)| (module(m), t.to_string()));
    assert_eq!(crate_cycles(&planted), ["run: a -> b -> a"]);
    // The layout the host has now: the tenant uses egress, never the reverse.
    let clean = [
        ("egress", "mod pool;"),
        ("egress::pool", "use super::Guarded;"),
        ("tenant", "use crate::egress::{pool::Pool};"),
    ]
    .map(|(m, t)| (module(m), t.to_string()));
    assert!(crate_cycles(&clean).is_empty());
}
