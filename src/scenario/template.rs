//! Name templates such as `plant/{group}/{client_id}/telemetry`.
//!
//! Parsed once at validation; rendered once per device at start-up (never on the hot path).

use std::fmt::Write as _;

use serde::Serialize;

/// A placeholder a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The group name.
    Group,
    /// The device index inside its group, from 0.
    Index,
    /// The device index over the whole fleet, from 0.
    GlobalIndex,
    /// The rendered client id (not allowed inside the client-id template itself).
    ClientId,
}

impl Var {
    pub const ALL: [(&'static str, Var); 4] = [
        ("group", Var::Group),
        ("index", Var::Index),
        ("global_index", Var::GlobalIndex),
        ("client_id", Var::ClientId),
    ];

    fn from_name(name: &str) -> Option<Var> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// Values available while rendering.
#[derive(Debug, Clone, Copy)]
pub struct TemplateVars<'a> {
    pub group: &'a str,
    pub index: u64,
    pub global_index: u64,
    pub client_id: &'a str,
}

/// Why a template string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder `{{{0}}}`; known placeholders are {{group}}, {{index}}, {{global_index}}, {{client_id}}")]
    UnknownVar(String),
    #[error("unclosed `{{` in template")]
    Unclosed,
    #[error("placeholder `{{{0}}}` is not allowed here")]
    NotAllowed(&'static str),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl Template {
    /// Parse `{name}` placeholders; `{{` and `}}` are literal braces.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(TemplateError::Unclosed);
                    }
                    let var = Var::from_name(name.trim())
                        .ok_or_else(|| TemplateError::UnknownVar(name.clone()))?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Var(var));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template uses `var`.
    pub fn uses(&self, var: Var) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// Bytes of the longest rendering, when each placeholder renders to at most the given number of
    /// bytes: `(group, index, global_index, client_id)`.
    pub fn max_rendered_len(
        &self,
        (group, index, global, client_id): (usize, usize, usize, usize),
    ) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                Part::Var(Var::Group) => group,
                Part::Var(Var::Index) => index,
                Part::Var(Var::GlobalIndex) => global,
                Part::Var(Var::ClientId) => client_id,
            })
            .fold(0usize, usize::saturating_add)
    }

    /// Render with the given values.
    pub fn render(&self, vars: &TemplateVars<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        self.render_into(&mut out, vars);
        out
    }

    /// Render into a reused buffer (cleared first): no allocation once the buffer is large enough.
    pub fn render_into(&self, out: &mut String, vars: &TemplateVars<'_>) {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(Var::Group) => out.push_str(vars.group),
                Part::Var(Var::Index) => {
                    let _ = write!(out, "{}", vars.index);
                }
                Part::Var(Var::GlobalIndex) => {
                    let _ = write!(out, "{}", vars.global_index);
                }
                Part::Var(Var::ClientId) => out.push_str(vars.client_id),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars<'static> {
        TemplateVars {
            group: "cnc",
            index: 7,
            global_index: 1007,
            client_id: "dev-7",
        }
    }

    #[test]
    fn renders_every_placeholder_and_literal_braces() {
        let t = Template::parse("{{x}}/{group}/{index}/{global_index}/{client_id}").unwrap();
        assert_eq!(t.render(&vars()), "{x}/cnc/7/1007/dev-7");
        assert!(t.uses(Var::Index));
    }

    #[test]
    fn refuses_unknown_and_unclosed() {
        assert_eq!(
            Template::parse("a/{grp}"),
            Err(TemplateError::UnknownVar("grp".into()))
        );
        assert_eq!(Template::parse("a/{group"), Err(TemplateError::Unclosed));
    }
}
