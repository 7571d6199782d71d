//! ARCHITECTURE.md's "What may import what" list is the rule book: this test reads it, then
//! every source file of `src/` and `crates/*/src/`, and fails on each import the list does not
//! allow, naming the file, the line and the rule. Comments and string literals are not read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one module of the provider crate may use.
#[derive(Debug)]
enum Uses {
    Everything,
    /// Modules (`store`) or paths inside one (`provider::config`).
    Only(Vec<String>),
}

#[derive(Debug, Default)]
struct Rules {
    /// Module (`cli`, `main`) → what it may use, with the rule's text.
    modules: BTreeMap<String, (Uses, String)>,
    /// Modules every module may use.
    shared: Vec<String>,
    /// External crate → the modules (or `crates/NAME`) that may name it, with the rule's text.
    crates: Vec<(String, Vec<String>, String)>,
    /// Names (`Tx`, `.transaction(`) → the modules that may write them, with the rule's text.
    names: Vec<(Vec<String>, Vec<String>, String)>,
}

/// The backquoted words of `text`, in order.
fn quoted(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn read_rules(markdown: &str) -> Rules {
    let start = markdown
        .find("What may import what.")
        .expect("ARCHITECTURE.md has the \"What may import what.\" paragraph");
    let mut rules = Rules::default();
    // The list is the first run of "- " lines after the paragraph.
    let list = markdown[start..]
        .lines()
        .skip_while(|l| !l.starts_with("- "))
        .take_while(|l| l.starts_with("- "));
    for line in list {
        let rule = line.trim_start_matches("- ").to_string();
        let words = quoted(&rule);
        if let Some(rest) = rule.strip_prefix("every module may use ") {
            rules.shared.extend(quoted(rest));
        } else if rule.starts_with("crate `") {
            let (name, allowed) = words.split_first().expect("crate rule names a crate");
            rules
                .crates
                .push((name.clone(), allowed.to_vec(), rule.clone()));
        } else if let Some((names, allowed)) = rule.split_once(" only in ") {
            rules
                .names
                .push((quoted(names), quoted(allowed), rule.clone()));
        } else if let Some((module, uses)) = rule.split_once(" uses ") {
            let module = quoted(module).pop().expect("module rule names a module");
            let uses = match uses {
                "everything" => Uses::Everything,
                "nothing" => Uses::Only(Vec::new()),
                list => Uses::Only(quoted(list)),
            };
            rules.modules.insert(module, (uses, rule.clone()));
        } else {
            panic!("ARCHITECTURE.md: a rule this test cannot read: {line:?}");
        }
    }
    assert!(
        !rules.modules.is_empty(),
        "ARCHITECTURE.md's list was not found"
    );
    rules
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file belongs to: `cli` for `src/cli/…`, `main` for `src/main.rs`,
/// `crates/vcenter` for `crates/vcenter/src/…`.
fn module_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts[0] == "crates" {
        return format!("crates/{}", parts[1]);
    }
    parts[1].trim_end_matches(".rs").to_string()
}

/// A line without its comment and string literals (a string spanning lines is rare enough in
/// import-bearing code to be ignored).
fn code_of(line: &str) -> String {
    let line = line.replace("'\"'", "");
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '/' && chars.peek() == Some(&'/') {
            break;
        } else {
            out.push(c);
        }
    }
    out
}

/// The paths after each `crate::` (and `vsphereipam::`) of a line, as `module` or
/// `module::item`; a brace group (`crate::{a, b::c}`) gives one path per member.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for root in ["crate::", "vsphereipam::"] {
        let mut rest = code;
        while let Some(at) = rest.find(root) {
            let before = rest[..at].chars().last();
            rest = &rest[at + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                out.extend(
                    inner
                        .split(',')
                        .map(|m| first_two(m.trim()))
                        .filter(|m| !m.is_empty()),
                );
            } else {
                out.push(first_two(rest));
            }
        }
    }
    out
}

/// `store::ops::X` → `store::ops`; `redact::redact(x)` → `redact::redact`.
fn first_two(path: &str) -> String {
    let segments: Vec<&str> = path
        .split("::")
        .take(2)
        .map(|s| {
            s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()
        })
        .take_while(|s| !s.is_empty())
        .collect();
    segments.join("::")
}

