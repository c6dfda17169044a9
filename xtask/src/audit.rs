//! `cargo xtask audit`: the evidence a security reviewer asks for first,
//! in one report (SECURITY.md explains what each part means).
//!
//! 1. Every `unsafe` in the shipped code (core/ and bins/), by file, with
//!    the `// SAFETY:` comment that justifies it. Fails when a block,
//!    `unsafe impl` or call lacks one, or when `unsafe` code appears outside
//!    `core/src/sys/` (ARCHITECTURE.md invariant 2). `unsafe extern`
//!    declarations, `unsafe fn` signatures and `#[unsafe(no_mangle)]` are
//!    listed too; test and xtask code (never shipped) is counted apart.
//! 2. Dependencies with their licenses and sources, from `cargo metadata
//!    --locked --offline --filter-platform` (the lock file is the truth;
//!    other platforms' crates, never built, are left out): fails on a licence
//!    outside `ALLOWED_LICENSES` or a source other than crates.io. When
//!    `cargo deny` is installed, `cargo deny check bans licenses sources`
//!    (deny.toml) runs as well and must pass.
//! 3. Every program of the host target: static, PIE, RELRO, BIND_NOW, NX
//!    stack, W^X (xtask's ELF reader, the same check as `size --hardening`).

use crate::elf::Elf;
use crate::{HOST_TRIPLE, root, show, targets};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Licences a dependency may carry (one of them, for an `OR` expression).
const ALLOWED_LICENSES: &[&str] = &["MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "Zlib", "0BSD"];

/// Where shipped code lives, and where `unsafe` is allowed in it.
const SHIPPED: &[&str] = &["core/src", "bins"];
const UNSAFE_HOME: &str = "core/src/sys/";
/// Code that never ships (its `unsafe` is counted, not judged).
const NOT_SHIPPED: &[&str] = &["tests", "xtask/src"];

pub fn main(args: &[String]) -> ExitCode {
    if !args.is_empty() {
        return crate::usage("audit takes no arguments");
    }
    println!("$ cargo xtask audit");
    let root = root();
    let mut ok = true;
    ok &= unsafe_report(&root);
    ok &= dependency_report(&root);
    ok &= binary_report(&root);
    println!("\naudit: {}", if ok { "ok" } else { "FAIL (see above)" });
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// What an `unsafe` occurrence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `unsafe { ... }`: must carry a SAFETY comment.
    Block,
    /// `unsafe impl`: must carry a SAFETY comment.
    Impl,
    /// `unsafe fn`: a contract for callers (`# Safety` doc or SAFETY).
    Function,
    /// `unsafe extern "C" { ... }`: foreign declarations.
    Extern,
    /// `#[unsafe(no_mangle)]` and other unsafe attributes.
    Attribute,
}

impl Kind {
    fn needs_safety(self) -> bool {
        matches!(self, Kind::Block | Kind::Impl | Kind::Function)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Block => "block",
            Kind::Impl => "impl",
            Kind::Function => "fn",
            Kind::Extern => "extern",
            Kind::Attribute => "attribute",
        }
    }
}

/// One `unsafe` in a file.
#[derive(Debug)]
pub struct Site {
    pub line: usize,
    pub kind: Kind,
    /// The justification (comment lines above, joined), if any.
    pub safety: Option<String>,
}

/// Finds every `unsafe` keyword in Rust source (outside comments and
/// string literals) and the SAFETY comment above it: the contiguous `//`
/// comment lines directly above the line (attributes and lines that only
/// continue the same expression are stepped over), or a `// SAFETY:` on the
/// line itself; for `unsafe fn` also a `# Safety` doc section.
pub fn scan(src: &str) -> Vec<Site> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    let mut in_str = false;
    for (n, raw) in lines.iter().enumerate() {
        let code = code_part(raw, &mut in_str);
        let mut rest = code.as_str();
        while let Some(at) = find_word(rest, "unsafe") {
            let after = rest[at + 6..].trim_start();
            let kind = if after.starts_with('{') {
                Kind::Block
            } else if after.starts_with("impl") {
                Kind::Impl
            } else if after.starts_with("fn") {
                Kind::Function
            } else if after.starts_with("extern") {
                Kind::Extern
            } else if rest[..at].trim_end().ends_with("#[") || after.starts_with('(') {
                Kind::Attribute
            } else {
                // `unsafe_code` in a lint attribute is not the keyword
                // (find_word already skips it); anything else is unknown.
                Kind::Block
            };
            out.push(Site { line: n + 1, kind, safety: safety_above(&lines, n, kind) });
            rest = &rest[at + 6..];
        }
    }
    out
}

