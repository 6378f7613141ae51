//! The shape of the code: imports between modules form no new cycle, no layer imports a layer
//! above it, and only the HTTP layer (and the crate root that mounts it) imports route modules.
//!
//! The graph is read from the sources: every `crate::…` and `super::…` path outside a
//! `#[cfg(test)]` item is an edge from the module of its file to the deepest module the path
//! names; a grouped path (`crate::store::{self, audit}`) names each of its members. Edges
//! between a module and its own ancestor are not counted (a parent declares its children and
//! children use their parent's items).
//!
//! HTTP handlers stay short: every `async fn` under `routes/` and `console/` is at most
//! [`MAX_HANDLER_LINES`] long, so the work happens in services.
//!
//! What is already wrong is listed below (`KNOWN_*`), so that it can only shrink: a check fails
//! on anything new, and also when a listed exception has gone, so the list stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layers of the server, lowest first: a module may import its own layer and those below.
/// A module belongs to the layer of its longest listed prefix.
const SERVER_LAYERS: &[(&str, u8)] = &[
    // Domain types and pure rules, and the settings every layer reads.
    ("model", 0),
    ("geo", 0),
    ("config", 0),
    ("error", 0),
    ("i18n", 0),
    ("localtime", 0),
    ("workdays", 0),
    ("recurrence", 0),
    ("seal", 0),
    ("evidence", 0),
    ("ledger::chain", 0),
    ("ledger::scoring", 0),
    ("ledger::log", 0),
    ("ledger::views", 0),
    // Storage: SQL and the blob store.
    ("store", 1),
    ("store::pg_reads", 1),
    ("blob", 1),
    ("private_fs", 1),
    // Services: the operations, and the parts the composition root assembles.
    ("sync", 2),
    ("photos", 2),
    ("ledger", 2),
    ("accounts", 2),
    ("assets", 2),
    ("zones", 2),
    ("access", 2),
    ("periods", 2),
    ("review", 2),
    ("intake", 2),
    ("documents", 2),
    ("open311", 2),
    ("roster", 2),
    ("rulebooks", 2),
    ("taxonomy", 2),
    ("workcalendar", 2),
    ("plans", 2),
    ("coverage", 2),
    ("notify", 2),
    ("notify_settings", 2),
    ("exports", 2),
    ("jobs", 2),
    ("telemetry", 2),
    ("ratelimit", 2),
    ("auth::keys", 2),
    ("auth::password", 2),
    ("auth::tokens", 2),
    // The composition root.
    ("state", 3),
    // HTTP: handlers, extractors, the error type.
    ("routes", 4),
    ("keepalive", 4),
    ("console", 4),
    ("download", 4),
    ("auth", 4),
    // Entry points.
    ("", 5),
    ("cli", 5),
    ("demo", 5),
];

/// Cycles that exist today (each a strongly connected set of modules). A cycle found in the
/// code must lie within one of these.
const KNOWN_SERVER_CYCLES: &[&[&str]] = &[];
const KNOWN_PROTOCOL_CYCLES: &[&[&str]] = &[&["ops", "signing", "wire"]];

/// Imports that point up a layer today.
const KNOWN_UPWARD: &[(&str, &str)] = &[];

/// Modules outside `routes` that import a route module today.
const KNOWN_ROUTE_IMPORTS: &[(&str, &str)] = &[];

/// The most lines an `async fn` of the HTTP layer may have, from its `fn` line to its closing
/// brace: a handler parses, calls a service and maps the result.
const MAX_HANDLER_LINES: usize = 40;

/// The HTTP layer's directories whose `async fn`s (handlers and their async helpers) are kept
/// short. Templates (sync functions returning `Markup`) are not counted.
const HANDLER_DIRS: &[&str] = &["routes", "console"];

