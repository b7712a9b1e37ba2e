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
        let field = field_from_message(&message);
        Self::at(file, source, err.span(), &field, message)
    }
}

/// serde's messages name unknown and missing fields in backquotes.
fn field_from_message(message: &str) -> String {
    for prefix in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some(end) = rest.find('`') {
                return rest[..end].to_string();
            }
        }
    }
    String::new()
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
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
    fn field_is_taken_from_serde_messages() {
        assert_eq!(field_from_message("unknown field `comand`, expected one of `a`"), "comand");
        assert_eq!(field_from_message("missing field `role`"), "role");
        assert_eq!(field_from_message("invalid type"), "");
    }
}
