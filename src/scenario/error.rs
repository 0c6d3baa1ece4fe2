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
        let source_line = location.and_then(|(line, _)| self.source_line(line));
        ScenarioError::File(Box::new(Diagnostic {
            kind,
            file: self.file.to_owned(),
            location,
            key_path: key_path.filter(|p| !p.is_empty()),
            message: message.into(),
            source_line,
            hint,
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
