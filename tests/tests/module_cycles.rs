//! No module-level import cycle in any crate of the workspace: for every
//! module, the `crate::…` paths it names (in `use` items and in code, outside
//! comments) give its edges to other modules (a module's own ancestors and
//! descendants excepted: parent and child are one unit), and the graph must
//! be acyclic. Run alone: `cargo test --release -p https-step-tests --test module_cycles`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 8] = [
    "guest/core/src",
    "guest/src",
    "guest/artifact/src",
    "guest/build/src",
    "host-harness/src",
    "fuzz-checks/src",
    "tests/src",
    "tests/fault-guest/src",
];

/// `a::b` for `src/a/b.rs` or `src/a/b/mod.rs`; `` for lib.rs/main.rs.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
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
    Some(parts.join("::"))
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

fn related(a: &str, b: &str) -> bool {
    let within = |x: &str, y: &str| x.is_empty() || y == x || y.starts_with(&format!("{x}::"));
    within(a, b) || within(b, a)
}

/// The modules `text` refers to through `crate::` paths, resolved to the
/// longest module in `modules`.
fn references(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        // `use crate::{a, b::c}` and `crate::a::b` in code.
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let paths: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                group
                    .split(['}', ';'])
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .collect()
            } else {
                vec![
                    rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ]
            };
            for path in paths {
                let segments: Vec<&str> = path
                    .split("::")
                    .filter(|s| !s.is_empty() && !s.starts_with('{'))
                    .collect();
                if let Some(m) = (1..=segments.len())
                    .rev()
                    .map(|n| segments[..n].join("::"))
                    .find(|m| modules.contains(m))
                {
                    found.insert(m);
                }
            }
        }
    }
    found
}

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

#[test]
fn no_crate_has_a_module_import_cycle() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cycles = Vec::new();
    for krate in CRATES {
        let root = workspace.join(krate);
        let mut all = Vec::new();
        files(&root, &mut all);
        let sources: Vec<(String, String)> = all
            .iter()
            .filter_map(|f| Some((module_of(&root, f)?, std::fs::read_to_string(f).ok()?)))
            .collect();
        let modules: BTreeSet<String> = sources.iter().map(|(m, _)| m.clone()).collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, text) in &sources {
            let edges = references(text, &modules)
                .into_iter()
                .filter(|t| !related(module, t))
                .collect();
            graph.insert(module.clone(), edges);
        }
        if let Some(c) = cycle(&graph) {
            cycles.push(format!("{krate}: {}", c.join(" -> ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "module import cycles:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_checker_finds_a_cycle() {
    let modules: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    assert_eq!(
        references(
            "use crate::{a, b::Thing};\nlet x = crate::c::f();\n// crate::a",
            &modules
        ),
        modules
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .map(|(x, y)| (x.to_string(), [y.to_string()].into()))
        .into();
    assert_eq!(
        cycle(&graph),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
}
