//! The module graph of `src/` has one direction (issue 15; README "Architecture"): every `use` item
//! (`crate::…`, `super::…`, `self::…`, `child::…`) and every such path in code is read, resolved to
//! the file that defines the item (following `pub use` re-exports), and checked against [`LAYERS`],
//! lowest first: a file may import its own layer or a lower one, never a higher one, and no two
//! files may import each other (a parent `mod.rs` and its child count as two files).
//! A violation names the file, the line and the rule broken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The allowed layer order, lowest first. Each entry is a list of module paths (a file belongs to the
/// longest one that prefixes its module path); modules in one entry share a layer. A module not
/// listed is an error, so a new module must be placed here.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &["metrics", "telemetry", "mqtt", "tls", "broker"],
    ),
    ("threshold grammar", &["threshold"]),
    ("scenario", &["scenario"]),
    ("plan", &["plan"]),
    ("engine", &["engine"]),
    ("report model", &["report"]),
    ("gate", &["gate"]),
    ("capacity search", &["search"]),
    ("writers and live views", &["output", "progress", "ui"]),
    (
        "commands",
        &[
            "error",
            "cli",
            "app",
            "app_gates",
            "app_docs",
            "app_preview",
            "app_common",
            "app_search",
            "app_search_args",
            "lib",
            "main",
        ],
    ),
];

/// File pairs allowed to import each other for now, each with the issue that removes the exception.
const MUTUAL_EXCEPTIONS: &[(&str, &str)] = &[];

/// One source file: its module path and its text with comments and literals blanked.
struct File {
    rel: String,
    module: Vec<String>,
    code: String,
}

/// `src/` of this crate; `FLEETSTORM_LAYERS_SRC` points the check at another tree (to measure an
/// older commit's graph).
fn src_dir() -> PathBuf {
    std::env::var_os("FLEETSTORM_LAYERS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_of(rel: &str) -> Vec<String> {
    let stem = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        return vec![];
    }
    parts
}

