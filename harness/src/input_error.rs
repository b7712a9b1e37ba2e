//! Errors in the user's input files, located to file, line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A problem in a manifest or scenario file. Rendered as
/// `file:line:column: field: message`, the form editors and CI annotate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field ("services.app.ready"), or empty.
    pub field: String,
    pub message: String,
}

impl InputError {
    pub fn at(file: &Path, source: &str, span: Option<Range<usize>>, field: &str, message: impl Into<String>) -> Self {
        let (line, column) = span.map(|s| line_col(source, s.start)).unwrap_or((1, 1));
        Self {
            file: file.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// An error about the file as a whole (it cannot be read, say).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: message.into(),
        }
    }

    /// From a TOML/serde error: toml reports the span and a message that names
    /// the field and what was expected.
    pub fn from_toml(file: &Path, source: &str, err: &toml::de::Error) -> Self {
        let message = err.message().trim().to_string();
        let mut field = field_from_message(&message);
        if field.is_empty()
            && let Some(span) = err.span()
        {
            field = key_path_at(source, span.start).unwrap_or_default();
        }
        Self::at(file, source, err.span(), &field, message)
    }
}

/// serde's messages name unknown and missing fields in backquotes.
fn field_from_message(message: &str) -> String {
    for prefix in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(end) = rest.find('`')
        {
            return rest[..end].to_string();
        }
    }
    String::new()
}

