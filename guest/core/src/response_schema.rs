//! `response_schema`: a JSON Schema (draft 2020-12) the response JSON must
//! satisfy.
//!
//! Written here rather than taken from the `jsonschema` crate, which added
//! 2.7 MB (regex engines, big-number fractions, format checkers) to a guest
//! that is otherwise 0.4 MB, and with it instantiation and page-fault cost on
//! every run. It implements every assertion and applicator keyword of draft
//! 2020-12 (JSON Schema Validation §6, Core §10) with local `$ref`s (JSON
//! Pointer fragments such as `#/$defs/item`), and is checked against the
//! official JSON-Schema-Test-Suite (`tests/json_schema_suite.rs`).
//!
//! What it refuses, as a `validate` problem naming the keyword rather than
//! silently ignoring it: references to other documents (never fetched),
//! `$anchor`/`$dynamicRef`/`$dynamicAnchor`, `$id` below the root,
//! `unevaluatedItems`/`unevaluatedProperties`, `$vocabulary`, and a `$schema`
//! other than draft 2020-12. `format` and the `content*` keywords are
//! annotations (2020-12's default), and unknown keywords are ignored, as the
//! specification requires (Core §4.3.1).
//!
//! `pattern` and `patternProperties` use `regex-lite` (Rust regex syntax,
//! Unicode classes such as `\p{L}` unsupported: such a pattern is a problem).

use crate::model::Problem;
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Most violations reported for one response; the rest are counted.
pub const MAX_VIOLATIONS: usize = 50;

/// Most nested subschema evaluations (a `$ref` cycle that never descends
/// into the instance ends here instead of overflowing the stack).
const MAX_DEPTH: usize = 256;

/// The draft this validator implements.
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// A compiled response schema.
pub struct ResponseSchema {
    nodes: Vec<Node>,
}

impl std::fmt::Debug for ResponseSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResponseSchema({} subschemas)", self.nodes.len())
    }
}

/// A subschema; others are referred to by index into `ResponseSchema::nodes`
/// (references may form cycles). The root is index 0.
enum Node {
    Bool(bool),
    Keywords(Box<Keywords>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Null,
    Boolean,
    Object,
    Array,
    Number,
    String,
    Integer,
}

impl JsonType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "null" => JsonType::Null,
            "boolean" => JsonType::Boolean,
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "number" => JsonType::Number,
            "string" => JsonType::String,
            "integer" => JsonType::Integer,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Integer => "integer",
        }
    }

    fn matches(self, v: &Value) -> bool {
        match (self, v) {
            (JsonType::Null, Value::Null)
            | (JsonType::Boolean, Value::Bool(_))
            | (JsonType::Object, Value::Object(_))
            | (JsonType::Array, Value::Array(_))
            | (JsonType::Number, Value::Number(_))
            | (JsonType::String, Value::String(_)) => true,
            // 2020-12 Validation §6.1.1: any number with a zero fractional part.
            (JsonType::Integer, Value::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        }
    }
}

#[derive(Default)]
struct Keywords {
    reference: Option<usize>,
    types: Vec<JsonType>,
    enumeration: Option<Vec<Value>>,
    constant: Option<Value>,
    multiple_of: Option<Number>,
    maximum: Option<Number>,
    exclusive_maximum: Option<Number>,
    minimum: Option<Number>,
    exclusive_minimum: Option<Number>,
    max_length: Option<u64>,
    min_length: Option<u64>,
    pattern: Option<(regex_lite::Regex, String)>,
    prefix_items: Vec<usize>,
    items: Option<usize>,
    contains: Option<usize>,
    max_contains: Option<u64>,
    min_contains: Option<u64>,
    max_items: Option<u64>,
    min_items: Option<u64>,
    unique_items: bool,
    properties: Vec<(String, usize)>,
    pattern_properties: Vec<(regex_lite::Regex, usize)>,
    additional_properties: Option<usize>,
    property_names: Option<usize>,
    max_properties: Option<u64>,
    min_properties: Option<u64>,
    required: Vec<String>,
    dependent_required: Vec<(String, Vec<String>)>,
    dependent_schemas: Vec<(String, usize)>,
    all_of: Vec<usize>,
    any_of: Vec<usize>,
    one_of: Vec<usize>,
    not: Option<usize>,
    condition: Option<(usize, Option<usize>, Option<usize>)>,
}