/// Replace comments, string and char literals by spaces (newlines kept, so lines still count).
fn blank(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let keep = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'/' && next == Some(b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && next == Some(b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend([b' ', b' ']);
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend([b' ', b' ']);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(keep(b[i]));
                    i += 1;
                }
            }
        } else if c == b'r'
            && (next == Some(b'"') || next == Some(b'#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &x in &b[i..j.min(b.len())] {
                out.push(keep(x));
            }
            i = j;
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(keep(b[i]));
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some(b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                out.extend(std::iter::repeat_n(b' ', j + 1 - i));
                i = j + 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                out.extend([b' ', b' ', b' ']);
                i += 3;
            } else if next.is_some_and(|n| n >= 0x80) {
                // A multi-byte char literal.
                let mut j = i + 1;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                out.extend(std::iter::repeat_n(b' ', j + 1 - i));
                i = j + 1;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A path as written, where it was written and in which inline module of the file.
struct Written {
    path: Vec<String>,
    line: usize,
    /// The module the path is written in (the file's, plus inline `mod x { … }` names).
    scope: Vec<String>,
    /// Written as `pub use` / `pub(crate) use` (a re-export).
    reexport: bool,
}

/// Expand a use tree (`a::{b, c::{d as e, *}}`) into paths; `self` in braces names the prefix.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let mut depth = 0;
        let mut start = 0;
        let bytes = inner.as_bytes();
        for (k, &ch) in bytes.iter().enumerate() {
            match ch {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                b',' if depth == 0 => {
                    expand(&inner[start..k], &base, out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &base, out);
        return;
    }
    let tree = tree.split(" as ").next().unwrap().trim();
    let mut path = prefix.to_vec();
    for seg in tree.split("::").map(str::trim).filter(|s| !s.is_empty()) {
        if seg != "self" {
            path.push(seg.to_owned());
        }
    }
    out.push(path);
}

/// Every path a file writes: its `use` items, and `crate::…` / `super::…` paths in code.
fn written_paths(file: &File) -> Vec<Written> {
    let code = file.code.as_bytes();
    let newlines: Vec<usize> = (0..code.len()).filter(|&k| code[k] == b'\n').collect();
    let line_at = |pos: usize| newlines.partition_point(|&k| k < pos) + 1;
    // Inline modules: (name, brace depth inside it).
    let mut scopes: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    let mut out = Vec::new();
    let word_at = |i: usize, w: &str| {
        code[i..].starts_with(w.as_bytes())
            && (i == 0 || !is_ident(code[i - 1]))
            && code.get(i + w.len()).is_none_or(|&c| !is_ident(c))
    };
    let scope_now = |scopes: &[(String, i32)]| {
        let mut s = file.module.clone();
        s.extend(scopes.iter().map(|(n, _)| n.clone()));
        s
    };
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        if c == b'{' {
            depth += 1;
        } else if c == b'}' {
            if scopes.last().is_some_and(|(_, d)| *d == depth) {
                scopes.pop();
            }
            depth -= 1;
        } else if word_at(i, "mod") {
            // `mod name {` opens an inline module; `mod name;` declares a file.
            let rest = &file.code[i + 3..];
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|&ch| ch.is_alphanumeric() || ch == '_')
                .collect();
            let after = rest.trim_start()[name.len()..].trim_start();
            if !name.is_empty() && after.starts_with('{') {
                let open = i + 3 + (rest.len() - after.len());
                scopes.push((name, depth + 1));
                depth += 1;
                i = open + 1;
                continue;
            }
        } else if word_at(i, "use") {
            let end = file.code[i..].find(';').map_or(code.len(), |k| i + k);
            let before = file.code[..i].trim_end();
            let reexport = before.ends_with("pub")
                || before.ends_with(')') && {
                    let b = before.rfind("pub").unwrap_or(0);
                    before[b..].starts_with("pub(")
                };
            let mut paths = Vec::new();
            expand(&file.code[i + 3..end], &[], &mut paths);
            for path in paths {
                out.push(Written {
                    path,
                    line: line_at(i),
                    scope: scope_now(&scopes),
                    reexport,
                });
            }
            i = end;
            continue;
        } else if is_ident(c) && (i == 0 || !(is_ident(code[i - 1]) || code[i - 1] == b':')) {
            // A path in code: `crate::…`, `super::…`, or `child::…` (kept when `child` turns out to
            // be a child module of the scope, see `Crate::relative`).
            let start = i;
            let mut j = i;
            let mut path = Vec::new();
            loop {
                let s = j;
                while j < code.len() && is_ident(code[j]) {
                    j += 1;
                }
                if s == j {
                    break;
                }
                path.push(file.code[s..j].to_owned());
                if code[j..].starts_with(b"::") && code.get(j + 2).is_some_and(|&c| is_ident(c)) {
                    j += 2;
                } else {
                    break;
                }
            }
            if path.len() > 1 {
                out.push(Written {
                    path,
                    line: line_at(start),
                    scope: scope_now(&scopes),
                    reexport: false,
                });
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// Make a written path absolute (without the leading `crate`).
fn absolute(path: &[String], scope: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    if first == "crate" {
        return Some(path[1..].to_vec());
    }
    let mut base = scope.to_vec();
    let mut rest = path;
    if first == "super" || first == "self" {
        while let Some(seg) = rest.first() {
            match seg.as_str() {
                "super" => {
                    base.pop()?;
                }
                "self" => {}
                _ => break,
            }
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        return Some(base);
    }
    None
}

struct Crate {
    files: Vec<File>,
    /// Module path → index of its file.
    by_module: BTreeMap<Vec<String>, usize>,
    /// (file, name) → absolute path it re-exports.
    reexports: BTreeMap<(usize, String), Vec<String>>,
    /// file → modules it glob-re-exports (`pub use x::*`).
    globs: BTreeMap<usize, Vec<Vec<String>>>,
    /// file → names it defines at its top.
    defines: Vec<BTreeSet<String>>,
}

fn defined_names(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for kw in [
        "struct", "enum", "fn", "const", "static", "type", "trait", "mod", "union",
    ] {
        let mut from = 0;
        while let Some(k) = code[from..].find(kw) {
            let at = from + k;
            from = at + kw.len();
            let b = code.as_bytes();
            if (at > 0 && is_ident(b[at - 1])) || b.get(at + kw.len()).is_some_and(|&c| is_ident(c))
            {
                continue;
            }
            let name: String = code[from..]
                .trim_start()
                .chars()
                .take_while(|&ch| ch.is_alphanumeric() || ch == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

impl Crate {
    fn load() -> Crate {
        let root = src_dir();
        let mut paths = Vec::new();
        walk(&root, &mut paths);
        paths.sort();
        let mut files = Vec::new();
        for p in paths {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let code = blank(&std::fs::read_to_string(&p).unwrap());
            files.push(File {
                module: module_of(&rel),
                rel,
                code,
            });
        }
        let mut by_module = BTreeMap::new();
        for (k, f) in files.iter().enumerate() {
            if f.rel != "main.rs" {
                by_module.insert(f.module.clone(), k);
            }
        }
        let mut reexports = BTreeMap::new();
        let mut globs: BTreeMap<usize, Vec<Vec<String>>> = BTreeMap::new();
        let mut defines = Vec::new();
        for (k, f) in files.iter().enumerate() {
            defines.push(defined_names(&f.code));
            for w in written_paths(f) {
                if !w.reexport || w.scope != f.module {
                    continue;
                }
                let abs = match absolute(&w.path, &w.scope) {
                    Some(a) => a,
                    // `pub use child::X` is relative to the file's module.
                    None => {
                        let mut a = f.module.clone();
                        a.extend(w.path.iter().cloned());
                        a
                    }
                };
                match abs.last().map(String::as_str) {
                    Some("*") => globs
                        .entry(k)
                        .or_default()
                        .push(abs[..abs.len() - 1].to_vec()),
                    Some(name) => {
                        reexports.insert((k, name.to_owned()), abs.clone());
                    }
                    None => {}
                }
            }
        }
        Crate {
            files,
            by_module,
            reexports,
            globs,
            defines,
        }
    }

    /// A path that starts with a child module of `scope` (`use raw::RawScenario;` in a `mod.rs`),
    /// made absolute; `None` for anything else (std, dependencies, names in scope).
    fn relative(&self, path: &[String], scope: &[String]) -> Option<Vec<String>> {
        let mut abs = scope.to_vec();
        abs.push(path.first()?.clone());
        if !self.by_module.contains_key(&abs) {
            return None;
        }
        abs.extend(path[1..].iter().cloned());
        Some(abs)
    }

    /// The file that defines what `abs` names (following re-exports), or `None` outside the crate.
    fn resolve(&self, abs: &[String], hops: usize) -> Option<usize> {
        let mut n = abs.len();
        let file = loop {
            if let Some(&k) = self.by_module.get(&abs[..n]) {
                break k;
            }
            n = n.checked_sub(1)?;
        };
        let Some(name) = abs.get(n) else {
            return Some(file);
        };
        if hops > 8 || self.defines[file].contains(name) {
            return Some(file);
        }
        if let Some(target) = self.reexports.get(&(file, name.clone())) {
            let mut t = target.clone();
            t.extend(abs[n + 1..].iter().cloned());
            return self.resolve(&t, hops + 1).or(Some(file));
        }
        for g in self.globs.get(&file).into_iter().flatten() {
            let mut t = g.clone();
            t.extend(abs[n..].iter().cloned());
            if let Some(k) = self.resolve(&t, hops + 1) {
                if self.defines[k].contains(name) {
                    return Some(k);
                }
            }
        }
        Some(file)
    }
}

/// (layer index, layer name, unit) of a module path.
fn layer_of(module: &[String], rel: &str) -> Option<(usize, &'static str, String)> {
    let module: Vec<String> = if module.is_empty() {
        vec![rel.trim_end_matches(".rs").to_owned()]
    } else {
        module.to_vec()
    };
    let mut best: Option<(usize, usize, &'static str, String)> = None;
    for (k, (name, units)) in LAYERS.iter().enumerate() {
        for u in *units {
            let segs: Vec<&str> = u.split("::").collect();
            if module.len() >= segs.len()
                && module.iter().zip(&segs).all(|(a, b)| a == b)
                && best.as_ref().is_none_or(|b| segs.len() > b.0)
            {
                best = Some((segs.len(), k, name, (*u).to_owned()));
            }
        }
    }
    best.map(|(_, k, name, u)| (k, name, u))
}

/// One import of one file: where it is written and the file it reaches.
struct Edge {
    from: usize,
    line: usize,
    to: usize,
}

fn edges(c: &Crate) -> Vec<Edge> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (k, f) in c.files.iter().enumerate() {
        for w in written_paths(f) {
            let Some(abs) = absolute(&w.path, &w.scope).or_else(|| c.relative(&w.path, &w.scope))
            else {
                continue;
            };
            let Some(to) = c.resolve(&abs, 0) else {
                continue;
            };
            if to != k && seen.insert((k, w.line, to)) {
                out.push(Edge {
                    from: k,
                    line: w.line,
                    to,
                });
            }
        }
    }
    out
}

#[test]
fn every_import_points_down_the_layer_order() {
    let c = Crate::load();
    assert!(c.files.len() > 50, "src/ read: {} files", c.files.len());
    let mut problems = Vec::new();
    for f in &c.files {
        if layer_of(&f.module, &f.rel).is_none() {
            problems.push(format!(
                "src/{}: module `{}` has no place in LAYERS (tests/layers.rs); add it to the layer it belongs to",
                f.rel,
                f.module.first().map_or("", String::as_str)
            ));
        }
    }
    for e in edges(&c) {
        let (from, to) = (&c.files[e.from], &c.files[e.to]);
        let (Some((lf, nf, uf)), Some((lt, nt, ut))) = (
            layer_of(&from.module, &from.rel),
            layer_of(&to.module, &to.rel),
        ) else {
            continue;
        };
        if lt > lf {
            problems.push(format!(
                "src/{}:{}: imports src/{} (`{ut}`, layer {lt} \"{nt}\") from `{uf}` (layer {lf} \"{nf}\"): a module may import only its own layer or lower ones",
                from.rel, e.line, to.rel
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} layer violation(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other() {
    let c = Crate::load();
    let mut first_line: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for e in edges(&c) {
        first_line.entry((e.from, e.to)).or_insert(e.line);
    }
    let mut problems = Vec::new();
    for (&(a, b), &line) in &first_line {
        if a >= b {
            continue;
        }
        let Some(&back) = first_line.get(&(b, a)) else {
            continue;
        };
        let (ra, rb) = (&c.files[a].rel, &c.files[b].rel);
        if MUTUAL_EXCEPTIONS
            .iter()
            .any(|&(x, y)| (x == ra && y == rb) || (x == rb && y == ra))
        {
            continue;
        }
        problems.push(format!(
            "src/{ra}:{line} imports src/{rb}, and src/{rb}:{back} imports src/{ra}: two files may not import each other; move what both need into a lower file"
        ));
    }
    assert!(
        problems.is_empty(),
        "{} mutual import(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_exceptions_are_still_needed() {
    let c = Crate::load();
    let pairs: BTreeSet<(String, String)> = edges(&c)
        .iter()
        .map(|e| (c.files[e.from].rel.clone(), c.files[e.to].rel.clone()))
        .collect();
    for &(a, b) in MUTUAL_EXCEPTIONS {
        let mutual = pairs.contains(&(a.to_owned(), b.to_owned()))
            && pairs.contains(&(b.to_owned(), a.to_owned()));
        assert!(
            mutual,
            "src/{a} and src/{b} no longer import each other: remove their line from MUTUAL_EXCEPTIONS"
        );
    }
}

/// The checker itself: a use tree expands to every path, comments and strings are not read,
/// `super` resolves from inline modules, and re-exports lead to the defining file.
#[test]
fn the_checker_reads_use_trees_and_follows_re_exports() {
    let mut paths = Vec::new();
    expand("crate::a::{self, b::{C, D as E}, f::*}", &[], &mut paths);
    let text: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        text,
        [
            "crate::a",
            "crate::a::b::C",
            "crate::a::b::D",
            "crate::a::f::*"
        ]
    );

    let code = blank("let s = \"use crate::x;\"; // use crate::y;\nlet c = '\"'; use crate::z::W;");
    let file = File {
        rel: "q/r.rs".into(),
        module: vec!["q".into(), "r".into()],
        code: code + "\nmod tests { use super::T; }",
    };
    let w = written_paths(&file);
    let seen: Vec<(String, usize)> = w.iter().map(|w| (w.path.join("::"), w.line)).collect();
    assert_eq!(
        seen,
        [("crate::z::W".to_owned(), 2), ("super::T".to_owned(), 3)]
    );
    assert_eq!(
        absolute(&w[1].path, &w[1].scope).unwrap(),
        ["q", "r", "T"],
        "super inside `mod tests` is the file's own module"
    );

    let c = Crate::load();
    let report = c.by_module[&vec!["scenario".to_owned()]];
    let to = c
        .resolve(&["scenario".into(), "ScenarioError".into()], 0)
        .unwrap();
    assert_ne!(
        to, report,
        "re-exported names resolve to their defining file"
    );
    assert_eq!(c.files[to].rel, "scenario/error.rs");
}

/// README's Architecture section shows the same layer order as [`LAYERS`], row by row.
#[test]
fn readme_shows_this_layer_order() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Architecture")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has an Architecture section");
    let rows: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_digit))
        .collect();
    assert_eq!(
        rows.len(),
        LAYERS.len(),
        "README's layer table has {} rows, LAYERS has {} layers",
        rows.len(),
        LAYERS.len()
    );
    for (k, ((name, units), row)) in LAYERS.iter().zip(&rows).enumerate() {
        assert!(
            row.starts_with(&format!("| {k} {name} |")),
            "README layer row {k} should start `| {k} {name} |`: {row}"
        );
        for u in *units {
            assert!(
                row.contains(&format!("`{u}`")) || row.contains(&format!("`{u}.rs`")),
                "README layer row {k} does not name `{u}`: {row}"
            );
        }
    }
}
