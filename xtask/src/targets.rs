//! `targets/<triple>.toml`: a small TOML subset, parsed here so that xtask
//! needs no crates.
//!
//! Accepted: `# comments` (whole-line or after a value), `[section]`
//! headers, and `key = value` where value is a basic string (`"..."` with
//! `\"`, `\\`, `\n`, `\t` escapes), an integer (`123`, `-4`, `20_480`) or an
//! array of those (`["a", "b"]`, may span lines, trailing comma allowed).
//! Keys are bare (`A-Za-z0-9_-`) or quoted. Anything else is an error that
//! names the line.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    List(Vec<Value>),
}

/// One `[section]` (the unnamed one first), keys in file order.
#[derive(Debug, Default)]
pub struct Section {
    pub name: String,
    pub entries: Vec<(String, Value)>,
}

/// A parsed file: its sections in file order.
#[derive(Debug)]
pub struct Doc {
    pub sections: Vec<Section>,
}

impl Doc {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// `key` in `section` ("" for the top of the file).
    pub fn get(&self, section: &str, key: &str) -> Option<&Value> {
        self.section(section)?.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_str(&self, section: &str, key: &str) -> Result<Option<&str>, String> {
        match self.get(section, key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(format!("{} must be a string", dotted(section, key))),
        }
    }

    pub fn get_str_list(&self, section: &str, key: &str) -> Result<Vec<String>, String> {
        match self.get(section, key) {
            None => Ok(Vec::new()),
            Some(Value::List(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(format!("{} must be a list of strings", dotted(section, key))),
                })
                .collect(),
            Some(_) => Err(format!("{} must be a list of strings", dotted(section, key))),
        }
    }
}

fn dotted(section: &str, key: &str) -> String {
    if section.is_empty() { key.to_string() } else { format!("{section}.{key}") }
}

/// What xtask uses from a targets file.
#[derive(Debug, Default)]
pub struct Target {
    pub triple: String,
    /// rustup toolchain; "stable" (or absent) means cargo's default.
    pub toolchain: Option<String>,
    /// The cargo subcommand that builds: "build", or "zigbuild" (cargo-zigbuild,
    /// which links with zig cc).
    pub builder: String,
    /// Extra arguments for `cargo build` (e.g. `--config` files, `-Z` flags).
    pub cargo_args: Vec<String>,
    /// Extra rustc flags for this target's code, passed as
    /// `--config target.<triple>.rustflags=[...]` (cargo appends them to
    /// those of `.cargo/config.toml`). `{self_contained}` stands for the
    /// toolchain's `lib/rustlib/<triple>/lib/self-contained` directory.
    pub rustflags: Vec<String>,
    /// Command prefix that runs the target's programs on this machine
    /// (qemu-user); empty for the host.
    pub runner: String,
    /// `rust-objcopy` arguments applied to each program after the link
    /// (e.g. `--remove-section=.pdr`); empty: nothing to do.
    pub post_link: Vec<String>,
    /// Hardening problems this target is known to have (each a prefix of a
    /// phrase `cargo xtask size` prints, e.g. "no PT_GNU_RELRO"): reported as
    /// accepted deviations instead of failures. The file says why.
    pub hardening_exceptions: Vec<String>,
    /// Black-box tests `cross-test` skips for this target (`cargo test
    /// -- --skip NAME`), each for a documented emulator artefact.
    pub test_skip: Vec<String>,
    /// Size budgets in bytes, in file order.
    pub budgets: Vec<(String, u64)>,
}

impl Target {
    pub fn from_doc(doc: &Doc) -> Result<Target, String> {
        let triple = doc.get_str("", "triple")?.ok_or("missing key `triple`")?.to_string();
        let toolchain = doc.get_str("", "toolchain")?.filter(|t| !t.is_empty() && *t != "stable").map(str::to_string);
        let builder = doc.get_str("", "builder")?.unwrap_or("build").to_string();
        if builder != "build" && builder != "zigbuild" {
            return Err(format!("builder must be \"build\" or \"zigbuild\", not \"{builder}\""));
        }
        let cargo_args = doc.get_str_list("", "cargo_args")?;
        let rustflags = doc.get_str_list("", "rustflags")?;
        let runner = doc.get_str("", "runner")?.unwrap_or("").to_string();
        let post_link = doc.get_str_list("", "post_link")?;
        let hardening_exceptions = doc.get_str_list("", "hardening_exceptions")?;
        let test_skip = doc.get_str_list("", "test_skip")?;
        let mut budgets = Vec::new();
        if let Some(sec) = doc.section("budget") {
            for (k, v) in &sec.entries {
                match v {
                    Value::Int(n) if *n > 0 => budgets.push((k.clone(), *n as u64)),
                    _ => return Err(format!("budget.{k} must be a positive integer (bytes)")),
                }
            }
        }
        Ok(Target {
            triple,
            toolchain,
            builder,
            cargo_args,
            rustflags,
            runner,
            post_link,
            hardening_exceptions,
            test_skip,
            budgets,
        })
    }

