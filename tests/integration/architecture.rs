//! The shape of the code: imports between modules form no new cycle, no layer imports a layer
//! above it, and only the HTTP layer (and the crate root that mounts it) imports route modules.
//!
//! The graph is read from the sources: every `crate::…` and `super::…` path outside a
//! `#[cfg(test)]` item is an edge from the module of its file to the deepest module the path
//! names. Edges between a module and its own ancestor are not counted (a parent declares its
//! children and children use their parent's items).
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
    let mut graph = Graph::new();
    for (module, code) in &modules {
        let targets = graph.entry(module.clone()).or_default();
        let parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        for (start, base) in [("crate::", &[][..]), ("super::", parent)] {
            for (i, _) in code.match_indices(start) {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let mut path: Vec<&str> = base.to_vec();
                for segment in code[i + start.len()..].split("::") {
                    let ident: &str = segment
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("");
                    if ident.is_empty() {
                        break;
                    }
                    path.push(ident);
                    if ident.len() != segment.len() {
                        break;
                    }
                }
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
    graph
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

fn report(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
