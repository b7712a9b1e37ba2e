//! Making recorded text safe to print and to embed in XML.
//!
//! Evidence and log tails come from the stack under test, so they may hold
//! terminal escape sequences or bytes XML 1.0 forbids even as character
//! references. We show those as `\u{..}` escapes instead of dropping them, so
//! nothing the stack printed silently disappears from a report.

use std::borrow::Cow;

/// Replaces control characters (except newline and tab) and the XML
/// non-characters U+FFFE / U+FFFF with visible `\u{..}` escapes.
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// Text for a CDATA section: printable, and with `]]>` split across two
/// sections, because junit-report writes CDATA verbatim and that sequence
/// would end it early. An XML parser reads the original text back.
pub(crate) fn cdata_safe(s: &str) -> String {
    printable(s).replace("]]>", "]]]]><![CDATA[>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(printable("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(printable("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(printable("a\rb\u{0}"), "a\\u{d}b\\u{0}");
    }

    #[test]
    fn cdata_end_is_split() {
        assert_eq!(cdata_safe("x]]>y"), "x]]]]><![CDATA[>y");
    }
}