/// Keywords refused rather than ignored, with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "$anchor",
        "anchors are not supported; refer to the subschema by JSON Pointer (\"#/$defs/name\")",
    ),
    ("$dynamicAnchor", "dynamic references are not supported"),
    ("$dynamicRef", "dynamic references are not supported"),
    (
        "$recursiveRef",
        "is a draft 2019-09 keyword; draft 2020-12 is supported",
    ),
    (
        "$recursiveAnchor",
        "is a draft 2019-09 keyword; draft 2020-12 is supported",
    ),
    (
        "unevaluatedItems",
        "is not supported; use items/prefixItems",
    ),
    (
        "unevaluatedProperties",
        "is not supported; use additionalProperties",
    ),
    ("$vocabulary", "custom vocabularies are not supported"),
];

struct Compiler<'a> {
    root: &'a Value,
    nodes: Vec<Node>,
    by_pointer: HashMap<String, usize>,
    /// `$ref`s still to resolve: the node that holds it, the reference, where it is.
    pending: Vec<(usize, String, String)>,
    problems: Vec<String>,
}

/// `a/b` and `a~b` escaped for a JSON Pointer segment (RFC 6901 §3).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

impl<'a> Compiler<'a> {
    fn problem(&mut self, at: &str, message: impl std::fmt::Display) {
        let at = if at.is_empty() { "(root)" } else { at };
        self.problems.push(format!("at {at}: {message}"));
    }

    fn compile(&mut self, schema: &'a Value, at: &str) -> usize {
        if let Some(&i) = self.by_pointer.get(at) {
            return i;
        }
        let index = self.nodes.len();
        self.nodes.push(Node::Bool(true));
        self.by_pointer.insert(at.to_string(), index);
        let node = match schema {
            Value::Bool(b) => Node::Bool(*b),
            Value::Object(map) => Node::Keywords(Box::new(self.keywords(index, map, at))),
            other => {
                self.problem(
                    at,
                    format!(
                        "a schema must be an object or a boolean, not {}",
                        brief(other)
                    ),
                );
                Node::Bool(true)
            }
        };
        self.nodes[index] = node;
        index
    }

    fn sub(&mut self, map: &'a Map<String, Value>, key: &str, at: &str) -> Option<usize> {
        map.get(key)
            .map(|v| self.compile(v, &format!("{at}/{}", escape(key))))
    }

    fn sub_list(&mut self, map: &'a Map<String, Value>, key: &str, at: &str) -> Vec<usize> {
        match map.get(key) {
            None => Vec::new(),
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .enumerate()
                .map(|(i, s)| self.compile(s, &format!("{at}/{key}/{i}")))
                .collect(),
            Some(_) => {
                self.problem(at, format!("{key} must be a non-empty array of schemas"));
                Vec::new()
            }
        }
    }