/// The line without its `//` comment and with string literals blanked
/// (`in_str`: inside a string that continues from the line before).
fn code_part(line: &str, in_str: &mut bool) -> String {
    let mut out = String::new();
    let mut prev = ' ';
    let b: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // A character literal holding a quote ('"', '\"') is not a string.
        let quote_char = !*in_str
            && c == '\''
            && (b.get(i + 1..i + 3) == Some(&['"', '\''][..]) || b.get(i + 1..i + 4) == Some(&['\\', '"', '\''][..]));
        if quote_char {
            let n = if b[i + 1] == '"' { 3 } else { 4 };
            out.push_str(&" ".repeat(n));
            i += n;
            prev = ' ';
            continue;
        }
        if *in_str {
            if c == '"' && prev != '\\' {
                *in_str = false;
            }
            out.push(' ');
        } else if c == '"' {
            *in_str = true;
            out.push(' ');
        } else if c == '/' && b.get(i + 1) == Some(&'/') {
            break;
        } else {
            out.push(c);
        }
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
        i += 1;
    }
    out
}

/// Byte offset of `word` as a whole identifier in `s`.
fn find_word(s: &str, word: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = s[from..].find(word) {
        let at = from + i;
        let end = at + word.len();
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let before_ok = at == 0 || !ident(bytes[at - 1]);
        let after_ok = end >= bytes.len() || !ident(bytes[end]);
        if before_ok && after_ok {
            return Some(at);
        }
        from = end;
    }
    None
}

/// How far up a statement may continue before its SAFETY comment.
const CONTINUATION_LINES: usize = 4;

fn safety_above(lines: &[&str], n: usize, kind: Kind) -> Option<String> {
    if let Some(i) = lines[n].find("// SAFETY:") {
        return Some(lines[n][i + 3..].trim().to_string());
    }
    let mut i = n;
    let mut stepped = 0;
    // Step over attributes and the earlier lines of a multi-line statement
    // (a line not ending a statement or block).
    loop {
        if i == 0 {
            return None;
        }
        let prev = lines[i - 1].trim();
        if prev.starts_with("#[") {
            i -= 1;
            continue;
        }
        if prev.starts_with("//") {
            break;
        }
        let continues = !prev.is_empty() && !prev.ends_with(';') && !prev.ends_with('}') && !prev.ends_with('{');
        if continues && stepped < CONTINUATION_LINES {
            stepped += 1;
            i -= 1;
            continue;
        }
        return None;
    }
    let mut comment = Vec::new();
    while i > 0 && lines[i - 1].trim().starts_with("//") {
        comment.push(lines[i - 1].trim());
        i -= 1;
    }
    comment.reverse();
    let text: Vec<&str> = comment.iter().map(|l| l.trim_start_matches('/').trim()).collect();
    let start =
        text.iter().position(|l| l.starts_with("SAFETY:") || (kind == Kind::Function && l.starts_with("# Safety")))?;
    Some(text[start..].join(" "))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Part 1; true when every rule holds.
fn unsafe_report(root: &Path) -> bool {
    println!("\n== 1. unsafe in shipped code ({}), each with its SAFETY comment", SHIPPED.join(", "));
    let mut ok = true;
    let mut total = 0;
    for dir in SHIPPED {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for f in files {
            let src = std::fs::read_to_string(&f).unwrap_or_default();
            let sites = scan(&src);
            if sites.is_empty() {
                continue;
            }
            let rel = show(root, &f);
            let blocks = sites.iter().filter(|s| s.kind.needs_safety()).count();
            println!("\n{rel}: {blocks} blocks/fns/impls, {} declarations/attributes", sites.len() - blocks);
            let home = rel.starts_with(UNSAFE_HOME);
            for s in &sites {
                total += 1;
                let text = s.safety.as_deref().unwrap_or("");
                let mut verdict = "";
                if !home && s.kind != Kind::Attribute {
                    verdict = "  FAIL: unsafe outside core/src/sys/";
                    ok = false;
                } else if s.kind.needs_safety() && s.safety.is_none() {
                    verdict = "  FAIL: no SAFETY comment";
                    ok = false;
                }
                let short: String = text.chars().take(150).collect();
                println!("  {rel}:{} {}{verdict}", s.line, s.kind.name());
                if !short.is_empty() {
                    println!("      {short}{}", if text.len() > short.len() { "…" } else { "" });
                }
            }
        }
    }
    let mut other = Vec::new();
    for dir in NOT_SHIPPED {
        let mut files = Vec::new();
        rust_files(&root.join(dir), &mut files);
        for f in files {
            let n = scan(&std::fs::read_to_string(&f).unwrap_or_default()).len();
            if n > 0 {
                other.push(format!("{} ({n})", show(root, &f)));
            }
        }
    }
    println!("\nshipped: {total} unsafe sites, all in {UNSAFE_HOME}: {}", if ok { "yes" } else { "NO" });
    println!(
        "never shipped (test harness, xtask): {}",
        if other.is_empty() { "none".into() } else { other.join(", ") }
    );
    ok
}

// ---------------------------------------------------------------------------
// A small JSON reader for `cargo metadata` (xtask has no dependencies).

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(v) => v.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Result<Json, String> {
        let b = s.as_bytes();
        let mut i = 0;
        let v = value(b, &mut i)?;
        skip_ws(b, &mut i);
        if i != b.len() {
            return Err(format!("trailing data at {i}"));
        }
        Ok(v)
    }
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i].is_ascii_whitespace() {
        *i += 1;
    }
}

