//! Layering: the top-level modules of `src/` depend on each other in one direction.
//!
//! Reads `src/**/*.rs` (comments, string literals and `#[cfg(test)]` items left out), finds for
//! each top-level module (`argos`, `auth`, `config`, `http`, `links`, `store`, …) the other
//! top-level modules it names (`crate::x`, `use crate::{a, b}` groups, `super::` climbing to
//! the crate root, the crate root's re-exports), and fails on
//! 1. any cycle between top-level modules;
//! 2. a domain module naming the application's edge (`http`, `config`, `startup`, `demo`,
//!    `cli`);
//! 3. a bottom-layer helper module (`clock`, `digest`) naming any module of the crate.
//!
//! The failure message prints the whole dependency graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Domain modules: they never name the application's edge.
const DOMAIN: &[&str] = &[
    "links",
    "results",
    "callbacks",
    "sid",
    "limits",
    "idempotency",
    "store",
    "argos",
    "queue",
    "verdict",
    "erasure",
    "assertions",
];

/// The application's edge: HTTP, settings, assembly, the demo and the command line.
const EDGE: &[&str] = &["http", "config", "startup", "demo", "cli"];

/// Bottom-layer helpers: they name nothing from the crate.
const BOTTOM: &[&str] = &["clock", "digest"];

/// Edges left out of the checks: none. Never add to it; turn the dependency around instead.
const KNOWN: &[(&str, &str)] = &[];

/// `from -> to -> [where]`.
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