    fn sub_map(
        &mut self,
        map: &'a Map<String, Value>,
        key: &str,
        at: &str,
    ) -> Vec<(String, usize)> {
        match map.get(key) {
            None => Vec::new(),
            Some(Value::Object(subs)) => subs
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        self.compile(s, &format!("{at}/{key}/{}", escape(name))),
                    )
                })
                .collect(),
            Some(_) => {
                self.problem(at, format!("{key} must be an object of schemas"));
                Vec::new()
            }
        }
    }

    fn number(&mut self, map: &Map<String, Value>, key: &str, at: &str) -> Option<Number> {
        match map.get(key)? {
            Value::Number(n) => Some(n.clone()),
            other => {
                self.problem(at, format!("{key} must be a number, not {}", brief(other)));
                None
            }
        }
    }

    fn count(&mut self, map: &Map<String, Value>, key: &str, at: &str) -> Option<u64> {
        let value = map.get(key)?;
        // 2020-12 allows 1.0 where a non-negative integer is required.
        let n = value.as_u64().or_else(|| {
            value
                .as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        });
        if n.is_none() {
            self.problem(
                at,
                format!("{key} must be a non-negative integer, not {}", brief(value)),
            );
        }
        n
    }

    fn regex(&mut self, pattern: &str, key: &str, at: &str) -> Option<regex_lite::Regex> {
        match regex_lite::Regex::new(pattern) {
            Ok(r) => Some(r),
            Err(e) => {
                self.problem(
                    at,
                    format!("{key} {pattern:?} is not a supported regular expression: {e}"),
                );
                None
            }
        }
    }

    fn strings(&mut self, value: &Value, key: &str, at: &str) -> Vec<String> {
        match value.as_array().map(|l| {
            l.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        }) {
            Some(Some(list)) => list,
            _ => {
                self.problem(at, format!("{key} must be an array of strings"));
                Vec::new()
            }
        }
    }

    fn keywords(&mut self, index: usize, map: &'a Map<String, Value>, at: &str) -> Keywords {
        for (key, why) in UNSUPPORTED {
            if map.contains_key(*key) {
                self.problem(at, format!("{key} {why}"));
            }
        }
        if let Some(schema) = map.get("$schema")
            && (!at.is_empty()
                || schema.as_str().map(|s| s.trim_end_matches('#')) != Some(DRAFT_2020_12))
        {
            self.problem(at, format!("$schema must be {DRAFT_2020_12:?} (draft 2020-12 is supported), and only at the root"));
        }
        if !at.is_empty() && map.contains_key("$id") {
            self.problem(
                at,
                "$id below the root is not supported (it would change how references resolve)",
            );
        }
        let mut k = Keywords::default();
        if let Some(reference) = map.get("$ref") {
            match reference.as_str() {
                Some(r) => self.pending.push((index, r.to_string(), at.to_string())),
                None => self.problem(at, "$ref must be a string"),
            }
        }
        if let Some(t) = map.get("type") {
            let names: Vec<&Value> = match t {
                Value::Array(list) => list.iter().collect(),
                one => vec![one],
            };
            for name in names {
                match name.as_str().and_then(JsonType::parse) {
                    Some(ty) => k.types.push(ty),
                    None => self.problem(at, format!("type {} is not one of null, boolean, object, array, number, string, integer", brief(name))),
                }
            }
        }
        match map.get("enum") {
            Some(Value::Array(list)) => k.enumeration = Some(list.clone()),
            Some(_) => self.problem(at, "enum must be an array"),
            None => {}
        }
        k.constant = map.get("const").cloned();
        k.multiple_of = self.number(map, "multipleOf", at);
        if k.multiple_of
            .as_ref()
            .is_some_and(|m| m.as_f64().is_none_or(|f| f <= 0.0))
        {
            self.problem(at, "multipleOf must be greater than 0");
            k.multiple_of = None;
        }
        k.maximum = self.number(map, "maximum", at);
        k.exclusive_maximum = self.number(map, "exclusiveMaximum", at);
        k.minimum = self.number(map, "minimum", at);
        k.exclusive_minimum = self.number(map, "exclusiveMinimum", at);
        k.max_length = self.count(map, "maxLength", at);
        k.min_length = self.count(map, "minLength", at);
        if let Some(p) = map.get("pattern") {
            match p.as_str() {
                Some(text) => {
                    k.pattern = self
                        .regex(text, "pattern", at)
                        .map(|r| (r, text.to_string()))
                }
                None => self.problem(at, "pattern must be a string"),
            }
        }
        k.prefix_items = self.sub_list(map, "prefixItems", at);
        if map.get("items").is_some_and(Value::is_array) {
            self.problem(at, "items must be a schema (an array of schemas is draft 2019-09 and earlier; use prefixItems)");
        } else {
            k.items = self.sub(map, "items", at);
        }
        k.contains = self.sub(map, "contains", at);
        k.max_contains = self.count(map, "maxContains", at);
        k.min_contains = self.count(map, "minContains", at);
        k.max_items = self.count(map, "maxItems", at);
        k.min_items = self.count(map, "minItems", at);
        match map.get("uniqueItems") {
            Some(Value::Bool(b)) => k.unique_items = *b,
            Some(_) => self.problem(at, "uniqueItems must be a boolean"),
            None => {}
        }
        k.properties = self.sub_map(map, "properties", at);
        for (pattern, schema) in self.sub_map(map, "patternProperties", at) {
            if let Some(r) = self.regex(&pattern, "patternProperties", at) {
                k.pattern_properties.push((r, schema));
            }
        }
        k.additional_properties = self.sub(map, "additionalProperties", at);
        k.property_names = self.sub(map, "propertyNames", at);
        k.max_properties = self.count(map, "maxProperties", at);
        k.min_properties = self.count(map, "minProperties", at);
        if let Some(r) = map.get("required") {
            k.required = self.strings(r, "required", at);
        }
        match map.get("dependentRequired") {
            Some(Value::Object(deps)) => {
                for (name, list) in deps {
                    let list = self.strings(list, "dependentRequired", at);
                    k.dependent_required.push((name.clone(), list));
                }
            }
            Some(_) => self.problem(at, "dependentRequired must be an object of string arrays"),
            None => {}
        }
        k.dependent_schemas = self.sub_map(map, "dependentSchemas", at);
        k.all_of = self.sub_list(map, "allOf", at);
        k.any_of = self.sub_list(map, "anyOf", at);
        k.one_of = self.sub_list(map, "oneOf", at);
        k.not = self.sub(map, "not", at);
        // then/else without if have no effect (Core §10.2.2), but are still
        // compiled so their problems are reported.
        let (condition, then, otherwise) = (
            self.sub(map, "if", at),
            self.sub(map, "then", at),
            self.sub(map, "else", at),
        );
        k.condition = condition.map(|c| (c, then, otherwise));
        // Definitions are compiled so their mistakes are found even when unused.
        self.sub_map(map, "$defs", at);
        k
    }

    /// Resolves `#`-fragment references against the root (RFC 6901 pointers,
    /// percent-decoded as URI fragments, RFC 3986 §3.5).
    fn resolve(&mut self) {
        let root_id = self
            .root
            .get("$id")
            .and_then(Value::as_str)
            .map(|id| id.trim_end_matches('#'));
        while let Some((index, reference, at)) = self.pending.pop() {
            let fragment = match reference.split_once('#') {
                Some(("", f)) => f.to_string(),
                Some((base, f)) if Some(base) == root_id => f.to_string(),
                None if Some(reference.as_str()) == root_id => String::new(),
                _ => {
                    self.problem(&at, format!("$ref {reference:?} refers to another document; only references within the schema (\"#/…\") are supported, nothing is fetched"));
                    continue;
                }
            };
            let pointer = percent_encoding::percent_decode_str(&fragment)
                .decode_utf8_lossy()
                .into_owned();
            if !pointer.is_empty() && !pointer.starts_with('/') {
                self.problem(&at, format!("$ref {reference:?}: anchors are not supported; use a JSON Pointer such as \"#/$defs/name\""));
                continue;
            }
            let target = match self.by_pointer.get(&pointer) {
                Some(&i) => i,
                None => match self.root.pointer(&pointer) {
                    Some(schema) => self.compile(schema, &pointer),
                    None => {
                        self.problem(
                            &at,
                            format!("$ref {reference:?} points to nothing in the schema"),
                        );
                        continue;
                    }
                },
            };
            if let Node::Keywords(k) = &mut self.nodes[index] {
                k.reference = Some(target);
            }
        }
    }
}

