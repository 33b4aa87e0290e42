//! What docs/architecture.md says of the code's shape, checked against the code: the
//! modules of munin-asyncd import each other without a cycle, and every module and source
//! path the document names exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A module's code: without its comments (a doc link is no import) and its unit tests
/// (the `mod tests` at the end of a file).
fn product_source(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text,
    };
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules of `src/asyncd/` (its `.rs` files but `mod.rs`, and its folders, each one
/// module with the files in it; its `tests/` folder is test code) and, for each, the
/// sibling modules it names as `crate::asyncd::NAME`.
fn asyncd_imports() -> BTreeMap<String, BTreeSet<String>> {
    let dir = root().join("src/asyncd");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && name != "mod" {
            modules.insert(name.to_string(), product_source(&path));
        } else if path.is_dir() && name != "tests" {
            let mut text = String::new();
            for file in std::fs::read_dir(&path).unwrap() {
                let file = file.unwrap().path();
                if file.extension().is_some_and(|e| e == "rs") {
                    text += &product_source(&file);
                }
            }
            modules.insert(name.to_string(), text);
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(name, text)| {
            let uses = text
                .match_indices("crate::asyncd::")
                .map(|(at, pat)| {
                    text[at + pat.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .filter(|m| names.contains(m) && *m != name)
                .collect();
            (name, uses)
        })
        .collect()
}

/// A cycle of `graph`, if it has one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth first; `path` is the stack of modules being visited.
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == at) {
            let mut cycle = path[start..].to_vec();
            cycle.push(at.to_string());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_passes_a_dag() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn munin_asyncds_modules_import_each_other_without_a_cycle() {
    let graph = asyncd_imports();
    assert!(
        graph.len() > 10,
        "read {} modules of src/asyncd",
        graph.len()
    );
    assert!(
        graph["coordinator"].contains("poll"),
        "the reading of imports found nothing: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("src/asyncd imports in a circle: {}", cycle.join(" -> "));
    }
}

/// The words of `text` in backticks.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_module_and_path_docs_architecture_names_exists() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let mut missing = Vec::new();
    let mut modules = 0;
    for word in backticked(&doc) {
        if word.starts_with("src/") {
            let path = word.trim_end_matches('/');
            if !root().join(path).exists() {
                missing.push(word.to_string());
            }
            continue;
        }
        let parts: Vec<&str> = word.split("::").collect();
        let [top, module] = parts.as_slice() else {
            continue;
        };
        if !["spool", "serve", "asyncd", "util"].contains(top)
            || !module.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            continue;
        }
        modules += 1;
        let file = root().join(format!("src/{top}/{module}.rs"));
        let folder = root().join(format!("src/{top}/{module}/mod.rs"));
        if !file.exists() && !folder.exists() {
            missing.push(word.to_string());
        }
    }
    assert!(
        modules > 20,
        "only {modules} modules named: the reading is broken"
    );
    assert!(
        missing.is_empty(),
        "docs/architecture.md names what does not exist: {missing:?}"
    );
}