fn value(b: &[u8], i: &mut usize) -> Result<Json, String> {
    skip_ws(b, i);
    match b.get(*i) {
        Some(b'{') => {
            *i += 1;
            let mut v = Vec::new();
            skip_ws(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(Json::Obj(v));
            }
            loop {
                skip_ws(b, i);
                let Json::Str(k) = value(b, i)? else { return Err(format!("object key at {i}")) };
                skip_ws(b, i);
                if b.get(*i) != Some(&b':') {
                    return Err(format!("':' expected at {i}"));
                }
                *i += 1;
                v.push((k, value(b, i)?));
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(Json::Obj(v));
                    }
                    _ => return Err(format!("',' or '}}' expected at {i}")),
                }
            }
        }
        Some(b'[') => {
            *i += 1;
            let mut v = Vec::new();
            skip_ws(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(Json::Arr(v));
            }
            loop {
                v.push(value(b, i)?);
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(Json::Arr(v));
                    }
                    _ => return Err(format!("',' or ']' expected at {i}")),
                }
            }
        }
        Some(b'"') => {
            *i += 1;
            let mut s: Vec<u8> = Vec::new();
            loop {
                match b.get(*i) {
                    None => return Err("unterminated string".into()),
                    Some(b'"') => {
                        *i += 1;
                        return String::from_utf8(s).map(Json::Str).map_err(|e| e.to_string());
                    }
                    Some(b'\\') => {
                        let c = *b.get(*i + 1).ok_or("bad escape")?;
                        *i += 2;
                        match c {
                            b'n' => s.push(b'\n'),
                            b't' => s.push(b'\t'),
                            b'r' => s.push(b'\r'),
                            b'b' => s.push(8),
                            b'f' => s.push(12),
                            b'u' => {
                                let hex = std::str::from_utf8(b.get(*i..*i + 4).ok_or("bad \\u")?)
                                    .map_err(|e| e.to_string())?;
                                let cp = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                *i += 4;
                                let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                                s.extend_from_slice(ch.to_string().as_bytes());
                            }
                            c => s.push(c),
                        }
                    }
                    Some(&c) => {
                        s.push(c);
                        *i += 1;
                    }
                }
            }
        }
        Some(b't') if b[*i..].starts_with(b"true") => {
            *i += 4;
            Ok(Json::Bool(true))
        }
        Some(b'f') if b[*i..].starts_with(b"false") => {
            *i += 5;
            Ok(Json::Bool(false))
        }
        Some(b'n') if b[*i..].starts_with(b"null") => {
            *i += 4;
            Ok(Json::Null)
        }
        Some(_) => {
            let start = *i;
            while *i < b.len() && (b[*i].is_ascii_digit() || b"+-.eE".contains(&b[*i])) {
                *i += 1;
            }
            let t = std::str::from_utf8(&b[start..*i]).map_err(|e| e.to_string())?;
            t.parse().map(Json::Num).map_err(|_| format!("bad value at {start}"))
        }
        None => Err("unexpected end".into()),
    }
}

/// Whether an SPDX expression is satisfied by the allowed list: every
/// `AND` part needs one allowed `OR` alternative ("MIT/Apache-2.0" is the
/// old spelling of OR).
pub fn license_ok(expr: &str) -> bool {
    let e = expr.replace('/', " OR ").replace(['(', ')'], " ");
    e.split(" AND ").all(|part| part.split(" OR ").any(|l| ALLOWED_LICENSES.contains(&l.trim())))
}

