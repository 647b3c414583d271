//! The layering rule of ARCHITECTURE.md, checked: a module imports only modules below it.
//!
//! Layers, bottom up: the pure core (money, ids, clock, errors, metrics, config, failpoints,
//! TLS roots, stopping, multi-row statement text) · `db` · `timeline` (the per-order audit trail anything above
//! may write) · the capabilities (`inventory`, `orders`, `payments`, `pricing`, `notify`,
//! `documents`, `mail`, and `verify` beside them), which never import one another ·
//! `idempotency` · `checkout` (the saga) · `relay` (events to their sinks, which may render the
//! saga's documents) · `web` (the browser pages) · `http` · `bench` and the binary. Two standing exceptions: a capability's HTTP
//! edge (`routes.rs`, `seed.rs`, `webhooks.rs`) uses `http`'s extractors and errors; and
//! `state` (the `AppState` context built at start) is handed down to every layer.
//!
//! The gateway simulator (`crates/gateway-sim`) is outside these layers: only the embedding
//! (`state.rs`, which builds it, and `main.rs`, which serves `till gateway-sim`) names it,
//! and it never names Till.

use std::collections::BTreeSet;
use std::path::Path;

/// The layer of each top-level module of `src/`.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "money" | "ids" | "clock" | "error" | "metrics" | "config" | "failpoint" | "tls"
        | "stopping" | "multirow" => 0,
        "db" => 1,
        // The timeline sits right above `db` (its writes join a transaction's `db::Script`):
        // every capability and the saga may write to it.
        "timeline" => 2,
        "inventory" | "orders" | "payments" | "pricing" | "notify" | "verify" | "documents"
        | "mail" => 3,
        "idempotency" => 4,
        "checkout" => 5,
        "relay" => 6,
        "state" => 7,
        // The browser pages, right under the HTTP edge that mounts them.
        "web" => 8,
        "http" => 9,
        "bench" => 10,
        "lib" | "main" => 11,
        _ => return None,
    })
}

/// The top-level modules a file names as `crate::x` or inside `crate::{x, y::z}`, outside
/// comments.
fn imports(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .collect(),
                None => vec![rest],
            };
            for name in names {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_one_above_it_or_beside_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 30,
        "found only {} files under src",
        files.len()
    );
    let mut broken = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.iter().next().unwrap().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        let own = layer(&module).unwrap_or_else(|| panic!("{module} has no layer: give it one"));
        let file_name = relative.file_name().unwrap().to_string_lossy();
        let http_edge = matches!(&*file_name, "routes.rs" | "seed.rs" | "webhooks.rs");
        let source = std::fs::read_to_string(file).unwrap();
        for name in imports(&source) {
            let Some(theirs) = layer(&name) else {
                continue; // an item of lib.rs (`crate::start`), not a module
            };
            let allowed =
                name == module || theirs < own || name == "state" || (http_edge && name == "http");
            if !allowed {
                broken.push(format!("{} imports {name}", relative.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.join("\n")
    );
}

/// The files of `src/` allowed to name the simulator's crate: where it is embedded.
const EMBEDDING: &[&str] = &["state.rs", "main.rs"];

#[test]
fn only_the_embedding_names_the_simulator_and_the_simulator_never_names_till() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let naming: Vec<String> = files
        .iter()
        .filter(|f| code_mentions(&std::fs::read_to_string(f).unwrap(), "till_gateway_sim"))
        .map(|f| {
            f.strip_prefix(root.join("src"))
                .unwrap()
                .display()
                .to_string()
        })
        .filter(|f| !EMBEDDING.contains(&f.as_str()))
        .collect();
    assert!(naming.is_empty(), "outside the embedding: {naming:?}");

    let sim = root.join("crates/gateway-sim");
    let mut files = Vec::new();
    rust_files(&sim.join("src"), &mut files);
    assert!(
        files.len() > 5,
        "found only {} simulator files",
        files.len()
    );
    let naming: Vec<String> = files
        .iter()
        .filter(|f| code_mentions(&std::fs::read_to_string(f).unwrap(), "till::"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(naming.is_empty(), "the simulator names Till in {naming:?}");
    let manifest = std::fs::read_to_string(sim.join("Cargo.toml")).unwrap();
    assert!(
        !manifest
            .lines()
            .any(|l| l.trim_start().starts_with("till ") || l.trim_start().starts_with("till=")),
        "the simulator depends on Till"
    );
}

/// Whether `needle` occurs in `source` outside comment lines.
fn code_mentions(source: &str, needle: &str) -> bool {
    source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .any(|l| l.contains(needle))
}

#[test]
fn the_import_reader_sees_groups_and_skips_comments() {
    let found = imports(
        "use crate::{checkout, inventory::x, notify};\n// crate::http\nlet a = crate::db::Db;",
    );
    let names: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(names, ["checkout", "db", "inventory", "notify"]);
}

/// SQL is written only in the stores (`store.rs`, or a `store/` directory), in `db` (the
/// schema, migrations, settings and leases) and in `verify` (the invariants, read-only).
#[test]
fn sql_lives_only_in_the_stores() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut outside = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let allowed = parts.iter().any(|p| p == "store.rs" || p == "store")
            || parts[0] == "db"
            || parts[0] == "verify.rs";
        if allowed {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap();
        for word in ["sqlx::query", "query_as(", "query_scalar(", "raw_sql("] {
            if source.contains(word) {
                outside.push(format!("{} uses {word}", relative.display()));
            }
        }
    }
    assert!(
        outside.is_empty(),
        "SQL outside the stores:\n{}",
        outside.join("\n")
    );
}
