//! Key schemes: user-defined templates that map document ids to object keys.

use std::fmt;

use storage_core::{Key, Result, StorageError};

/// A validated key template such as `assistants/{id}.json` or `messages/{thread}/{id}.json`.
///
/// A document id is the values of the placeholders in template order, joined by `/`:
/// with `messages/{thread}/{id}.json` the id `t1/m7` is the key `messages/t1/m7.json`.
///
/// Template rules (each violation is an [`StorageError::InvalidConfig`] naming the template
/// and the rule): at least one placeholder; placeholder names are `[A-Za-z_][A-Za-z0-9_]*`
/// and unique; at most one placeholder per `/`-separated segment (so a key parses back to
/// one id); no empty, `.` or `..` segment, no leading or trailing `/`; the rendered key must
/// be a valid [`Key`].
///
/// Id part rules (each violation is an [`StorageError::InvalidInput`]): not empty, no `/`,
/// not `.` or `..`, no control characters; so an id can never reach a key outside the
/// collection.
///
/// ```
/// use storage_cas::KeyScheme;
/// let scheme = KeyScheme::new("messages/{thread}/{id}.json")?;
/// assert_eq!(scheme.key_for("t1/m7")?.as_str(), "messages/t1/m7.json");
/// assert_eq!(scheme.id_of("messages/t1/m7.json").as_deref(), Some("t1/m7"));
/// assert!(scheme.key_for("../secrets/x").is_err());
/// assert!(KeyScheme::new("assistants/{id}{name}.json").is_err());
/// # Ok::<(), storage_core::StorageError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyScheme {
    template: String,
    segments: Vec<Segment>,
    fields: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Field {
        prefix: String,
        name: String,
        suffix: String,
    },
}