/// Whether `code` names `name` as a whole word (or, for a name with punctuation, contains it).
fn names(code: &str, name: &str) -> bool {
    if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return code.contains(name);
    }
    code.match_indices(name).any(|(at, _)| {
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let before = code[..at].chars().last();
        let after = code[at + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

fn allowed(module: &str, path: &str, uses: &Uses, shared: &[String]) -> bool {
    let top = path.split("::").next().unwrap_or_default();
    if top == module || shared.iter().any(|s| s == top) {
        return true;
    }
    match uses {
        Uses::Everything => true,
        Uses::Only(list) => list
            .iter()
            .any(|u| path == u || top == u || path.starts_with(&format!("{u}::"))),
    }
}

/// Every breach of the rules in the repository at `repo`, one line each.
fn breaches(repo: &Path, rules: &Rules) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&repo.join("src"), &mut files);
    for entry in std::fs::read_dir(repo.join("crates")).expect("crates/") {
        let src = entry.expect("crate dir").path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let rel = file.strip_prefix(repo).expect("inside the repository");
        let module = module_of(rel);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        let in_provider_crate = !module.starts_with("crates/");
        let module_rule = rules.modules.get(&module);
        if in_provider_crate && module_rule.is_none() {
            found.push(format!(
                "{}: module `{module}` is not in ARCHITECTURE.md's list",
                rel.display()
            ));
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line);
            let at = format!("{}:{}", rel.display(), n + 1);
            if let Some((uses, rule)) = module_rule {
                for path in crate_paths(&code) {
                    if !allowed(&module, &path, uses, &rules.shared) {
                        found.push(format!("{at}: uses `{path}`; the rule: {rule}"));
                    }
                }
            }
            for (krate, places, rule) in &rules.crates {
                let named = names(&code, &format!("{krate}::"))
                    || code.trim_start().starts_with(&format!("use {krate}"))
                    || code.contains(&format!("extern crate {krate}"));
                if named && !places.contains(&module) {
                    found.push(format!("{at}: names crate `{krate}`; the rule: {rule}"));
                }
            }
            for (words, places, rule) in &rules.names {
                for word in words {
                    if names(&code, word) && !places.contains(&module) {
                        found.push(format!("{at}: names `{word}`; the rule: {rule}"));
                    }
                }
            }
        }
    }
    found
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rules() -> Rules {
    read_rules(&std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md"))
}

#[test]
fn every_import_is_one_the_architecture_allows() {
    let rules = rules();
    let lib = std::fs::read_to_string(repo().join("src/lib.rs")).expect("src/lib.rs");
    let mut found: Vec<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .filter(|m| !rules.modules.contains_key(*m))
        .map(|m| format!("src/lib.rs: module `{m}` is not in ARCHITECTURE.md's list"))
        .collect();
    found.extend(breaches(repo(), &rules));
    assert!(
        found.is_empty(),
        "imports ARCHITECTURE.md does not allow:\n{}",
        found.join("\n")
    );
}

/// The checker itself finds what it must: a forbidden import in a `use` line, a brace group and
/// an inline path; a crate named where it may not be; a name kept to one module; and it lets
/// comments, strings and allowed paths through.
#[test]
fn the_checker_finds_forbidden_imports() {
    let rules = read_rules(
        "What may import what.\n\n\
         - `store` uses `ipam`\n\
         - `cli` uses `store`, `provider::config`\n\
         - `ipam` uses nothing\n\
         - `provider` uses everything\n\
         - every module may use `redact`\n\
         - crate `vim_rs` only in `crates/vcenter`\n\
         - `Tx`, `.transaction(` only in `store`\n\nWhy: ...\n- not a rule\n",
    );
    assert_eq!(rules.modules.len(), 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "src/cli/mod.rs",
        "use crate::store::Store; // crate::ipam is fine in a comment\n\
         use crate::provider::config::Settings;\n\
         use crate::provider::vm::Thing;\n\
         use crate::{redact, ipam::ranges};\n\
         fn f() { let s = \"crate::vmlife in a string\"; crate::nics::match_all(); }\n\
         fn g(store: &Store) { store.transaction(|tx| Ok(())); }\n",
    );
    write("src/ipam/mod.rs", "use vim_rs::types::Moref;\n");
    write("src/provider/mod.rs", "use crate::vmlife::create;\n");
    write(
        "src/store/mod.rs",
        "pub trait Tx {}\nuse crate::ipam::ranges;\n",
    );
    write("crates/vcenter/src/lib.rs", "use vim_rs::core::Client;\n");
    write("src/other.rs", "fn nothing() {}\n");
    let found = breaches(dir.path(), &rules);
    let expect = [
        "src/cli/mod.rs:3: uses `provider::vm`; the rule: `cli` uses `store`, `provider::config`",
        "src/cli/mod.rs:4: uses `ipam::ranges`; the rule: `cli` uses `store`, `provider::config`",
        "src/cli/mod.rs:5: uses `nics::match_all`; the rule: `cli` uses `store`, `provider::config`",
        "src/cli/mod.rs:6: names `.transaction(`; the rule: `Tx`, `.transaction(` only in `store`",
        "src/ipam/mod.rs:1: names crate `vim_rs`; the rule: crate `vim_rs` only in `crates/vcenter`",
        "src/other.rs: module `other` is not in ARCHITECTURE.md's list",
    ];
    assert_eq!(found, expect, "{found:#?}");
}