impl ResponseSchema {
    /// Compiles `schema`; every mistake in it is reported at once as one
    /// problem at `response_schema`.
    pub fn compile(schema: &Value) -> Result<Self, Problem> {
        let mut c = Compiler {
            root: schema,
            nodes: Vec::new(),
            by_pointer: HashMap::new(),
            pending: Vec::new(),
            problems: Vec::new(),
        };
        c.compile(schema, "");
        c.resolve();
        if c.problems.is_empty() {
            Ok(ResponseSchema { nodes: c.nodes })
        } else {
            Err(Problem::new(
                "response_schema",
                format!(
                    "is not a usable JSON Schema (draft 2020-12): {}",
                    c.problems.join("; ")
                ),
            ))
        }
    }

    /// Every violation of `instance`: the JSON Pointer of the offending value
    /// (`/` for the whole document) and what is wrong.
    pub fn check(&self, instance: &Value) -> Result<(), Vec<Problem>> {
        let mut sink = Sink {
            problems: Vec::new(),
            extra: 0,
        };
        let mut path = String::new();
        self.eval(0, instance, &mut path, &mut Some(&mut sink), 0);
        let Sink {
            mut problems,
            extra,
        } = sink;
        if extra > 0 {
            problems.push(Problem::new("/", format!("and {extra} more violations")));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Whether `instance` is valid: [`ResponseSchema::check`] without
    /// collecting the violations (it stops at the first).
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.valid(0, instance, 0)
    }

    /// Whether `instance` is valid under `node`, without collecting violations.
    fn valid(&self, node: usize, instance: &Value, depth: usize) -> bool {
        self.eval(node, instance, &mut String::new(), &mut None, depth)
    }

    /// Evaluates `node` against `instance` at `path`. With a sink, every
    /// violation is recorded; without one it stops at the first.
    fn eval(
        &self,
        node: usize,
        instance: &Value,
        path: &mut String,
        sink: &mut Option<&mut Sink>,
        depth: usize,
    ) -> bool {
        if depth > MAX_DEPTH {
            report(
                sink,
                path,
                format!(
                    "the schema nests (through $ref) more than {MAX_DEPTH} levels here; it probably refers to itself without descending"
                ),
            );
            return false;
        }
        let k = match &self.nodes[node] {
            Node::Bool(true) => return true,
            Node::Bool(false) => {
                report(
                    sink,
                    path,
                    format!(
                        "{} is not allowed here (the schema is false)",
                        brief(instance)
                    ),
                );
                return false;
            }
            Node::Keywords(k) => k,
        };
        let mut ok = true;
        macro_rules! fail {
            ($($msg:tt)*) => {{
                ok = false;
                if sink.is_none() {
                    return false;
                }
                report(sink, path, format!($($msg)*));
            }};
        }
        if let Some(target) = k.reference
            && !self.eval(target, instance, path, sink, depth + 1)
        {
            ok = false;
            if sink.is_none() {
                return false;
            }
        }
        if !k.types.is_empty() && !k.types.iter().any(|t| t.matches(instance)) {
            let names: Vec<String> = k.types.iter().map(|t| format!("{:?}", t.name())).collect();
            if names.len() == 1 {
                fail!("{} is not of type {}", brief(instance), names[0]);
            } else {
                fail!("{} is not of types {}", brief(instance), names.join(", "));
            }
        }
        if let Some(list) = &k.enumeration
            && !list.iter().any(|v| json_eq(v, instance))
        {
            fail!(
                "{} is not one of {}",
                brief(instance),
                brief(&Value::Array(list.clone()))
            );
        }
        if let Some(c) = &k.constant
            && !json_eq(c, instance)
        {
            fail!("{} was expected", brief(c));
        }
        match instance {
            Value::Number(n) => {
                if let Some(m) = &k.multiple_of
                    && !is_multiple(n, m)
                {
                    fail!("{n} is not a multiple of {m}");
                }
                // Which comparisons with the limit break each keyword (Validation §6.2).
                let limits = [
                    (
                        &k.maximum,
                        &[Ordering::Greater][..],
                        "greater than the maximum of",
                    ),
                    (
                        &k.exclusive_maximum,
                        &[Ordering::Greater, Ordering::Equal][..],
                        "greater than or equal to the maximum of",
                    ),
                    (
                        &k.minimum,
                        &[Ordering::Less][..],
                        "less than the minimum of",
                    ),
                    (
                        &k.exclusive_minimum,
                        &[Ordering::Less, Ordering::Equal][..],
                        "less than or equal to the minimum of",
                    ),
                ];
                for (limit, breaks, words) in limits {
                    if let Some(limit) = limit
                        && breaks.contains(&num_cmp(n, limit))
                    {
                        fail!("{n} is {words} {limit}");
                    }
                }
            }
            Value::String(s) => {
                // Lengths count Unicode code points (Validation §6.3.1).
                if (k.min_length, k.max_length) != (None, None)
                    && let Some((than, limit)) =
                        out_of_bounds(s.chars().count(), k.min_length, k.max_length)
                {
                    fail!("{} has {than} {limit} characters", brief(instance));
                }
                if let Some((re, text)) = &k.pattern
                    && !re.is_match(s)
                {
                    fail!("{} does not match {text:?}", brief(instance));
                }
            }
            Value::Array(items) => {
                if let Some((than, limit)) = out_of_bounds(items.len(), k.min_items, k.max_items) {
                    fail!("{} has {than} {limit} items", brief(instance));
                }
                if k.unique_items && !all_unique(items) {
                    fail!("{} has non-unique elements", brief(instance));
                }
                for (i, item) in items.iter().enumerate() {
                    let schema = k
                        .prefix_items
                        .get(i)
                        .copied()
                        .or(if i >= k.prefix_items.len() {
                            k.items
                        } else {
                            None
                        });
                    if let Some(schema) = schema {
                        let len = push(path, &i.to_string());
                        let item_ok = self.eval(schema, item, path, sink, depth + 1);
                        path.truncate(len);
                        if !item_ok {
                            ok = false;
                            if sink.is_none() {
                                return false;
                            }
                        }
                    }
                }
                if let Some(contains) = k.contains {
                    let matching = items
                        .iter()
                        .filter(|item| self.valid(contains, item, depth + 1))
                        .count() as u64;
                    // minContains 0 makes contains always pass (Validation §6.4.5).
                    let min = k.min_contains.unwrap_or(1);
                    if matching < min {
                        if min == 1 {
                            fail!(
                                "none of the items of {} is valid under the contains schema",
                                brief(instance)
                            );
                        } else {
                            fail!(
                                "{} has {matching} items valid under the contains schema, fewer than minContains {min}",
                                brief(instance)
                            );
                        }
                    }
                    if let Some(max) = k.max_contains
                        && matching > max
                    {
                        fail!(
                            "{} has {matching} items valid under the contains schema, more than maxContains {max}",
                            brief(instance)
                        );
                    }
                }
            }
            Value::Object(map) => {
                if let Some((than, limit)) =
                    out_of_bounds(map.len(), k.min_properties, k.max_properties)
                {
                    fail!("{} has {than} {limit} properties", brief(instance));
                }
                for name in &k.required {
                    if !map.contains_key(name) {
                        fail!("{name:?} is a required property");
                    }
                }
                for (name, needed) in &k.dependent_required {
                    if map.contains_key(name) {
                        for other in needed {
                            if !map.contains_key(other) {
                                fail!("{other:?} is a required property when {name:?} is present");
                            }
                        }
                    }
                }
                for (name, schema) in &k.dependent_schemas {
                    if map.contains_key(name)
                        && !self.eval(*schema, instance, path, sink, depth + 1)
                    {
                        ok = false;
                        if sink.is_none() {
                            return false;
                        }
                    }
                }
                if let Some(names) = k.property_names {
                    for name in map.keys() {
                        if !self.valid(names, &Value::String(name.clone()), depth + 1) {
                            fail!(
                                "property name {name:?} is not valid under the propertyNames schema"
                            );
                        }
                    }
                }
                let mut unexpected = Vec::new();
                for (name, value) in map {
                    let mut matched = false;
                    let mut schemas: Vec<usize> = Vec::new();
                    if let Some((_, s)) = k.properties.iter().find(|(n, _)| n == name) {
                        matched = true;
                        schemas.push(*s);
                    }
                    for (re, s) in &k.pattern_properties {
                        if re.is_match(name) {
                            matched = true;
                            schemas.push(*s);
                        }
                    }
                    if !matched && let Some(s) = k.additional_properties {
                        if matches!(self.nodes[s], Node::Bool(false)) {
                            unexpected.push(name.as_str());
                            continue;
                        }
                        schemas.push(s);
                    }
                    for s in schemas {
                        let len = push(path, name);
                        let value_ok = self.eval(s, value, path, sink, depth + 1);
                        path.truncate(len);
                        if !value_ok {
                            ok = false;
                            if sink.is_none() {
                                return false;
                            }
                        }
                    }
                }
                if !unexpected.is_empty() {
                    let names: Vec<String> = unexpected.iter().map(|n| format!("{n:?}")).collect();
                    fail!(
                        "additional properties are not allowed ({} unexpected)",
                        names.join(", ")
                    );
                }
            }
            _ => {}
        }
        for s in &k.all_of {
            if !self.eval(*s, instance, path, sink, depth + 1) {
                ok = false;
                if sink.is_none() {
                    return false;
                }
            }
        }
        if !k.any_of.is_empty() && !k.any_of.iter().any(|s| self.valid(*s, instance, depth + 1)) {
            fail!(
                "{} is not valid under any of the schemas listed in anyOf",
                brief(instance)
            );
        }
        if !k.one_of.is_empty() {
            let passing = k
                .one_of
                .iter()
                .filter(|s| self.valid(**s, instance, depth + 1))
                .count();
            if passing == 0 {
                fail!(
                    "{} is not valid under any of the schemas listed in oneOf",
                    brief(instance)
                );
            } else if passing > 1 {
                fail!(
                    "{} is valid under {passing} of the schemas listed in oneOf, not exactly one",
                    brief(instance)
                );
            }
        }
        if let Some(not) = k.not
            && self.valid(not, instance, depth + 1)
        {
            fail!("{} must not be valid under the not schema", brief(instance));
        }
        if let Some((condition, then, otherwise)) = k.condition {
            let branch = if self.valid(condition, instance, depth + 1) {
                then
            } else {
                otherwise
            };
            if let Some(b) = branch
                && !self.eval(b, instance, path, sink, depth + 1)
            {
                ok = false;
            }
        }
        ok
    }
}

struct Sink {
    problems: Vec<Problem>,
    extra: usize,
}

fn report(sink: &mut Option<&mut Sink>, path: &str, message: String) {
    if let Some(sink) = sink {
        if sink.problems.len() == MAX_VIOLATIONS {
            sink.extra += 1;
        } else {
            sink.problems.push(Problem::new(
                if path.is_empty() { "/" } else { path },
                message,
            ));
        }
    }
}

/// Which of a `min…`/`max…` pair a count of `n` breaks: `("more than", max)`
/// or `("less than", min)`.
fn out_of_bounds(n: usize, min: Option<u64>, max: Option<u64>) -> Option<(&'static str, u64)> {
    let n = n as u64;
    match (min, max) {
        (_, Some(max)) if n > max => Some(("more than", max)),
        (Some(min), _) if n < min => Some(("less than", min)),
        _ => None,
    }
}

/// Appends a JSON Pointer segment; returns the length to truncate back to.
fn push(path: &mut String, segment: &str) -> usize {
    let len = path.len();
    path.push('/');
    path.push_str(&escape(segment));
    len
}

/// A value for a message: compact JSON, cut after 80 characters.
fn brief(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Numbers compared exactly when both are integers, as f64 otherwise.
fn num_cmp(a: &Number, b: &Number) -> Ordering {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let (x, y) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

/// `multipleOf`: exact for integers; for decimals the quotient must be within
/// rounding error of an integer (0.0075 is a multiple of 0.0001), and a
/// quotient that overflows is not a multiple.
fn is_multiple(n: &Number, m: &Number) -> bool {
    if let (Some(x), Some(y)) = (n.as_i64(), m.as_i64()) {
        return y != 0 && x % y == 0;
    }
    let (x, y) = (
        n.as_f64().unwrap_or(f64::NAN),
        m.as_f64().unwrap_or(f64::NAN),
    );
    let q = x / y;
    q.is_finite() && (q - q.round()).abs() <= 1e-9 * q.abs().max(1.0)
}

/// JSON equality: numbers by value (1 equals 1.0), objects regardless of key order.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// `uniqueItems` in O(n log n): items are compared by a canonical text (numbers
/// normalised, keys sorted), so equal values under [`json_eq`] collide.
fn all_unique(items: &[Value]) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut buf = String::new();
    for item in items {
        buf.clear();
        canonical(item, &mut buf);
        if !seen.insert(buf.clone()) {
            return false;
        }
    }
    true
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => match n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
        {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 1e30 {
                    let _ = write!(out, "{}", f as i128);
                } else {
                    let _ = write!(out, "{f:e}");
                }
            }
        },
        Value::Array(list) => {
            out.push('[');
            for item in list {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for key in keys {
                let _ = write!(out, "{key:?}:");
                canonical(&map[key], out);
                out.push(',');
            }
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_violation_with_its_path() {
        let schema = ResponseSchema::compile(&json!({
            "type": "object",
            "required": ["id", "status"],
            "properties": {
                "id": {"type": "string", "pattern": "^ord_"},
                "status": {"enum": ["open", "closed"]},
                "items": {"type": "array", "items": {"type": "integer", "minimum": 1}}
            }
        }))
        .expect("valid schema");
        assert_eq!(
            schema.check(&json!({"id": "ord_1", "status": "open", "items": [1, 2]})),
            Ok(())
        );
        let problems = schema
            .check(&json!({"id": "x_1", "items": [1, 0, "a"]}))
            .expect_err("violations");
        let mut paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["/", "/id", "/items/1", "/items/2"], "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("\"status\" is a required property")),
            "{problems:?}"
        );
    }