/// The dotted path of the key whose value is at `offset` ("load.users",
/// "fault[1].action", "services.app.ready.port"): the key on that line (inside
/// inline tables, the keys leading to the offset) under the nearest table
/// header above. `None` when the line holds no recognisable key.
fn key_path_at(source: &str, offset: usize) -> Option<String> {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let line_start = source[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = source[offset..].find('\n').map(|i| offset + i).unwrap_or(source.len());
    let line = &source[line_start..line_end];
    if let Some(header) = header_path(source, line_start, line) {
        return Some(header);
    }
    let keys = keys_in_line(line, offset - line_start);
    if keys.is_empty() {
        return None;
    }
    let table = source[..line_start]
        .rmatch_indices('\n')
        .map(|(i, _)| i + 1)
        .chain(std::iter::once(0))
        .filter(|&start| start < line_start)
        .find_map(|start| {
            let end = source[start..].find('\n').map(|i| start + i).unwrap_or(source.len());
            header_path(source, start, &source[start..end])
        });
    let mut path: Vec<String> = table.into_iter().collect();
    path.extend(keys);
    Some(path.join("."))
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The path of a `[table]` or `[[array.of.tables]]` header line, the latter
/// with its index (`fault[1]`) counted from the same headers above it.
fn header_path(source: &str, line_start: usize, line: &str) -> Option<String> {
    let text = line.trim();
    let (inner, array) = if let Some(rest) = text.strip_prefix("[[") {
        (rest[..rest.find("]]")?].trim(), true)
    } else if let Some(rest) = text.strip_prefix('[') {
        (rest[..rest.find(']')?].trim(), false)
    } else {
        return None;
    };
    let path = dotted_key(inner)?;
    if !array {
        return Some(path);
    }
    let index = source[..line_start]
        .lines()
        .filter(|l| {
            l.trim()
                .strip_prefix("[[")
                .and_then(|r| r.find("]]").map(|e| r[..e].trim()))
                .and_then(dotted_key)
                .as_deref()
                == Some(path.as_str())
        })
        .count();
    Some(format!("{path}[{index}]"))
}

/// A TOML key (bare, quoted or dotted) as a dotted path without quotes.
fn dotted_key(text: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    loop {
        let (part, after) = if let Some(quoted) = rest.strip_prefix('"').or_else(|| rest.strip_prefix('\'')) {
            let quote = rest.as_bytes()[0] as char;
            let end = quoted.find(quote)?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            (&rest[..end], &rest[end..])
        };
        parts.push(part.to_string());
        let after = after.trim_start();
        if after.is_empty() {
            return Some(parts.join("."));
        }
        rest = after.strip_prefix('.')?.trim_start();
    }
}

/// The keys leading to column `col` of a `key = value` line, through inline
/// tables: `ready = { http = 5 }` at the 5 gives ["ready", "http"]. A column
/// on the key itself gives the line's key.
fn keys_in_line(line: &str, col: usize) -> Vec<String> {
    // Each open inline table or array, with the key it is the value of.
    let mut frames: Vec<(char, Option<String>)> = Vec::new();
    let mut current: Option<String> = None;
    let mut in_key = true;
    let mut segment = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices().take_while(|(i, _)| *i < col) {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q == '"' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '#' => break,
            '=' if in_key => match dotted_key(&line[segment..i]) {
                Some(key) => {
                    current = Some(key);
                    in_key = false;
                }
                None => return Vec::new(),
            },
            '{' | '[' => {
                frames.push((c, current.take()));
                in_key = c == '{';
                segment = i + 1;
            }
            '}' | ']' => {
                frames.pop();
                current = None;
                in_key = false;
            }
            ',' => {
                current = None;
                in_key = frames.last().is_some_and(|(open, _)| *open == '{');
                segment = i + 1;
            }
            _ => {}
        }
    }
    let mut keys: Vec<String> = frames.into_iter().filter_map(|(_, key)| key).chain(current).collect();
    if keys.is_empty() {
        // The column is on the key itself: the key of the line.
        if let Some(eq) = line.find('=')
            && let Some(key) = dotted_key(&line[..eq])
        {
            keys.push(key);
        }
    }
    keys
}

pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else if self.field.is_empty() {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: field `{}`: {}",
                self.file.display(),
                self.line,
                self.column,
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for InputError {}

/// Several input errors found in one pass: users fix them all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputErrors {}

impl InputErrors {
    /// The errors of one file in the order the user reads it: by line, then column.
    pub fn in_file_order(mut errors: Vec<InputError>) -> Self {
        errors.sort_by_key(|e| (e.line, e.column));
        InputErrors(errors)
    }
}

impl From<InputError> for InputErrors {
    fn from(e: InputError) -> Self {
        InputErrors(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 9), (2, 4));
    }

    #[test]
    fn the_key_at_an_offset_is_named_with_its_table() {
        let src = concat!(
            "[load]\nusers = \"four\"\n\n",
            "[[fault]]\naction = \"signal\"\n\n",
            "[[fault]]\naction = \"explode\" # no\n\n",
            "[services.app]\nready = { http = 5, \"port\" = \"a,b\" }\ncovers = [\"A\", \"B=C\", 7]\n",
        );
        let at = |needle: &str| key_path_at(src, src.find(needle).expect(needle));
        assert_eq!(at("\"four\"").as_deref(), Some("load.users"));
        assert_eq!(at("users").as_deref(), Some("load.users"));
        assert_eq!(at("\"explode\"").as_deref(), Some("fault[1].action"));
        assert_eq!(at("\"signal\"").as_deref(), Some("fault[0].action"));
        assert_eq!(at("5,").as_deref(), Some("services.app.ready.http"));
        assert_eq!(at("\"a,b\"").as_deref(), Some("services.app.ready.port"));
        assert_eq!(at("{ http").as_deref(), Some("services.app.ready"));
        assert_eq!(at("7]").as_deref(), Some("services.app.covers"));
        assert_eq!(at("[services.app]").as_deref(), Some("services.app"));
        assert_eq!(key_path_at("name = \"x\"\n", 7).as_deref(), Some("name"));
        assert_eq!(key_path_at("[a\n", 1), None);
    }

    #[test]
    fn field_is_taken_from_serde_messages() {
        assert_eq!(field_from_message("unknown field `comand`, expected one of `a`"), "comand");
        assert_eq!(field_from_message("missing field `role`"), "role");
        assert_eq!(field_from_message("invalid type"), "");
    }
}