fn bad_template(template: &str, reason: impl Into<String>) -> StorageError {
    StorageError::invalid_config(format!("key scheme `{template}`"), reason)
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl KeyScheme {
    /// Parse and validate `template`.
    pub fn new(template: &str) -> Result<Self> {
        if template.is_empty() {
            return Err(bad_template(
                template,
                "the template is empty; write one such as `assistants/{id}.json`",
            ));
        }
        if template.starts_with('/') || template.ends_with('/') {
            return Err(bad_template(
                template,
                "a template may not start or end with `/`",
            ));
        }
        let mut segments = Vec::new();
        let mut fields: Vec<String> = Vec::new();
        for raw in template.split('/') {
            if raw.is_empty() || raw == "." || raw == ".." {
                return Err(bad_template(
                    template,
                    format!(
                        "segment `{raw}` is not allowed (empty, `.` and `..` segments could escape the collection)"
                    ),
                ));
            }
            let opens = raw.matches('{').count();
            let closes = raw.matches('}').count();
            if opens == 0 && closes == 0 {
                segments.push(Segment::Literal(raw.to_string()));
                continue;
            }
            if opens != 1 || closes != 1 {
                return Err(bad_template(
                    template,
                    format!(
                        "segment `{raw}` must hold at most one `{{name}}` placeholder (with unbalanced or several braces a key could not be parsed back into one id); put placeholders in separate segments"
                    ),
                ));
            }
            let open = raw.find('{').expect("counted");
            let close = raw.find('}').expect("counted");
            if close < open {
                return Err(bad_template(
                    template,
                    format!("segment `{raw}` has `}}` before `{{`"),
                ));
            }
            let name = &raw[open + 1..close];
            if !is_name(name) {
                return Err(bad_template(
                    template,
                    format!(
                        "placeholder `{{{name}}}` is not a valid name; use letters, digits and `_`, starting with a letter"
                    ),
                ));
            }
            if fields.iter().any(|f| f == name) {
                return Err(bad_template(
                    template,
                    format!(
                        "placeholder `{{{name}}}` appears twice; each placeholder names one id part"
                    ),
                ));
            }
            fields.push(name.to_string());
            segments.push(Segment::Field {
                prefix: raw[..open].to_string(),
                name: name.to_string(),
                suffix: raw[close + 1..].to_string(),
            });
        }
        if fields.is_empty() {
            return Err(bad_template(
                template,
                "the template has no placeholder, so every document would share one key; add one such as `{id}`",
            ));
        }
        let scheme = KeyScheme {
            template: template.to_string(),
            segments,
            fields,
        };
        // The literal text must make valid keys (control characters, the reserved folder...).
        let sample: Vec<&str> = scheme.fields.iter().map(|_| "x").collect();
        scheme
            .render(&sample)
            .map_err(|e| bad_template(template, format!("it does not make valid keys: {e}")))?;
        Ok(scheme)
    }

    /// The template text.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Placeholder names, in order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The id form this scheme expects, e.g. `{thread}/{id}`.
    pub fn id_form(&self) -> String {
        self.fields
            .iter()
            .map(|f| format!("{{{f}}}"))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The object key of document `id`.
    pub fn key_for(&self, id: &str) -> Result<Key> {
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() != self.fields.len() {
            return Err(StorageError::invalid_input(
                "id",
                format!(
                    "the key scheme `{}` needs an id of the form `{}` ({} part{} separated by `/`), got `{}`",
                    self.template,
                    self.id_form(),
                    self.fields.len(),
                    if self.fields.len() == 1 { "" } else { "s" },
                    id.escape_debug()
                ),
            ));
        }
        for (part, field) in parts.iter().zip(&self.fields) {
            validate_part(part, field, &self.template)?;
        }
        self.render(&parts)
    }

    fn render(&self, parts: &[&str]) -> Result<Key> {
        let mut out = String::new();
        let mut next = parts.iter();
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::Field { prefix, suffix, .. } => {
                    out.push_str(prefix);
                    out.push_str(next.next().expect("part count checked"));
                    out.push_str(suffix);
                }
            }
        }
        Key::new(out)
    }

    /// The id of the document stored at `key`, or `None` when `key` does not fit the
    /// template (another collection's object, an attachment, a stray file).
    pub fn id_of(&self, key: &str) -> Option<String> {
        let parts: Vec<&str> = key.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut id = Vec::with_capacity(self.fields.len());
        for (part, seg) in parts.iter().zip(&self.segments) {
            match seg {
                Segment::Literal(l) => {
                    if part != l {
                        return None;
                    }
                }
                Segment::Field {
                    prefix,
                    name,
                    suffix,
                } => {
                    if part.len() <= prefix.len() + suffix.len() {
                        return None;
                    }
                    let value = part.strip_prefix(prefix.as_str())?;
                    let value = value.strip_suffix(suffix.as_str())?;
                    validate_part(value, name, &self.template).ok()?;
                    id.push(value);
                }
            }
        }
        Some(id.join("/"))
    }

    /// The listing prefix holding every document whose id starts with the parts of `parent`
    /// (`""` for the whole collection). It ends at the last whole segment that is fixed, so
    /// listing under it may also return other objects: filter with [`KeyScheme::id_of`].
    pub fn list_prefix(&self, parent: &str) -> Result<String> {
        let parts: Vec<&str> = if parent.is_empty() {
            Vec::new()
        } else {
            parent.split('/').collect()
        };
        if parts.len() > self.fields.len() {
            return Err(StorageError::invalid_input(
                "parent",
                format!(
                    "`{}` has more parts than the ids of `{}` (`{}`)",
                    parent.escape_debug(),
                    self.template,
                    self.id_form()
                ),
            ));
        }
        for (part, field) in parts.iter().zip(&self.fields) {
            validate_part(part, field, &self.template)?;
        }
        let mut prefix: Vec<String> = Vec::new();
        let mut next = parts.iter();
        // A segment is fixed when it is literal or a placeholder whose value we have. Stop at
        // the last segment: listing needs a folder, not the document itself.
        for seg in &self.segments[..self.segments.len() - 1] {
            match seg {
                Segment::Literal(l) => prefix.push(l.clone()),
                Segment::Field {
                    prefix: p, suffix, ..
                } => match next.next() {
                    Some(v) => prefix.push(format!("{p}{v}{suffix}")),
                    None => break,
                },
            }
        }
        Ok(prefix.join("/"))
    }
}

