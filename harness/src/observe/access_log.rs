//! nginx's access log, read by the `log_format` the stack's own rendered
//! configuration declares for it (`combined`, nginx's default, when it names
//! none), never by a layout of ours.

use std::path::Path;

/// nginx's predefined format.
pub const COMBINED: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

/// A log format compiled to a line parser.
#[derive(Debug, Clone)]
pub struct LogFormat {
    pub name: String,
    pub format: String,
    line: regex::Regex,
    variables: Vec<String>,
}

impl LogFormat {
    /// Compile a format string: literal text matches itself, each `$variable`
    /// (or `${variable}`) the shortest text up to the next literal.
    pub fn compile(name: &str, format: &str) -> Result<LogFormat, String> {
        let mut pattern = String::from("^");
        let mut variables = Vec::new();
        let mut rest = format;
        while let Some(at) = rest.find('$') {
            pattern.push_str(&regex::escape(&rest[..at]));
            let after = &rest[at + 1..];
            let (var, tail) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced.find('}').ok_or_else(|| format!("unclosed ${{ in log_format {name}"))?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if var.is_empty() {
                pattern.push_str(&regex::escape("$"));
            } else {
                pattern.push_str("(.*?)");
                variables.push(var.to_string());
            }
            rest = tail;
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push('$');
        let line = regex::Regex::new(&pattern).map_err(|e| format!("log_format {name}: {e}"))?;
        Ok(LogFormat {
            name: name.to_string(),
            format: format.to_string(),
            line,
            variables,
        })
    }

    /// The value of `$variable` in one line, if the line has this format.
    pub fn field<'l>(&self, line: &'l str, variable: &str) -> Option<&'l str> {
        let i = self.variables.iter().position(|v| v == variable)?;
        self.line.captures(line)?.get(i + 1).map(|m| m.as_str())
    }

    pub fn has(&self, variable: &str) -> bool {
        self.variables.iter().any(|v| v == variable)
    }
}

/// The format an nginx configuration gives the access log written to a file
/// ending in `file`: the format named by its `access_log` directive, defined
/// by a `log_format` directive of the same configuration; `combined` when it
/// names none.
pub fn format_for(config: &str, file: &str) -> Result<LogFormat, String> {
    let directives = directives(config);
    let access = directives
        .iter()
        .find(|d| d.first().map(String::as_str) == Some("access_log") && d.get(1).is_some_and(|p| p.ends_with(file)))
        .ok_or_else(|| format!("no `access_log ... {file}` directive in the configuration"))?;
    let name = access
        .get(2)
        .filter(|a| !a.contains('='))
        .cloned()
        .unwrap_or_else(|| "combined".into());
    if name == "combined" {
        return LogFormat::compile("combined", COMBINED);
    }
    let defined = directives
        .iter()
        .find(|d| d.first().map(String::as_str) == Some("log_format") && d.get(1) == Some(&name))
        .ok_or_else(|| format!("access_log names the format `{name}`, but no `log_format {name}` defines it"))?;
    // log_format NAME [escape=...] 'part' 'part' ...;
    let parts: Vec<&str> = defined[2..]
        .iter()
        .filter(|p| !p.starts_with("escape="))
        .map(String::as_str)
        .collect();
    LogFormat::compile(&name, &parts.concat())
}

/// Directives as word lists, quotes removed, comments dropped (enough of
/// nginx's grammar for `log_format` and `access_log`).
fn directives(config: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = config.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
            Some(_) if c == '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            Some(_) => word.push(c),
            None => match c {
                '\'' | '"' => quote = Some(c),
                '#' => {
                    for n in chars.by_ref() {
                        if n == '\n' {
                            break;
                        }
                    }
                }
                ';' | '{' | '}' => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                    if !words.is_empty() {
                        out.push(std::mem::take(&mut words));
                    }
                }
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    word.push(c);
                    in_word = true;
                }
            },
        }
    }
    out
}

/// Lines of `log` written after byte `from`.
pub fn lines_since(log: &Path, from: u64) -> Option<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect())
}

/// How many of `lines` have `$status` = `status`, and how many did not parse.
pub fn count_status(format: &LogFormat, lines: &[String], status: &str) -> (u64, u64) {
    let (mut hits, mut unparsed) = (0, 0);
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        match format.field(line, "status") {
            Some(s) if s == status => hits += 1,
            Some(_) => {}
            None => unparsed += 1,
        }
    }
    (hits, unparsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_lines_give_their_status() {
        let f = LogFormat::compile("combined", COMBINED).unwrap();
        // A referer and a user agent with quotes and spaces after the status:
        // reading the text after the last quote gives nothing.
        let line = r#"127.0.0.1 - - [02/Dec/2026:06:00:00 +0000] "GET /orders/7 HTTP/1.1" 502 157 "-" "curl/7.88.1 (x86_64) \"x\"""#;
        assert_eq!(f.field(line, "status"), Some("502"));
        assert_eq!(f.field(line, "request"), Some("GET /orders/7 HTTP/1.1"));
        assert_eq!(count_status(&f, &[line.to_string(), "garbage".into()], "502"), (1, 1));
    }

    #[test]
    fn the_format_comes_from_the_configuration() {
        let config = r#"
            http {
                # a comment naming log_format fake 'x';
                log_format timed '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent '
                                 '$request_time ${upstream_response_time}s';
                server { access_log /run/x/access.log timed; }
                server { access_log /run/y/other.log; }
            }"#;
        let f = format_for(config, "access.log").unwrap();
        assert_eq!(f.name, "timed");
        let line = r#"127.0.0.1 [2026-12-02T06:00:00+00:00] "GET / HTTP/1.1" 429 0 0.001 0.000s"#;
        assert_eq!(f.field(line, "status"), Some("429"));
        assert_eq!(f.field(line, "upstream_response_time"), Some("0.000"));
        assert_eq!(format_for(config, "other.log").unwrap().name, "combined");
        assert!(format_for(config, "missing.log").unwrap_err().contains("no `access_log"));
        let undefined = "access_log /a.log main;";
        assert!(format_for(undefined, "a.log").unwrap_err().contains("no `log_format main`"));
    }
}