    #[test]
    fn bad_schema_and_remote_refs_are_problems() {
        assert_eq!(
            ResponseSchema::compile(&json!({"type": 12}))
                .expect_err("invalid")
                .path,
            "response_schema"
        );
        let remote = ResponseSchema::compile(&json!({"$ref": "https://example.com/schema.json"}));
        assert!(
            remote
                .expect_err("remote")
                .message
                .contains("nothing is fetched"),
            "a remote $ref must not be fetched"
        );
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let p = ResponseSchema::compile(&json!({
            "type": "text",
            "properties": {"a": {"minLength": -1}, "b": {"pattern": "("}},
            "unevaluatedProperties": false,
            "$ref": "#/$defs/missing"
        }))
        .expect_err("invalid");
        for needle in [
            "type \"text\"",
            "at /properties/a: minLength",
            "at /properties/b: pattern",
            "unevaluatedProperties",
            "#/$defs/missing",
        ] {
            assert!(p.message.contains(needle), "{needle} in {}", p.message);
        }
    }

    #[test]
    fn a_self_referencing_schema_ends_with_a_violation_not_a_stack_overflow() {
        let schema = ResponseSchema::compile(
            &json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
        )
        .expect("compiles");
        let problems = schema.check(&json!(1)).expect_err("loops");
        assert!(
            problems[0].message.contains("refers to itself"),
            "{problems:?}"
        );
    }

    #[test]
    fn violations_are_capped() {
        let schema =
            ResponseSchema::compile(&json!({"items": {"type": "string"}})).expect("compiles");
        let problems = schema.check(&json!(vec![1; 80])).expect_err("violations");
        assert_eq!(problems.len(), MAX_VIOLATIONS + 1);
        assert_eq!(problems[MAX_VIOLATIONS].message, "and 30 more violations");
    }
}