fn validate_part(part: &str, field: &str, template: &str) -> Result<()> {
    let problem = if part.is_empty() {
        Some("is empty")
    } else if part == "." || part == ".." {
        Some("may not be `.` or `..`")
    } else if part.contains('/') {
        Some("may not contain `/`")
    } else if part.chars().any(char::is_control) {
        Some("may not contain control characters")
    } else {
        None
    };
    match problem {
        Some(p) => Err(StorageError::invalid_input(
            format!("id part `{{{field}}}`"),
            format!(
                "`{}` {p} (key scheme `{template}`); ids may not reach keys outside the collection",
                part.escape_debug()
            ),
        )),
        None => Ok(()),
    }
}

impl fmt::Debug for KeyScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyScheme({:?})", self.template)
    }
}

impl fmt::Display for KeyScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

impl std::str::FromStr for KeyScheme {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self> {
        KeyScheme::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_back() {
        let s = KeyScheme::new("messages/{thread}/{id}.json").unwrap();
        assert_eq!(s.fields(), ["thread", "id"]);
        assert_eq!(s.id_form(), "{thread}/{id}");
        let k = s.key_for("t 1/m-7").unwrap();
        assert_eq!(k.as_str(), "messages/t 1/m-7.json");
        assert_eq!(s.id_of(k.as_str()).unwrap(), "t 1/m-7");
        // Not this scheme's keys.
        for other in [
            "messages/t1/m7.txt",
            "messages/t1/m7.json.attachments/a.png",
            "threads/t1/m7.json",
            "messages/t1/.json",
            "messages/t1",
        ] {
            assert_eq!(s.id_of(other), None, "{other}");
        }
    }

    #[test]
    fn template_errors_name_template_and_rule() {
        let cases = [
            ("", "empty"),
            ("/a/{id}", "start or end"),
            ("a/{id}/", "start or end"),
            ("a//{id}", "segment"),
            ("a/../{id}", "segment `..`"),
            ("a/{id}{x}", "at most one"),
            ("a/{id", "at most one"),
            ("a/}id{", "before"),
            ("a/{1x}", "not a valid name"),
            ("a/{id}/{id}.json", "twice"),
            ("assistants/all.json", "no placeholder"),
            (".strata-sys/{id}", "reserved"),
        ];
        for (t, needle) in cases {
            let err = KeyScheme::new(t).unwrap_err();
            assert!(matches!(err, StorageError::InvalidConfig { .. }), "{t}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("`{t}`")), "{t}: {msg}");
            assert!(msg.contains(needle), "{t}: {msg}");
        }
    }

    #[test]
    fn ids_cannot_escape() {
        let s = KeyScheme::new("assistants/{id}.json").unwrap();
        for bad in ["", "..", ".", "a/b", "../x", "a\nb"] {
            let err = s.key_for(bad).unwrap_err();
            assert!(matches!(err, StorageError::InvalidInput { .. }), "{bad:?}");
        }
        let s2 = KeyScheme::new("messages/{thread}/{id}.json").unwrap();
        let err = s2.key_for("only-one").unwrap_err().to_string();
        assert!(err.contains("{thread}/{id}"), "{err}");
    }

    #[test]
    fn list_prefixes() {
        let s = KeyScheme::new("messages/{thread}/{id}.json").unwrap();
        assert_eq!(s.list_prefix("").unwrap(), "messages");
        assert_eq!(s.list_prefix("t1").unwrap(), "messages/t1");
        assert_eq!(s.list_prefix("t1/m1").unwrap(), "messages/t1");
        assert!(s.list_prefix("a/b/c").is_err());
        let s = KeyScheme::new("{tenant}/docs/{id}").unwrap();
        assert_eq!(s.list_prefix("").unwrap(), "");
        assert_eq!(s.list_prefix("acme").unwrap(), "acme/docs");
    }
}