#[test]
fn top_level_modules_depend_on_each_other_in_one_direction() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = dependency_graph(&src);
    let drawn = draw(&graph);
    println!("{drawn}");
    assert!(
        graph.get("http").is_some_and(|to| to.contains_key("links")),
        "the scanner found no `http -> links`: is it broken?\n{drawn}"
    );

    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    for (from, to) in &known {
        if !graph.get(from).is_some_and(|t| t.contains_key(to)) {
            eprintln!("layers: KNOWN entry ({from:?}, {to:?}) no longer exists; remove it");
        }
    }
    let mut checked: Graph = graph.clone();
    for (from, to) in &known {
        if let Some(t) = checked.get_mut(from) {
            t.remove(to);
        }
    }

    let mut problems = Vec::new();
    for cycle in cycles(&checked) {
        let mut line = format!("cycle: {}", cycle.join(" -> "));
        for pair in cycle.windows(2) {
            let at = &checked[&pair[0]][&pair[1]];
            let _ = write!(line, "\n    {} -> {}: {}", pair[0], pair[1], at.join(", "));
        }
        problems.push(line);
    }
    for (from, to_all) in &checked {
        for (to, at) in to_all {
            if DOMAIN.contains(&from.as_str()) && EDGE.contains(&to.as_str()) {
                problems.push(format!(
                    "domain module `{from}` names `{to}` (the application's edge): {}",
                    at.join(", ")
                ));
            }
            if BOTTOM.contains(&from.as_str()) {
                problems.push(format!(
                    "bottom-layer module `{from}` names `{to}`: {}",
                    at.join(", ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}\n\ndependency graph (KNOWN edges marked `(known)`):\n{drawn}",
        problems.join("\n")
    );
}

#[test]
fn the_scanner_reads_paths_not_comments_or_strings() {
    let file = r##"
        //! [`crate::http`] in a doc comment
        use crate::{links::{LinkId, LinkRecord}, store::Store, self};
        use crate::Settings;
        /* crate::demo in /* a nested */ block comment */
        fn f<'a>(s: &'a str) -> char {
            let _ = "crate::cli";
            let _ = r#"crate::startup "quoted""#;
            let _ = crate::verdict::judge;
            super::sid::resolve();
            '"'
        }
        mod inner {
            use super::super::queue::WorkQueue;
            use super::Thing;
        }
        #[cfg(test)]
        mod tests {
            use crate::results::Results;
        }
        #[cfg(test)]
        fn helper() -> [u8; 2] { crate::demo::x() }
        fn after() { crate::limits::x(); }
    "##;
    let modules: BTreeSet<String> = [
        "cli", "config", "demo", "http", "limits", "links", "queue", "sid", "startup", "store",
        "verdict", "results",
    ]
    .iter()
    .map(|m| m.to_string())
    .collect();
    let reexports = BTreeMap::from([("Settings".to_string(), "config".to_string())]);
    // As `src/results.rs`: one level deep.
    let found: BTreeSet<String> = references(file, 1, &modules, &reexports)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let expected: BTreeSet<String> = [
        "links", "store", "config", "verdict", "sid", "queue", "limits",
    ]
    .iter()
    .map(|m| m.to_string())
    .collect();
    assert_eq!(found, expected);
}

/// The top-level modules and who names whom.
fn dependency_graph(src: &Path) -> Graph {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let lib_tokens = tokens(&strip(&lib));
    let mut modules = BTreeSet::new();
    let mut reexports = BTreeMap::new();
    for (i, t) in lib_tokens.iter().enumerate() {
        let next = |k: usize| lib_tokens.get(i + k).map_or("", |t| t.text.as_str());
        if t.text == "mod" && next(2) == ";" {
            modules.insert(next(1).to_string());
        }
        // `pub use module::Name;` and `pub use module::{A, B};` at the root.
        if t.text == "use" && i > 0 && lib_tokens[i - 1].text == "pub" && next(2) == "::" {
            let module = next(1).to_string();
            let mut k = 3;
            while !matches!(next(k), ";" | "") {
                if is_ident(next(k)) && next(k + 1) != "::" {
                    reexports.insert(next(k).to_string(), module.clone());
                }
                k += 1;
            }
        }
    }

    let mut graph = Graph::new();
    for module in &modules {
        graph.entry(module.clone()).or_default();
    }
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap();
        let mut path: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if path.last().is_some_and(|l| l == "mod") {
            path.pop();
        }
        let Some(top) = path.first().filter(|t| modules.contains(*t)).cloned() else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (to, line) in references(&text, path.len(), &modules, &reexports) {
            if to != top {
                graph
                    .entry(top.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .push(format!("src/{}:{line}", rel.display()));
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// `text` with comments and string/char literals blanked out (line breaks kept).
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_at(&c, i).filter(|_| !prev_ident) {
            // Raw string: r"…", r#"…"#, br"…".
            let mut j = i + if c[i] == 'b' { 2 } else { 1 } + hashes + 1;
            while j < c.len() {
                if c[j] == '"' && (1..=hashes).all(|h| c.get(j + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &c[i..j.min(c.len())] {
                blank(&mut out, ch);
            }
            i = j;
        } else if c[i] == '"' {
            blank(&mut out, c[i]);
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '\'' && (c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'')) {
            // A char literal (a lifetime has no closing quote).
            let mut j = i + 1;
            if c[j] == '\\' {
                j += 2;
            } else {
                j += 1;
            }
            while j < c.len() && c[j] != '\'' {
                j += 1;
            }
            for &ch in &c[i..(j + 1).min(c.len())] {
                blank(&mut out, ch);
            }
            i = j + 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// At a raw string's `r` (or `br`): how many `#` it uses.
fn raw_string_at(c: &[char], i: usize) -> Option<usize> {
    let mut j = match (c.get(i), c.get(i + 1)) {
        (Some('r'), _) => i + 1,
        (Some('b'), Some('r')) => i + 2,
        _ => return None,
    };
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some(hashes)
}

struct Token {
    text: String,
    line: usize,
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let c: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < c.len() {
            if c[i].is_alphanumeric() || c[i] == '_' {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push(Token {
                    text: c[start..i].iter().collect(),
                    line: n + 1,
                });
            } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
                out.push(Token {
                    text: "::".into(),
                    line: n + 1,
                });
                i += 2;
            } else {
                if !c[i].is_whitespace() {
                    out.push(Token {
                        text: c[i].to_string(),
                        line: n + 1,
                    });
                }
                i += 1;
            }
        }
    }
    out
}

/// The top-level modules `text` names, with their lines; `depth` is the file's module depth
/// (`src/x.rs` and `src/x/mod.rs`: 1, `src/x/y.rs`: 2).
fn references(
    text: &str,
    depth: usize,
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
) -> Vec<(String, usize)> {
    let t = tokens(&strip(text));
    let at = |i: usize| t.get(i).map_or("", |t| t.text.as_str());
    let resolve = |name: &str| {
        if modules.contains(name) {
            Some(name.to_string())
        } else {
            reexports.get(name).cloned()
        }
    };
    // The top-level names after a root path's `::` at `i`: one name, or a `{…}` group's
    // first names.
    let names_at = |i: usize| -> Vec<String> {
        if at(i) != "{" {
            return resolve(at(i)).into_iter().collect();
        }
        let mut names = Vec::new();
        let (mut level, mut k, mut first) = (0, i, true);
        loop {
            match at(k) {
                "" => break,
                "{" => {
                    level += 1;
                    first = level == 1;
                }
                "}" => {
                    level -= 1;
                    if level == 0 {
                        break;
                    }
                }
                "," if level == 1 => first = true,
                name if first && level == 1 && is_ident(name) => {
                    names.extend(resolve(name));
                    first = false;
                }
                _ => {}
            }
            k += 1;
        }
        names
    };

    let mut found = Vec::new();
    let mut braces = 0usize;
    // Brace levels at which inline `mod x {` blocks opened.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < t.len() {
        match at(i) {
            "#" if at(i + 1) == "["
                && at(i + 2) == "cfg"
                && at(i + 3) == "("
                && at(i + 4) == "test"
                && at(i + 5) == ")"
                && at(i + 6) == "]" =>
            {
                i = skip_item(&t, i + 7);
                continue;
            }
            "{" => {
                if i >= 2 && at(i - 2) == "mod" {
                    inline_mods.push(braces);
                }
                braces += 1;
            }
            "}" => {
                braces = braces.saturating_sub(1);
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
            }
            "crate" if at(i + 1) == "::" && (i == 0 || at(i - 1) != "::") => {
                for name in names_at(i + 2) {
                    found.push((name, t[i].line));
                }
            }
            "super" if at(i + 1) == "::" && (i == 0 || at(i - 1) != "::") => {
                let mut k = i;
                let mut ups = 0;
                while at(k) == "super" && at(k + 1) == "::" {
                    ups += 1;
                    k += 2;
                }
                if ups >= depth + inline_mods.len() {
                    for name in names_at(k) {
                        found.push((name, t[i].line));
                    }
                }
                i = k;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The index after the item starting at `i` (its other attributes included): past its `;` or
/// its `{…}` block.
fn skip_item(t: &[Token], mut i: usize) -> usize {
    let (mut braces, mut other) = (0i32, 0i32);
    while i < t.len() {
        match t[i].text.as_str() {
            "{" => braces += 1,
            "}" => {
                braces -= 1;
                if braces == 0 && other == 0 {
                    return i + 1;
                }
            }
            "(" | "[" => other += 1,
            ")" | "]" => other -= 1,
            ";" if braces == 0 && other == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Every cycle's modules (one cycle per strongly connected component of two or more), the
/// first module repeated at the end.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for start in graph.keys() {
        if seen.contains(start) {
            continue;
        }
        // A shortest path from `start` back to itself, if any (breadth first).
        let mut prev: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closed = None;
        while let Some(at) = queue.pop_front() {
            for to in graph.get(at).into_iter().flat_map(|t| t.keys()) {
                if to == start {
                    closed = Some(at);
                    break;
                }
                if !prev.contains_key(to) {
                    prev.insert(to, at);
                    queue.push_back(to);
                }
            }
            if closed.is_some() {
                break;
            }
        }
        if let Some(mut at) = closed {
            let mut cycle = vec![start.clone()];
            while at != start {
                cycle.push(at.clone());
                at = prev[at];
            }
            cycle.push(start.clone());
            cycle.reverse();
            seen.extend(cycle.iter().cloned());
            out.push(cycle);
        }
    }
    out
}

fn draw(graph: &Graph) -> String {
    let mut out = String::new();
    for (from, to) in graph {
        let to: Vec<String> = to
            .keys()
            .map(|t| {
                if KNOWN.contains(&(from.as_str(), t.as_str())) {
                    format!("{t} (known)")
                } else {
                    t.clone()
                }
            })
            .collect();
        let _ = writeln!(out, "{from:>12} -> {}", to.join(", "));
    }
    out
}
