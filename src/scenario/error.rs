//! Scenario errors: every problem a user can cause in a scenario file names the file, the line and
//! column, the YAML key path, what is wrong and how to fix it.

use std::fmt;

/// Which class of problem an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The file is not valid YAML (or not UTF-8 text).
    Syntax,
    /// A key that the format does not know.
    UnknownKey,
    /// The same key twice in one mapping.
    DuplicateKey,
    /// A value of the wrong kind (text where a number belongs, a list where a mapping belongs...).
    WrongType,
    /// A required key is absent.
    MissingKey,
    /// A value of the right kind that is not allowed (QoS 3, zero devices, bad duration...).
    InvalidValue,
    /// The input is too large or too deeply nested.
    TooLarge,
    /// A command-line override (`--broker`, `--duration`, `--devices`, `--seed`) was refused.
    Override,
}

/// One located problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    /// The file name as given to [`crate::scenario::parse`].
    pub file: String,
    /// 1-based line and column (in characters), when known.
    pub location: Option<(usize, usize)>,
    /// YAML key path such as `groups[1].qos`, when known.
    pub key_path: Option<String>,
    /// What is wrong.
    pub message: String,
    /// The source line the location points at, trimmed for display.
    pub source_line: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": ")?;
        if let Some(path) = &self.key_path {
            write!(f, "{path}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let (Some((line, _)), Some(src)) = (self.location, &self.source_line) {
            write!(f, "\n  {line} | {src}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong while loading a scenario or applying overrides.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario file could not be read.
    #[error("{file}: cannot read the scenario file: {source}\n  hint: check the path; shipped scenarios live in `scenarios/`")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A problem inside the scenario file.
    #[error("{0}")]
    File(Box<Diagnostic>),
    /// A command-line override was refused.
    #[error("{flag}: {message}\n  hint: {hint}")]
    Override {
        flag: &'static str,
        message: String,
        hint: String,
    },
}

impl ScenarioError {
    /// The class of problem.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ScenarioError::Io { .. } => ErrorKind::Io,
            ScenarioError::File(d) => d.kind,
            ScenarioError::Override { .. } => ErrorKind::Override,
        }
    }

    /// The file the error is about (`None` for override errors).
    pub fn file(&self) -> Option<&str> {
        match self {
            ScenarioError::Io { file, .. } => Some(file),
            ScenarioError::File(d) => Some(&d.file),
            ScenarioError::Override { .. } => None,
        }
    }

    /// 1-based `(line, column)` in the file, when known.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            ScenarioError::File(d) => d.location,
            _ => None,
        }
    }

    /// 1-based line in the file, when known.
    pub fn line(&self) -> Option<usize> {
        self.location().map(|(l, _)| l)
    }

    /// The YAML key path such as `groups[1].qos`, when known.
    pub fn key_path(&self) -> Option<&str> {
        match self {
            ScenarioError::File(d) => d.key_path.as_deref(),
            _ => None,
        }
    }

    /// What is wrong, without location or hint.
    pub fn message(&self) -> String {
        match self {
            ScenarioError::Io { source, .. } => format!("cannot read the scenario file: {source}"),
            ScenarioError::File(d) => d.message.clone(),
            ScenarioError::Override { message, .. } => message.clone(),
        }
    }

    /// The suggested fix, when there is one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ScenarioError::Io { .. } => None,
            ScenarioError::File(d) => d.hint.as_deref(),
            ScenarioError::Override { hint, .. } => Some(hint),
        }
    }

    /// The command-line flag an override error is about (`--broker`...).
    pub fn flag(&self) -> Option<&'static str> {
        match self {
            ScenarioError::Override { flag, .. } => Some(flag),
            _ => None,
        }
    }

    /// The located diagnostic, for file errors.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ScenarioError::File(d) => Some(d),
            _ => None,
        }
    }
}

/// Builds located errors for one source text.
pub(crate) struct Reporter<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Reporter<'_> {
    /// An error at `location` (1-based line and column; `None` or line 0 = unknown).
    pub fn error(
        &self,
        kind: ErrorKind,
        location: Option<(usize, usize)>,
        key_path: Option<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> ScenarioError {
        let location = location.filter(|(line, _)| *line > 0);
        let key_path = key_path.filter(|p| !p.is_empty());
        // Secrets never reach a message: the snippet shows a secret key's value as `****`, and
        // whatever the value was is scrubbed from the message and the hint too.
        let secret_path = key_path
            .as_deref()
            .and_then(|p| p.rsplit(['.', '[', ']']).find(|s| !s.is_empty()))
            .is_some_and(is_secret_key);
        let mut secrets = Vec::new();
        let source_line = location.and_then(|(line, _)| {
            let raw = self.source_line(line)?;
            let (masked, found) = mask_line(&raw);
            secrets.extend(found);
            Some(if secret_path && masked == raw {
                // The value is on this line without its key (a block scalar, a list item): hide it.
                let indent = raw.len() - raw.trim_start().len();
                format!("{}****", raw.get(..indent).unwrap_or(""))
            } else {
                masked
            })
        });
        let scrub = |text: String| {
            let mut text = mask_url_credentials(&text);
            for secret in &secrets {
                text = replace_word(&text, secret);
            }
            text
        };
        ScenarioError::File(Box::new(Diagnostic {
            kind,
            file: self.file.to_owned(),
            location,
            key_path,
            message: scrub(message.into()),
            source_line,
            hint: hint.map(scrub),
        }))
    }

    fn source_line(&self, line: usize) -> Option<String> {
        let src = self.text.lines().nth(line.checked_sub(1)?)?;
        let clean: String = src
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        let clean = shorten(clean.trim_end(), 120);
        if clean.trim().is_empty() {
            None
        } else {
            Some(clean)
        }
    }
}