    /// The runner as words (empty for the host).
    pub fn runner_words(&self) -> Vec<String> {
        self.runner.split_whitespace().map(str::to_string).collect()
    }
}

/// `targets/<triple>.toml` under the workspace root.
pub fn path(root: &Path, triple: &str) -> PathBuf {
    root.join("targets").join(format!("{triple}.toml"))
}

/// Reads and checks `targets/<triple>.toml`.
pub fn load(root: &Path, triple: &str) -> Result<Target, String> {
    let p = path(root, triple);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        let known = known_triples(root).join(", ");
        format!("{}: {e} (known targets: {known})", p.display())
    })?;
    let doc = parse(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    let t = Target::from_doc(&doc).map_err(|e| format!("{}: {e}", p.display()))?;
    if t.triple != triple {
        return Err(format!("{}: triple = \"{}\" does not match the file name", p.display(), t.triple));
    }
    Ok(t)
}

/// The triples that have a file in `targets/`.
pub fn known_triples(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("targets"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Parses the TOML subset described at the top of this file.
pub fn parse(text: &str) -> Result<Doc, String> {
    let mut p = Parser { s: text.as_bytes(), i: 0, line: 1 };
    let mut sections = vec![Section::default()];
    loop {
        p.skip_blank_lines();
        let Some(c) = p.peek() else { break };
        let line = p.line;
        let dup = |what: String| format!("line {line}: {what} appears twice");
        if c == b'[' {
            p.i += 1;
            p.skip_spaces();
            let name = p.key()?;
            p.skip_spaces();
            p.expect(b']')?;
            p.end_of_line()?;
            if sections.iter().any(|s| s.name == name) {
                return Err(dup(format!("section [{name}]")));
            }
            sections.push(Section { name, entries: Vec::new() });
            continue;
        }
        let key = p.key()?;
        p.skip_spaces();
        p.expect(b'=')?;
        p.skip_spaces();
        let value = p.value()?;
        p.end_of_line()?;
        let sec = sections.last_mut().unwrap();
        if sec.entries.iter().any(|(k, _)| *k == key) {
            return Err(dup(format!("key `{key}`")));
        }
        sec.entries.push((key, value));
    }
    Ok(Doc { sections })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn err(&self, what: &str) -> String {
        format!("line {}: {what}", self.line)
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", c as char)))
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_comment(&mut self) {
        if self.peek() == Some(b'#') {
            while !matches!(self.peek(), None | Some(b'\n')) {
                self.i += 1;
            }
        }
    }

    /// Newline (LF or CRLF); false at the end of the text.
    fn newline(&mut self) -> bool {
        if self.s[self.i..].starts_with(b"\r\n") {
            self.i += 2;
        } else if self.peek() == Some(b'\n') {
            self.i += 1;
        } else {
            return false;
        }
        self.line += 1;
        true
    }

    /// Spaces, comments and newlines.
    fn skip_blank_lines(&mut self) {
        loop {
            self.skip_spaces();
            self.skip_comment();
            if !self.newline() {
                return;
            }
        }
    }

    /// After a header or a value: spaces, an optional comment, then a
    /// newline or the end of the text.
    fn end_of_line(&mut self) -> Result<(), String> {
        self.skip_spaces();
        self.skip_comment();
        if self.newline() || self.peek().is_none() { Ok(()) } else { Err(self.err("unexpected text after the value")) }
    }

    fn key(&mut self) -> Result<String, String> {
        if self.peek() == Some(b'"') {
            let k = self.string()?;
            return if k.is_empty() { Err(self.err("empty key")) } else { Ok(k) };
        }
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a key"));
        }
        Ok(String::from_utf8(self.s[start..self.i].to_vec()).unwrap())
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'[') => self.list(),
            Some(c) if c.is_ascii_digit() || c == b'-' || c == b'+' => self.int(),
            _ => Err(self.err("expected a value: \"string\", integer or [list]")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') | Some(b'\r') => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|_| self.err("string is not UTF-8"));
                }
                Some(b'\\') => {
                    let c = match self.s.get(self.i + 1) {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        _ => return Err(self.err("unsupported escape in string")),
                    };
                    out.push(c);
                    self.i += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Result<Value, String> {
        let start = self.i;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.i += 1;
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
        let digits = text.trim_start_matches(['-', '+']);
        let ok = !digits.is_empty()
            && digits.bytes().all(|c| c.is_ascii_digit() || c == b'_')
            && !digits.starts_with('_')
            && !digits.ends_with('_')
            && !digits.contains("__");
        let n = if ok { text.replace('_', "").parse::<i64>().ok() } else { None };
        n.map(Value::Int).ok_or_else(|| self.err(&format!("bad integer `{text}`")))
    }

    fn list(&mut self) -> Result<Value, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        loop {
            self.skip_blank_lines();
            match self.peek() {
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::List(items));
                }
                None => return Err(self.err("unterminated list")),
                _ => {}
            }
            items.push(self.value()?);
            self.skip_blank_lines();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {}
                _ => return Err(self.err("expected `,` or `]` in list")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset() {
        let doc = parse(
            "# top comment\n\
             triple = \"x86_64-unknown-linux-musl\"  # trailing\n\
             runner = \"\"\n\
             post_link = []\n\
             args = [\"-a\", \"b \\\"q\\\" \\\\\",\n   # inside\n  \"c\",\n]\r\n\
             \n\
             [budget]\n\
             qmqpc = 20480        # qmail-qmqpc\n\
             smtpd-front = 32_768\n\
             neg = -3\n\
             \"quoted key\" = 1\n",
        )
        .unwrap();
        assert_eq!(doc.get_str("", "triple").unwrap(), Some("x86_64-unknown-linux-musl"));
        assert_eq!(doc.get("", "runner"), Some(&Value::Str(String::new())));
        assert_eq!(doc.get("", "post_link"), Some(&Value::List(vec![])));
        assert_eq!(doc.get_str_list("", "args").unwrap(), vec!["-a", "b \"q\" \\", "c"]);
        assert_eq!(doc.get("budget", "qmqpc"), Some(&Value::Int(20480)));
        assert_eq!(doc.get("budget", "smtpd-front"), Some(&Value::Int(32768)));
        assert_eq!(doc.get("budget", "neg"), Some(&Value::Int(-3)));
        assert_eq!(doc.get("budget", "quoted key"), Some(&Value::Int(1)));
        assert_eq!(doc.get("", "qmqpc"), None);
        let names: Vec<_> = doc.section("budget").unwrap().entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["qmqpc", "smtpd-front", "neg", "quoted key"]);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("a = 1\nb = \"open\n", 2),
            ("a = 1\n\nb = 1 2\n", 3),
            ("a = 1\na = 2\n", 2),
            ("[s]\n[s]\n", 2),
            ("a = 12x\n", 1),
            ("a = 1__2\n", 1),
            ("a = true\n", 1),
            ("a = [1,\n2\n", 3),
            ("= 1\n", 1),
            ("a = \"\\q\"\n", 1),
            ("[s\n", 1),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(&format!("line {line}:")), "{text:?}: {e}");
        }
    }

    #[test]
    fn target_fields() {
        let doc = parse(
            "triple = \"mips-unknown-linux-musl\"\ntoolchain = \"nightly\"\ncargo_args = [\"-Zbuild-std=core\"]\n[budget]\nqmqpc = 20480\nqmqpd = 100\n",
        )
        .unwrap();
        let t = Target::from_doc(&doc).unwrap();
        assert_eq!(t.triple, "mips-unknown-linux-musl");
        assert_eq!(t.toolchain.as_deref(), Some("nightly"));
        assert_eq!(t.cargo_args, ["-Zbuild-std=core"]);
        assert_eq!(t.budgets, [("qmqpc".to_string(), 20480), ("qmqpd".to_string(), 100)]);
        assert_eq!(t.builder, "build");
        assert!(t.rustflags.is_empty() && t.post_link.is_empty() && t.runner.is_empty());

        let cross = Target::from_doc(
            &parse(
                "triple = \"mips-unknown-linux-musl\"\nbuilder = \"zigbuild\"\nrunner = \"qemu-mips-static -L /x\"\n\
                 rustflags = [\"-C\", \"link-self-contained=no\"]\npost_link = [\"--remove-section=.pdr\"]\n\
                 hardening_exceptions = [\"no PT_GNU_RELRO\"]\n",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(cross.builder, "zigbuild");
        assert_eq!(cross.runner_words(), ["qemu-mips-static", "-L", "/x"]);
        assert_eq!(cross.rustflags, ["-C", "link-self-contained=no"]);
        assert_eq!(cross.post_link, ["--remove-section=.pdr"]);
        assert_eq!(cross.hardening_exceptions, ["no PT_GNU_RELRO"]);
        assert!(Target::from_doc(&parse("triple = \"x\"\nbuilder = \"make\"\n").unwrap()).is_err());

        let stable = Target::from_doc(&parse("triple = \"x\"\ntoolchain = \"stable\"\n").unwrap()).unwrap();
        assert_eq!(stable.toolchain, None);
        assert!(stable.budgets.is_empty());
        assert!(Target::from_doc(&parse("triple = \"x\"\n[budget]\na = \"big\"\n").unwrap()).is_err());
        assert!(Target::from_doc(&parse("[budget]\na = 1\n").unwrap()).is_err());
    }

    #[test]
    fn repository_targets_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let triples = known_triples(root);
        assert!(triples.iter().any(|t| t == "x86_64-unknown-linux-musl"));
        for t in triples {
            load(root, &t).unwrap();
        }
    }
}