/// Part 2; true when every dependency passes.
fn dependency_report(root: &Path) -> bool {
    println!(
        "\n== 2. dependencies (cargo metadata --locked --offline --filter-platform {HOST_TRIPLE}), licences and sources"
    );
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", HOST_TRIPLE])
        .output();
    let meta = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            println!("FAIL: cargo metadata: {}", String::from_utf8_lossy(&o.stderr));
            return false;
        }
        Err(e) => {
            println!("FAIL: cargo metadata: {e}");
            return false;
        }
    };
    let json = match Json::parse(&meta) {
        Ok(j) => j,
        Err(e) => {
            println!("FAIL: cargo metadata output: {e}");
            return false;
        }
    };
    let Some(Json::Arr(packages)) = json.get("packages") else {
        println!("FAIL: no packages in cargo metadata");
        return false;
    };
    // Which packages the shipped crates depend on (normal dependencies,
    // transitively): the resolve graph.
    let mut ok = true;
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for p in packages {
        let name = p.get("name").and_then(Json::str).unwrap_or("?");
        let version = p.get("version").and_then(Json::str).unwrap_or("?");
        let source = p.get("source").and_then(Json::str).unwrap_or("");
        if source.is_empty() {
            continue; // a workspace member
        }
        let license = p.get("license").and_then(Json::str).unwrap_or("");
        let src_ok = source == "registry+https://github.com/rust-lang/crates.io-index";
        let lic_ok = license_ok(license);
        let verdict = match (lic_ok, src_ok) {
            (true, true) => "ok".to_string(),
            (false, _) => format!("FAIL: licence {license:?} not in the allowed list"),
            (_, false) => format!("FAIL: source {source}"),
        };
        ok &= lic_ok && src_ok;
        rows.push((format!("{name} {version}"), license.to_string(), "crates.io".into(), verdict));
    }
    rows.sort();
    println!("{:<32} {:<28} {:<10} result", "crate", "licence", "source");
    for (n, l, s, v) in &rows {
        println!("{n:<32} {l:<28} {s:<10} {v}");
    }
    println!(
        "{} third-party crates for {HOST_TRIPLE} (normal, build and dev dependencies); allowed: {}",
        rows.len(),
        ALLOWED_LICENSES.join(", ")
    );
    // cargo-deny, when installed, checks the same with deny.toml.
    match Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["deny", "--offline", "check", "bans", "licenses", "sources"])
        .output()
    {
        Ok(o) if o.status.success() => println!("cargo deny check bans licenses sources: ok"),
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("no such command") => {
            println!("cargo deny: not installed (the table above is the check)")
        }
        Ok(o) => {
            println!("cargo deny check bans licenses sources: FAIL\n{}", String::from_utf8_lossy(&o.stderr));
            ok = false;
        }
        Err(e) => println!("cargo deny: {e} (the table above is the check)"),
    }
    ok
}