/// Whether a key names a secret (`password`, `secret`, `token`, `key`, `api_key`, ... and near misses
/// such as `pasword`), whose value must never be shown.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
    if key.is_empty() || key.len() > 64 {
        return false;
    }
    const WORDS: [&str; 9] = [
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "apikey",
        "credentials",
    ];
    key.contains("password")
        || key.contains("secret")
        || key.contains("token")
        || key.split(['_', '-', '.']).any(|w| WORDS.contains(&w))
        || edit_distance(&key, "password") <= 2
}

/// `user:****@host` for every `scheme://user:password@host` in `text`; everything else unchanged.
/// Errs on the side of hiding: the password runs from the first `:` after `://` to the last `@` before
/// the URL visibly ends (a quote, a backtick, a comment, the line's end), so a password holding spaces,
/// `/` or `@` is hidden whole.
pub fn mask_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(['`', '"', '\'', '\n'])
            .into_iter()
            .chain(tail.find(" #"))
            .min()
            .unwrap_or(tail.len());
        let (segment, after) = tail.split_at(end);
        match segment.rsplit_once('@') {
            Some((userinfo, host)) if !userinfo.contains("://") => {
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push_str(":****");
                    }
                    None => out.push_str(userinfo),
                }
                out.push('@');
                out.push_str(host);
                rest = after;
            }
            _ => {
                // No credentials in this URL: copy up to the next one.
                let next = segment.find("://").unwrap_or(segment.len());
                let (plain, more) = tail.split_at(next.min(end));
                out.push_str(plain);
                rest = more;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Mask one source line for display: the value of every secret key (`password: "x"`, also inside
/// `{ ... }`) becomes `****`, and URL passwords too. Returns the line and the values it hid.
fn mask_line(line: &str) -> (String, Vec<String>) {
    let mut found = Vec::new();
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(colon) = rest.find(':') {
        let (before, after) = rest.split_at(colon);
        // The key is the word just before the colon.
        let key_start = before
            .rfind(|c: char| c.is_whitespace() || matches!(c, '{' | ',' | '-' | '['))
            .map_or(0, |i| i + 1);
        let key = before.get(key_start..).unwrap_or("");
        let value_part = after.get(1..).unwrap_or("");
        // `key: value` needs a space (or the end) after the colon; `mqtt://` is no key.
        let is_pair = value_part.is_empty() || value_part.starts_with([' ', '\t']);
        if !(is_pair && is_secret_key(key)) {
            out.push_str(before);
            out.push(':');
            rest = value_part;
            continue;
        }
        out.push_str(before);
        out.push(':');
        let trimmed = value_part.trim_start();
        out.push_str(
            value_part
                .get(..value_part.len() - trimmed.len())
                .unwrap_or(""),
        );
        let (value, remainder) = split_value(trimmed);
        let bare = value.trim().trim_matches(['"', '\'']);
        if !bare.is_empty() && !matches!(bare, "|" | ">" | "|-" | ">-") {
            found.push(bare.to_owned());
            out.push_str("****");
        } else {
            out.push_str(value);
        }
        rest = remainder;
    }
    out.push_str(rest);
    (mask_url_credentials(&out), found)
}

/// `text` with every occurrence of `secret` that is not part of a longer word replaced by `****`.
fn replace_word(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(secret) {
        let end = at + secret.len();
        if at < last {
            continue;
        }
        let before = text.get(..at).and_then(|b| b.chars().next_back());
        let after = text.get(end..).and_then(|a| a.chars().next());
        if word(before) || word(after) {
            continue;
        }
        out.push_str(text.get(last..at).unwrap_or(""));
        out.push_str("****");
        last = end;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    out
}

/// The YAML scalar at the start of `s` (quoted, or plain up to `,`, `}`, `]` or a comment) and what
/// follows it.
fn split_value(s: &str) -> (&str, &str) {
    let end = match s.chars().next() {
        Some(q @ ('"' | '\'')) => s
            .get(1..)
            .and_then(|r| r.find(q))
            .map_or(s.len(), |i| i + 2),
        Some(open @ ('[' | '{')) => {
            let close = if open == '[' { ']' } else { '}' };
            s.find(close).map_or(s.len(), |i| i + 1)
        }
        _ => s
            .find([',', '}', ']'])
            .or_else(|| s.find(" #"))
            .unwrap_or(s.len()),
    };
    let end = end.min(s.len());
    match (s.get(..end), s.get(end..)) {
        (Some(v), Some(r)) => (v.trim_end(), r),
        _ => (s, ""),
    }
}

/// At most `max` characters of `s`, with `...` when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push_str("...");
        out
    }
}

/// Levenshtein distance over characters (small inputs only: keys and names).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `word` if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.chars().count() > 64 {
        return None;
    }
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, c), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1) + usize::from(c.len() > 6))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `a, b or c` with backticks.
pub(crate) fn list_keys(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("qos", "qoss"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("intervall", "interval"), 1);
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = [
            "name", "count", "profile", "interval", "qos", "retain", "topic",
        ];
        assert_eq!(did_you_mean("intervall", keys), Some("interval"));
        assert_eq!(did_you_mean("cout", keys), Some("count"));
        assert_eq!(did_you_mean("Qos", keys), Some("qos"));
        assert_eq!(did_you_mean("banana", keys), None);
    }

    #[test]
    fn lists_keys() {
        assert_eq!(list_keys(&["a"]), "`a`");
        assert_eq!(list_keys(&["a", "b", "c"]), "`a`, `b` or `c`");
    }

    #[test]
    fn secret_keys() {
        for k in [
            "password",
            "Password",
            "pasword",
            "api_key",
            "token",
            "client_secret",
            "key",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["keep_alive", "name", "topic", "qos", "username", "url"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            mask_url_credentials("broker URL `mqtt://dev:hunter2@host:1883` contains credentials"),
            "broker URL `mqtt://dev:****@host:1883` contains credentials"
        );
        assert_eq!(mask_url_credentials("mqtt://host:1883"), "mqtt://host:1883");
        assert_eq!(
            mask_url_credentials("a://u@h b://x:y@z/p"),
            "a://u@h b://x:****@z/p"
        );
        assert_eq!(mask_url_credentials("no url: here"), "no url: here");
        assert_eq!(
            mask_url_credentials("`mqtt://u:se cr/e@t@h:1` x"),
            "`mqtt://u:****@h:1` x"
        );
    }

    #[test]
    fn source_lines_hide_secret_values() {
        let cases = [
            ("  password: \"hunter2\"", "  password: ****", "hunter2"),
            (
                "  password: hunter2 # comment",
                "  password: **** # comment",
                "hunter2",
            ),
            (
                "broker: { username: u, password: 'p w', url: x }",
                "broker: { username: u, password: ****, url: x }",
                "p w",
            ),
            ("  api_key: abc", "  api_key: ****", "abc"),
        ];
        for (line, shown, secret) in cases {
            let (masked, found) = mask_line(line);
            assert_eq!(masked, shown);
            assert_eq!(found, vec![secret.to_owned()]);
        }
        let (masked, found) = mask_line("  url: mqtt://u:pw@h:1883");
        assert_eq!(masked, "  url: mqtt://u:****@h:1883");
        assert!(found.is_empty());
        assert_eq!(mask_line("  qos: 1").0, "  qos: 1");
    }

    #[test]
    fn only_whole_words_are_scrubbed() {
        assert_eq!(
            replace_word("expected `e`, got e", "e"),
            "expected `****`, got ****"
        );
        assert_eq!(
            replace_word("the text `hunter2`", "hunter2"),
            "the text `****`"
        );
        assert_eq!(replace_word("hunter2x", "hunter2"), "hunter2x");
    }

    #[test]
    fn errors_about_a_password_never_show_it() {
        let r = Reporter {
            file: "x.yaml",
            text: "broker:\n  password: 1.5\n",
        };
        let e = r.error(
            ErrorKind::WrongType,
            Some((2, 13)),
            Some("broker.password".into()),
            "expected text, got the number `1.5`",
            Some("write `password: \"1.5\"`".into()),
        );
        let shown = e.to_string();
        assert!(!shown.contains("1.5"), "{shown}");
        assert!(shown.contains("password: ****"), "{shown}");
    }

    #[test]
    fn display_has_all_parts() {
        let r = Reporter {
            file: "x.yaml",
            text: "a: 1\n  qos: 3\n",
        };
        let e = r.error(
            ErrorKind::InvalidValue,
            Some((2, 8)),
            Some("groups[1].qos".into()),
            "QoS must be 0, 1 or 2, got 3",
            Some("use 0".into()),
        );
        assert_eq!(
            e.to_string(),
            "x.yaml:2:8: groups[1].qos: QoS must be 0, 1 or 2, got 3\n  2 |   qos: 3\n  hint: use 0"
        );
    }
}
