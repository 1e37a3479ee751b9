//! A small RFC 4180 reader: comma-separated fields, optionally quoted with
//! `"`, `""` inside quotes for a quote, line breaks inside quotes kept, CRLF
//! or LF line ends, a leading UTF-8 BOM dropped, blank lines skipped. Each
//! record keeps the line of the file it starts on, for error messages.

/// One record of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The 1-based line of the file the record starts on.
    pub(crate) line: usize,
    /// Its fields, unquoted.
    pub(crate) fields: Vec<String>,
}

/// The file is not CSV from `line` on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {line}: a quoted field is never closed")]
pub struct CsvError {
    /// Where the unclosed quote starts.
    pub line: usize,
}

/// Splits `text` into records.
pub(crate) fn records(text: &str) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut start = 1;
    let mut quoted = false;
    let mut quote_line = 0;
    // True once the current field was quoted (so `""` is an empty field,
    // not nothing) or anything was read for the record.
    let mut touched = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                quote_line = line;
                touched = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                touched = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if touched || !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                    out.push(Record {
                        line: start,
                        fields: std::mem::take(&mut fields),
                    });
                }
                touched = false;
                line += 1;
                start = line;
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err(CsvError { line: quote_line });
    }
    if touched || !field.is_empty() {
        fields.push(field);
        out.push(Record {
            line: start,
            fields,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: usize, f: &[&str]) -> Record {
        Record {
            line,
            fields: f.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn quotes_line_breaks_and_blank_lines() {
        let text = "\u{feff}a,b,c\r\n1,\"x, \"\"y\"\"\",\r\n\r\n2,\"two\nlines\",z\n,,\n3,\"\",w";
        assert_eq!(
            records(text).unwrap(),
            vec![
                rec(1, &["a", "b", "c"]),
                rec(2, &["1", "x, \"y\"", ""]),
                rec(4, &["2", "two\nlines", "z"]),
                rec(6, &["", "", ""]),
                rec(7, &["3", "", "w"]),
            ]
        );
    }

    #[test]
    fn an_unclosed_quote_names_its_row() {
        assert_eq!(records("a\n\"open\nstill"), Err(CsvError { line: 2 }));
    }
}