/// `async fn`s of the HTTP layer over [`MAX_HANDLER_LINES`] today, as (file under
/// `server/src`, function).
const KNOWN_LONG_HANDLERS: &[(&str, &str)] = &[];

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn server_imports_make_no_new_cycle() {
    let graph = module_graph(&source_dir("server/src"));
    check_cycles(&graph, KNOWN_SERVER_CYCLES).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn protocol_imports_make_no_new_cycle() {
    let graph = module_graph(&source_dir("sync-protocol/src"));
    check_cycles(&graph, KNOWN_PROTOCOL_CYCLES).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn server_layers_import_only_downward() {
    let graph = module_graph(&source_dir("server/src"));
    check_layers(&graph, SERVER_LAYERS, KNOWN_UPWARD).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn only_the_http_layer_imports_route_modules() {
    let graph = module_graph(&source_dir("server/src"));
    check_route_imports(&graph, KNOWN_ROUTE_IMPORTS).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn handlers_stay_short() {
    let src = source_dir("server/src");
    let mut found = Vec::new();
    for dir in HANDLER_DIRS {
        let mut files = Vec::new();
        rust_files(&src.join(dir), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source");
            let name = file.strip_prefix(&src).expect("under src");
            let name = name.to_string_lossy().replace('\\', "/");
            for (function, lines) in async_fn_lengths(&without_test_items(&text)) {
                found.push((name.clone(), function, lines));
            }
        }
    }
    check_handler_lengths(&found, MAX_HANDLER_LINES, KNOWN_LONG_HANDLERS)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The checks themselves can fail: a cycle, an upward import and a route import that are not
/// listed are each reported, and so is a listed exception that no longer exists.
#[test]
fn the_checks_report_what_they_are_for() {
    let source = "fn a() {}\n#[cfg(test)]\nmod tests { fn t() { if x { crate::b::f() } } }\nfn c() { crate::c::g() }";
    assert_eq!(
        without_test_items(source),
        "fn a() {}\n\nfn c() { crate::c::g() }"
    );

    let graph = graph_of(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]);
    let err = check_cycles(&graph, &[]).unwrap_err();
    assert!(err.contains("a, b, c"), "{err}");
    assert!(check_cycles(&graph, &[&["a", "b", "c"]]).is_ok());
    let err = check_cycles(&graph_of(&[("a", "b")]), &[&["a", "b"]]).unwrap_err();
    assert!(err.contains("no longer"), "{err}");

    let layers: &[(&str, u8)] = &[("a", 0), ("b", 1), ("c", 2), ("d", 0)];
    let err = check_layers(&graph, layers, &[]).unwrap_err();
    assert!(err.contains("a -> b") && err.contains("b -> c"), "{err}");
    assert!(check_layers(&graph, layers, &[("a", "b"), ("b", "c"), ("d", "a")]).is_err());

    let err = check_route_imports(&graph_of(&[("cli", "routes::users")]), &[]).unwrap_err();
    assert!(err.contains("cli -> routes::users"), "{err}");
    assert!(check_route_imports(&graph_of(&[("routes::a", "routes::b")]), &[]).is_ok());

    // A grouped import names each of its members, nested groups too; `self` names the parent.
    let sources: BTreeMap<String, String> = [
        ("", ""),
        ("store", ""),
        ("store::audit", ""),
        ("store::photos", ""),
        ("store::photos::parts", ""),
        ("routes", ""),
        ("routes::users", ""),
        (
            "a",
            "use crate::store::{\n    self, audit as log,\n    photos::{parts::Part, Photo}, tokens,\n};\n\
             use crate::{model, routes::users};",
        ),
        ("b", "use super::{a::f, store::photos::parts};"),
        ("store::tokens", "pub(crate) use crate::{b::{self}};"),
    ]
    .into_iter()
    .map(|(m, code)| (m.to_owned(), code.to_owned()))
    .collect();
    let graph = graph_of_sources(&sources);
    let named = |m: &str| graph[m].iter().map(String::as_str).collect::<Vec<_>>();
    assert_eq!(
        named("a"),
        [
            "routes::users",
            "store",
            "store::audit",
            "store::photos",
            "store::photos::parts",
            "store::tokens"
        ]
    );
    assert_eq!(named("b"), ["a", "store::photos::parts"]);
    assert_eq!(named("store::tokens"), ["b"]);
    let err = check_cycles(&graph, &[]).unwrap_err();
    assert!(err.contains("a, b, store::tokens"), "{err}");
    let err = check_route_imports(&graph, &[]).unwrap_err();
    assert!(err.contains("a -> routes::users"), "{err}");

    // A long `async fn` is reported with its file, name and length; strings, characters and
    // comments do not end it early; a listed one that is short now, or gone, is reported too.
    let code = "async fn short() {\n    let s = \"}\";\n    let c = '}';\n    // }\n}\n\
                pub async fn long(Form(Body { a }): Form<Body>) -> R {\n    html! { p { (a) } }\n\n}\n\
                async fn declared(&self);";
    assert_eq!(
        async_fn_lengths(code),
        [("short".to_owned(), 5), ("long".to_owned(), 4)]
    );
    let found = |lines| vec![("routes/x.rs".to_owned(), "long".to_owned(), lines)];
    let err = check_handler_lengths(&found(4), 3, &[]).unwrap_err();
    assert!(err.contains("routes/x.rs: `long` is 4 lines"), "{err}");
    assert!(check_handler_lengths(&found(4), 3, &[("routes/x.rs", "long")]).is_ok());
    let err = check_handler_lengths(&found(3), 3, &[("routes/x.rs", "long")]).unwrap_err();
    assert!(err.contains("is 3 lines now"), "{err}");
    let err = check_handler_lengths(&found(4), 3, &[("routes/y.rs", "gone")]).unwrap_err();
    assert!(err.contains("`gone` no longer exists"), "{err}");
}

fn source_dir(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for (a, b) in edges {
        graph.entry((*a).into()).or_default().insert((*b).into());
        graph.entry((*b).into()).or_default();
    }
    graph
}

/// Module path of a source file relative to the crate's `src` (`store/photos.rs` →
/// `store::photos`, `store/mod.rs` → `store`, `lib.rs` → the root, spelled ``); `None` for
/// binaries, which are not part of the library's graph.
fn module_of(relative: &Path) -> Option<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") || parts == ["main"] {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    Some(parts.join("::"))
}

/// The source without the items marked `#[cfg(test)]` (test modules may reach anywhere; they are
/// not part of the shape). An item ends at its first `;` or at the brace that closes its first
/// `{`; braces in strings and comments are rare enough in this code not to matter.
fn without_test_items(text: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i]);
        let item = &rest[i + MARK.len()..];
        let end = match (item.find(';'), item.find('{')) {
            (Some(semi), Some(open)) if semi < open => semi + 1,
            (Some(semi), None) => semi + 1,
            (_, Some(open)) => {
                let mut depth = 0usize;
                let mut close = item.len();
                for (j, c) in item[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                close = open + j + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                close
            }
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_ancestor(a: &str, b: &str) -> bool {
    a.is_empty() || b.starts_with(&format!("{a}::"))
}

fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<String, String> = files
        .iter()
        .filter_map(|f| {
            let module = module_of(f.strip_prefix(src).expect("under src"))?;
            let text = std::fs::read_to_string(f).expect("source");
            Some((module, without_test_items(&text)))
        })
        .collect();
    graph_of_sources(&modules)
}

/// The import graph of `modules` (module path → source without its test items).
fn graph_of_sources(modules: &BTreeMap<String, String>) -> Graph {
    let mut graph = Graph::new();
    for (module, code) in modules {
        let targets = graph.entry(module.clone()).or_default();
        let parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        for (start, base) in [("crate::", &[][..]), ("super::", parent)] {
            for (i, _) in code.match_indices(start) {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let base: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
                let mut paths = Vec::new();
                use_tree(&code.as_bytes()[i + start.len()..], base, &mut paths);
                for path in paths {
                    let target = (0..=path.len())
                        .rev()
                        .map(|k| path[..k].join("::"))
                        .find(|m| modules.contains_key(m))
                        .unwrap_or_default();
                    if !is_ancestor(&target, module) && !is_ancestor(module, &target) {
                        targets.insert(target);
                    }
                }
            }
        }
    }
    graph
}

/// Reads the path that starts at `text` (just after `crate::` or `super::`) into `out`,
/// each path prefixed with `path`: one path, or for a group (`store::{self, audit,
/// photos::{a, b}}`) one per member, nested groups too, `self` in a group naming the group's
/// parent. A path ends at the first segment not followed by `::`. Returns how far it read.
fn use_tree(text: &[u8], mut path: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    loop {
        let start = i;
        while text.get(i).copied().is_some_and(is_ident) {
            i += 1;
        }
        if i == start {
            if text.get(i) != Some(&b'{') {
                out.push(path);
                return i;
            }
            i += 1;
            loop {
                while text
                    .get(i)
                    .is_some_and(|b| b.is_ascii_whitespace() || *b == b',')
                {
                    i += 1;
                }
                match text.get(i) {
                    None => return i,
                    Some(b'}') => return i + 1,
                    _ => {}
                }
                i += use_tree(&text[i..], path.clone(), out).max(1);
                // Past what ends a member (`as name`) to the next member or the group's end.
                while text.get(i).is_some_and(|b| *b != b',' && *b != b'}') {
                    i += 1;
                }
            }
        }
        let ident = String::from_utf8_lossy(&text[start..i]).into_owned();
        if ident != "self" {
            path.push(ident);
        }
        if !text[i..].starts_with(b"::") {
            out.push(path);
            return i;
        }
        i += 2;
    }
}

/// Strongly connected sets of more than one module (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut set = Vec::new();
                while let Some(w) = self.stack.pop() {
                    set.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if set.len() > 1 {
                    set.sort();
                    self.found.push(set);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

fn check_cycles(graph: &Graph, known: &[&[&str]]) -> Result<(), String> {
    let found = cycles(graph);
    let mut problems = Vec::new();
    for set in &found {
        if !known
            .iter()
            .any(|k| set.iter().all(|m| k.contains(&m.as_str())))
        {
            problems.push(format!("a new import cycle between {}", set.join(", ")));
        }
    }
    for k in known {
        if !found
            .iter()
            .any(|set| k.iter().all(|m| set.iter().any(|s| s == m)))
        {
            problems.push(format!(
                "the listed cycle {k:?} no longer exists: remove it from the known list"
            ));
        }
    }
    report(problems)
}

fn layer_of(module: &str, layers: &[(&str, u8)]) -> Option<u8> {
    layers
        .iter()
        .filter(|(prefix, _)| {
            module == *prefix || (!prefix.is_empty() && is_ancestor(prefix, module))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, layer)| *layer)
}

fn check_layers(
    graph: &Graph,
    layers: &[(&str, u8)],
    known: &[(&str, &str)],
) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut upward = BTreeSet::new();
    for (from, targets) in graph {
        let Some(lf) = layer_of(from, layers) else {
            problems.push(format!(
                "module `{from}` is in no layer: add it to the layer table"
            ));
            continue;
        };
        for to in targets {
            if layer_of(to, layers).is_some_and(|lt| lt > lf) {
                upward.insert((from.as_str(), to.as_str()));
            }
        }
    }
    for (from, to) in &upward {
        if !known.contains(&(*from, *to)) {
            problems.push(format!("{from} -> {to} imports a layer above its own"));
        }
    }
    for edge in known {
        if !upward.contains(edge) {
            problems.push(format!(
                "the listed upward import {} -> {} no longer exists: remove it from the known list",
                edge.0, edge.1
            ));
        }
    }
    report(problems)
}

fn check_route_imports(graph: &Graph, known: &[(&str, &str)]) -> Result<(), String> {
    let is_route = |m: &str| m == "routes" || m.starts_with("routes::");
    let mut found = BTreeSet::new();
    for (from, targets) in graph {
        if from.is_empty() || is_route(from) {
            continue;
        }
        for to in targets.iter().filter(|t| is_route(t)) {
            found.insert((from.as_str(), to.as_str()));
        }
    }
    let mut problems: Vec<String> = found
        .iter()
        .filter(|edge| !known.contains(edge))
        .map(|(from, to)| {
            format!("{from} -> {to}: only HTTP code may import route modules (call a service)")
        })
        .collect();
    for edge in known {
        if !found.contains(edge) {
            problems.push(format!(
                "the listed route import {} -> {} no longer exists: remove it from the known list",
                edge.0, edge.1
            ));
        }
    }
    report(problems)
}

/// Each `async fn` with a body in `code`: its name and its lines, from the `fn` line to the line
/// of its closing brace. Braces in strings, character literals and comments are skipped.
fn async_fn_lengths(code: &str) -> Vec<(String, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for (at, _) in code.match_indices("async fn ") {
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let name_at = at + "async fn ".len();
        let name: String = code[name_at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The body is the first `{` outside the parameters' parentheses; a `;` first means none.
        let mut depth = 0i32;
        let mut open = None;
        for (j, b) in bytes.iter().enumerate().skip(name_at) {
            match b {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b';' if depth == 0 => break,
                b'{' if depth == 0 => {
                    open = Some(j);
                    break;
                }
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let close = matching_brace(bytes, open);
        let lines = code[at..close].matches('\n').count() + 1;
        found.push((name, lines));
    }
    found
}

/// The index of the `}` that closes the `{` at `open` (or the end of the text).
fn matching_brace(code: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < code.len() {
        match code[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            b'/' if code.get(i + 1) == Some(&b'/') => {
                while i < code.len() && code[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                // A raw string `r#"…"#` ends at `"#`; others at an unescaped `"`.
                let raw = i > 0 && (code[i - 1] == b'#' || code[i - 1] == b'r');
                let hashes = code[..i].iter().rev().take_while(|b| **b == b'#').count();
                i += 1;
                while i < code.len() {
                    if code[i] == b'\\' && !raw {
                        i += 2;
                        continue;
                    }
                    if code[i] == b'"'
                        && code[i + 1..].iter().take_while(|b| **b == b'#').count() >= hashes
                    {
                        i += hashes;
                        break;
                    }
                    i += 1;
                }
            }
            b'\'' if code.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if code.get(i + 1) == Some(&b'\\') => {
                // Past the quote, the backslash and the escaped character, to the closing quote.
                i += 3;
                while i < code.len() && code[i] != b'\'' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    code.len()
}

/// Fails on an `async fn` over `max` lines that is not listed, and on a listed one that is now
/// short or gone. `found` is (file, function, lines).
fn check_handler_lengths(
    found: &[(String, String, usize)],
    max: usize,
    known: &[(&str, &str)],
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (file, function, lines) in found {
        if *lines > max && !known.contains(&(file.as_str(), function.as_str())) {
            problems.push(format!(
                "{file}: `{function}` is {lines} lines (at most {max}): parse, call a service, \
                 map the result; move the work into the service"
            ));
        }
    }
    for (file, function) in known {
        let now = found
            .iter()
            .find(|(f, name, _)| f == file && name == function);
        match now {
            Some((_, _, lines)) if *lines > max => {}
            Some((_, _, lines)) => problems.push(format!(
                "{file}: `{function}` is {lines} lines now: remove it from the known list"
            )),
            None => problems.push(format!(
                "{file}: `{function}` no longer exists: remove it from the known list"
            )),
        }
    }
    report(problems)
}

fn report(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