/// Part 3; true when every program is hardened.
fn binary_report(root: &Path) -> bool {
    println!("\n== 3. programs ({HOST_TRIPLE}, release): static, PIE, RELRO, BIND_NOW, NX stack, W^X");
    let target = match targets::load(root, HOST_TRIPLE) {
        Ok(t) => t,
        Err(e) => {
            println!("FAIL: {e}");
            return false;
        }
    };
    if let Err(e) = crate::size::build(root, &target, &["--release"]) {
        println!("FAIL: build: {e}");
        return false;
    }
    let dir = crate::size::bin_dir(root, HOST_TRIPLE, "release");
    let mut ok = true;
    println!("{:<13} {:<40} {:<7} {:<9} {:<9} {:<4} result", "program", "format", "static", "RELRO", "BIND_NOW", "NX");
    for (name, _) in &target.budgets {
        let Ok(bytes) = std::fs::read(dir.join(name)) else {
            println!("{name:<13} FAIL: not built");
            ok = false;
            continue;
        };
        let elf = match Elf::parse(&bytes) {
            Ok(e) => e,
            Err(e) => {
                println!("{name:<13} FAIL: {e}");
                ok = false;
                continue;
            }
        };
        let problems = elf.hardening_problems();
        let has = |p: &str| problems.iter().any(|x| x.contains(p));
        let yes = |b: bool| if b { "yes" } else { "NO" };
        let is_static = !has("PT_INTERP") && !has("DT_NEEDED");
        let verdict = if problems.is_empty() { "ok".to_string() } else { format!("FAIL: {}", problems.join("; ")) };
        ok &= problems.is_empty();
        println!(
            "{name:<13} {:<40} {:<7} {:<9} {:<9} {:<4} {verdict}",
            elf.describe(),
            yes(is_static),
            yes(!has("RELRO")),
            yes(elf.bind_now()),
            yes(!has("stack"))
        );
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_with_its_safety_comment_is_found() {
        let src = "fn f() {\n    // SAFETY: the pointer is valid.\n    let x = unsafe { *p };\n}\n";
        let s = scan(src);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].line, s[0].kind), (3, Kind::Block));
        assert_eq!(s[0].safety.as_deref(), Some("SAFETY: the pointer is valid."));
    }

    #[test]
    fn a_block_without_one_is_flagged() {
        let src = "fn f() {\n    let a = 1;\n    unsafe { g() };\n}\n";
        let s = scan(src);
        assert_eq!(s.len(), 1);
        assert!(s[0].safety.is_none());
        // A comment that is not a SAFETY comment does not count.
        let s = scan("// just a note\nunsafe { g() }\n");
        assert!(s[0].safety.is_none());
    }

    #[test]
    fn comments_strings_and_lint_names_are_not_unsafe() {
        let src = "#![deny(unsafe_code)]\n// unsafe { in a comment }\nlet s = \"unsafe { in a string }\";\n#[forbid(unsafe_code)]\nmod m;\nconst U: &str = \"a\n  unsafe { on a continued line }\n\";\n";
        assert!(scan(src).is_empty());
    }

    #[test]
    fn quote_characters_do_not_start_strings() {
        let src = "if c == '\"' { x }\nlet q = b'\\\"';\n// SAFETY: fine\nunsafe { f() };\n";
        let s = scan(src);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].line, 4);
    }

    #[test]
    fn kinds_attributes_and_continued_statements() {
        let src = "#[unsafe(no_mangle)]\nunsafe extern \"C\" {\n}\n/// # Safety\n/// argv valid\npub unsafe fn from_c() {}\n// SAFETY: ok\n#[cfg(x)]\nunsafe impl Send for T {}\n// SAFETY: fd is ours\nlet n = f(\n    a,\n    unsafe { b() },\n);\n";
        let s = scan(src);
        let kinds: Vec<Kind> = s.iter().map(|x| x.kind).collect();
        assert_eq!(kinds, vec![Kind::Attribute, Kind::Extern, Kind::Function, Kind::Impl, Kind::Block]);
        assert!(s[2].safety.as_deref().unwrap().starts_with("# Safety"));
        assert_eq!(s[3].safety.as_deref(), Some("SAFETY: ok"));
        assert_eq!(s[4].safety.as_deref(), Some("SAFETY: fd is ours"));
    }

    #[test]
    fn licences() {
        assert!(license_ok("MIT"));
        assert!(license_ok("MIT OR Apache-2.0"));
        assert!(license_ok("MIT/Apache-2.0"));
        assert!(license_ok("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT"));
        assert!(!license_ok("GPL-3.0"));
        assert!(!license_ok("MIT AND GPL-3.0"));
        assert!(!license_ok(""));
    }

    #[test]
    fn json() {
        let j = Json::parse(r#"{"a": [1, "x\"y\u0041", true, null], "b": {"c": -1.5e2}}"#).unwrap();
        assert_eq!(
            j.get("a"),
            Some(&Json::Arr(vec![Json::Num(1.0), Json::Str("x\"yA".into()), Json::Bool(true), Json::Null]))
        );
        assert_eq!(j.get("b").and_then(|b| b.get("c")), Some(&Json::Num(-150.0)));
        assert!(Json::parse("{").is_err());
    }

    /// The real tree passes: every unsafe in core/src/sys with a SAFETY
    /// comment, none elsewhere in shipped code.
    #[test]
    fn the_shipped_tree_passes_the_unsafe_rules() {
        let root = crate::root();
        for dir in SHIPPED {
            let mut files = Vec::new();
            rust_files(&root.join(dir), &mut files);
            for f in files {
                let rel = show(&root, &f);
                for s in scan(&std::fs::read_to_string(&f).unwrap()) {
                    if s.kind == Kind::Attribute {
                        continue;
                    }
                    assert!(rel.starts_with(UNSAFE_HOME), "{rel}:{} unsafe outside core/src/sys", s.line);
                    assert!(
                        !s.kind.needs_safety() || s.safety.is_some(),
                        "{rel}:{} {:?} without SAFETY",
                        s.line,
                        s.kind
                    );
                }
            }
        }
    }
}
