//! A reader for EDN, the Extensible Data Notation (<https://github.com/edn-format/edn>),
//! the format of Jepsen's and Knossos's history files.
//!
//! It reads the whole published grammar: `nil`, `true`, `false`, strings (escapes
//! `\t \r \n \\ \" \uXXXX`), characters (`\c`, `\newline`, `\return`, `\space`,
//! `\tab`, `\formfeed`, `\backspace`, `\uXXXX`), integers (optional sign, `N` suffix),
//! floating point numbers (fraction, exponent, `M` suffix, `##Inf`, `##-Inf`, `##NaN`), ratios (`1/2`, which
//! Clojure prints), symbols, keywords (with namespaces), lists `(..)`, vectors `[..]`,
//! maps `{..}`, sets `#{..}`, tagged elements `#tag value` (including Clojure records,
//! `#ns.Record{..}`), the discard `#_ value`, `;` comments, and commas as whitespace.
//!
//! Every value keeps the byte offset where it starts, so errors name a line and
//! column and a caller can show a value as the user wrote it. Nesting is bounded by
//! [`DEPTH_MAX`]. Every loop consumes input each round or returns, so each is bounded
//! by the input's length. The crates on crates.io were not used: `edn-rs` is deprecated and
//! `edn-format` keeps no source positions, which reports need.

use std::fmt;

/// Deepest nesting accepted; a deeper input is an error, not a stack overflow.
pub const DEPTH_MAX: usize = 64;

/// An EDN value and the byte offset in the input where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// What the value is.
    pub kind: Kind,
    /// Byte offset of its first character in the input.
    pub start: usize,
}

/// The kinds of EDN values.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `nil`.
    Nil,
    /// `true`, `false`.
    Bool(bool),
    /// Integers that fit in 64 bits.
    Int(i64),
    /// Integers that do not fit, and `N`-suffixed ones too large for i64: their text.
    BigInt(String),
    /// Floating point numbers and ratios, as written (compared as text).
    Float(String),
    /// A string, its escapes resolved.
    Str(String),
    /// `\a`, `\newline`, `\u0041`.
    Char(char),
    /// `foo`, `ns/foo`.
    Symbol(String),
    /// `:foo`, `:ns/foo`, without the colon.
    Keyword(String),
    /// `(a b c)`.
    List(Vec<Value>),
    /// `[a b c]`.
    Vector(Vec<Value>),
    /// `{k v ...}`: key-value pairs in the order written.
    Map(Vec<(Value, Value)>),
    /// `#{a b}`: elements in the order written.
    Set(Vec<Value>),
    /// `#tag value`.
    Tagged(String, Box<Value>),
}

impl Value {
    /// The map's value for keyword `:name`, if this is a map (or a tagged map, as a
    /// Clojure record prints) holding it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, Kind::Keyword(n) if n == name))
                .map(|(_, v)| v),
            Kind::Tagged(_, inner) => inner.get(name),
            _ => None,
        }
    }

    /// The elements of a vector or list.
    pub fn items(&self) -> Option<&[Value]> {
        match &self.kind {
            Kind::Vector(v) | Kind::List(v) => Some(v),
            _ => None,
        }
    }
}

/// Prints the value back as EDN (canonical spacing: one space between elements).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(
            f: &mut fmt::Formatter<'_>,
            open: &str,
            items: &[Value],
            close: &str,
        ) -> fmt::Result {
            f.write_str(open)?;
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{v}")?;
            }
            f.write_str(close)
        }
        match &self.kind {
            Kind::Nil => f.write_str("nil"),
            Kind::Bool(b) => write!(f, "{b}"),
            Kind::Int(n) => write!(f, "{n}"),
            Kind::BigInt(s) | Kind::Float(s) | Kind::Symbol(s) => f.write_str(s),
            Kind::Str(s) => write_string(f, s),
            Kind::Char(c) => match c {
                '\n' => f.write_str("\\newline"),
                '\r' => f.write_str("\\return"),
                ' ' => f.write_str("\\space"),
                '\t' => f.write_str("\\tab"),
                c => write!(f, "\\{c}"),
            },
            Kind::Keyword(k) => write!(f, ":{k}"),
            Kind::List(v) => seq(f, "(", v, ")"),
            Kind::Vector(v) => seq(f, "[", v, "]"),
            Kind::Set(v) => seq(f, "#{", v, "}"),
            Kind::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_str("}")
            }
            Kind::Tagged(tag, v) => write!(f, "#{tag} {v}"),
        }
    }
}

/// Writes `s` as an EDN string literal.
pub fn write_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// A syntax error at a byte offset of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Byte offset in the input (see [`line_col`] for the line and column).
    pub offset: usize,
    /// What is wrong there.
    pub message: String,
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}

/// Reads EDN values one after another from a text.
pub struct Reader<'a> {
    text: &'a str,
    s: &'a [u8],
    pos: usize,
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\r' | b'\n' | b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';'
    ) || b == 0x0c
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    pub fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            s: text.as_bytes(),
            pos: 0,
        }
    }

    /// Starts reading at byte `offset` (a character boundary).
    pub fn at(text: &'a str, offset: usize) -> Reader<'a> {
        Reader {
            text,
            s: text.as_bytes(),
            pos: offset,
        }
    }

    /// The byte offset of the next unread character.
    pub fn offset(&self) -> usize {
        self.pos
    }

    fn err<T>(&self, offset: usize, message: impl Into<String>) -> Result<T, Error> {
        Err(Error {
            offset,
            message: message.into(),
        })
    }

    /// Skips whitespace, commas and comments (not `#_` discards).
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.s.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | b',' | 0x0c => self.pos += 1,
                b';' => {
                    while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// Skips whitespace, comments and `#_` discarded values.
    fn skip_ignored(&mut self, depth: usize) -> Result<(), Error> {
        loop {
            self.skip_ws();
            if self.s.get(self.pos) == Some(&b'#') && self.s.get(self.pos + 1) == Some(&b'_') {
                self.pos += 2;
                self.value(depth)?;
            } else {
                return Ok(());
            }
        }
    }

    /// The next byte after whitespace, comments and discards, without consuming it;
    /// `None` at the end of the input.
    pub fn peek(&mut self) -> Result<Option<u8>, Error> {
        self.skip_ignored(0)?;
        Ok(self.s.get(self.pos).copied())
    }

    /// Consumes one byte (after a [`Reader::peek`]).
    pub fn bump(&mut self) {
        self.pos += 1;
    }

    /// The next value, or `None` at the end of the input.
    pub fn next_value(&mut self) -> Result<Option<Value>, Error> {
        self.skip_ignored(0)?;
        if self.pos >= self.s.len() {
            return Ok(None);
        }
        self.value(0).map(Some)
    }

    /// One value at nesting `depth` (0 at top level); whitespace, comments and
    /// discards before it are skipped.
    ///
    /// # Errors
    /// A syntax error, at its byte offset, or nesting deeper than [`DEPTH_MAX`].
    pub fn value(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > DEPTH_MAX {
            return self.err(self.pos, format!("nested deeper than {DEPTH_MAX} levels"));
        }
        self.skip_ignored(depth)?;
        let start = self.pos;
        let Some(&b) = self.s.get(self.pos) else {
            return self.err(start, "expected a value, found the end of the input");
        };
        let kind = match b {
            b'(' => {
                self.pos += 1;
                Kind::List(self.seq(b')', "list", start, depth)?)
            }
            b'[' => {
                self.pos += 1;
                Kind::Vector(self.seq(b']', "vector", start, depth)?)
            }
            b'{' => {
                self.pos += 1;
                let items = self.seq(b'}', "map", start, depth)?;
                if items.len() % 2 != 0 {
                    return self.err(
                        items[items.len() - 1].start,
                        "a map needs an even number of forms: this key has no value",
                    );
                }
                let mut entries = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    entries.push((k, v));
                }
                Kind::Map(entries)
            }
            b')' | b']' | b'}' => {
                return self.err(
                    start,
                    format!("unexpected `{}`: nothing to close", b as char),
                )
            }
            b'"' => Kind::Str(self.string()?),
            b'\\' => Kind::Char(self.character()?),
            b'#' => match self.s.get(self.pos + 1) {
                Some(b'{') => {
                    self.pos += 2;
                    Kind::Set(self.seq(b'}', "set", start, depth)?)
                }
                Some(b'#') => {
                    // Symbolic values: ##Inf, ##-Inf, ##NaN.
                    self.pos += 2;
                    let name = self.token();
                    if !matches!(name.as_str(), "Inf" | "-Inf" | "NaN") {
                        return self.err(start, format!("unknown symbolic value `##{name}`"));
                    }
                    Kind::Float(format!("##{name}"))
                }
                Some(&c) if c.is_ascii_alphabetic() => {
                    self.pos += 1;
                    let tag = self.token();
                    let inner = self.value(depth + 1)?;
                    Kind::Tagged(tag, Box::new(inner))
                }
                _ => {
                    return self.err(
                        start,
                        "expected a set `#{`, a discard `#_` or a tag `#name` after `#`",
                    )
                }
            },
            b':' => {
                self.pos += 1;
                let name = self.token();
                if name.is_empty() || name.starts_with(':') {
                    return self.err(start, "expected a keyword name after `:`");
                }
                Kind::Keyword(name)
            }
            _ => {
                let tok = self.token();
                if tok.is_empty() {
                    let c = self.text[start..].chars().next().unwrap_or('?');
                    return self.err(start, format!("unexpected character `{c}`"));
                }
                self.atom(&tok, start)?
            }
        };
        Ok(Value { kind, start })
    }

    fn seq(
        &mut self,
        close: u8,
        what: &str,
        open: usize,
        depth: usize,
    ) -> Result<Vec<Value>, Error> {
        let mut items = Vec::new();
        loop {
            self.skip_ignored(depth + 1)?;
            match self.s.get(self.pos) {
                None => {
                    return self.err(
                        open,
                        format!("this {what} is never closed: expected `{}`", close as char),
                    )
                }
                Some(&b) if b == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(&b) if matches!(b, b')' | b']' | b'}') => {
                    return self.err(
                        self.pos,
                        format!(
                            "expected `{}` to close the {what} opened at offset {open}, found `{}`",
                            close as char, b as char
                        ),
                    )
                }
                Some(_) => items.push(self.value(depth + 1)?),
            }
        }
    }

    /// A run of non-delimiter characters.
    fn token(&mut self) -> String {
        let start = self.pos;
        while let Some(&b) = self.s.get(self.pos) {
            if is_delimiter(b) {
                break;
            }
            self.pos += 1;
        }
        self.text[start..self.pos].to_string()
    }

    fn atom(&self, tok: &str, start: usize) -> Result<Kind, Error> {
        match tok {
            "nil" => return Ok(Kind::Nil),
            "true" => return Ok(Kind::Bool(true)),
            "false" => return Ok(Kind::Bool(false)),
            _ => {}
        }
        let first = tok.as_bytes()[0];
        let second = tok.as_bytes().get(1).copied();
        let numeric = first.is_ascii_digit()
            || (matches!(first, b'+' | b'-') && second.is_some_and(|c| c.is_ascii_digit()));
        if !numeric {
            return Ok(Kind::Symbol(tok.to_string()));
        }
        let body = tok.strip_prefix('+').unwrap_or(tok);
        let is_int = |s: &str| {
            let d = s.strip_prefix('-').unwrap_or(s);
            !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())
        };
        if let Some(digits) = body.strip_suffix('N') {
            if is_int(digits) {
                return Ok(digits
                    .parse::<i64>()
                    .map_or_else(|_| Kind::BigInt(digits.to_string()), Kind::Int));
            }
        }
        if is_int(body) {
            return Ok(body
                .parse::<i64>()
                .map_or_else(|_| Kind::BigInt(body.to_string()), Kind::Int));
        }
        if let Some((n, d)) = body.split_once('/') {
            if is_int(n) && is_int(d) && !d.starts_with('-') {
                return Ok(Kind::Float(body.to_string()));
            }
        }
        let float = body.strip_suffix('M').unwrap_or(body);
        if float.parse::<f64>().is_ok() && !float.contains(['i', 'n', 'I', 'N', 'x', 'X']) {
            return Ok(Kind::Float(body.to_string()));
        }
        self.err(start, format!("`{tok}` is not a number"))
    }

    fn string(&mut self) -> Result<String, Error> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(i) = rest.find(['"', '\\']) else {
                return self.err(open, "this string is never closed: expected `\"`");
            };
            out.push_str(&rest[..i]);
            self.pos += i;
            if self.s[self.pos] == b'"' {
                self.pos += 1;
                return Ok(out);
            }
            let esc = self.pos;
            self.pos += 1;
            let c = match self.s.get(self.pos) {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'n') => '\n',
                Some(b't') => '\t',
                Some(b'r') => '\r',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'u') => {
                    let c = self
                        .text
                        .get(self.pos + 1..self.pos + 5)
                        .and_then(|h| u32::from_str_radix(h, 16).ok().and_then(char::from_u32));
                    let Some(c) = c else {
                        return self.err(esc, "expected 4 hex digits after `\\u`");
                    };
                    self.pos += 4;
                    c
                }
                _ => {
                    return self.err(
                        esc,
                        "unknown escape: expected \\\" \\\\ \\n \\t \\r \\b \\f or \\uXXXX",
                    )
                }
            };
            self.pos += 1;
            out.push(c);
        }
    }

    fn character(&mut self) -> Result<char, Error> {
        let start = self.pos;
        self.pos += 1;
        // One character always belongs to the literal, even a delimiter: `\(`.
        let Some(first) = self.text[self.pos..].chars().next() else {
            return self.err(start, "expected a character after `\\`");
        };
        self.pos += first.len_utf8();
        let rest_start = self.pos;
        while let Some(&b) = self.s.get(self.pos) {
            if is_delimiter(b) {
                break;
            }
            self.pos += 1;
        }
        let name = &self.text[start + 1..self.pos];
        if self.pos == rest_start {
            return Ok(first);
        }
        Ok(match name {
            "newline" => '\n',
            "return" => '\r',
            "space" => ' ',
            "tab" => '\t',
            "formfeed" => '\u{c}',
            "backspace" => '\u{8}',
            _ => match name.strip_prefix('u').and_then(|h| {
                (h.len() == 4)
                    .then(|| u32::from_str_radix(h, 16).ok().and_then(char::from_u32))
                    .flatten()
            }) {
                Some(c) => c,
                None => return self.err(start, format!("unknown character literal `\\{name}`")),
            },
        })
    }
}

/// Reads every value of a text.
pub fn read_all(text: &str) -> Result<Vec<Value>, Error> {
    let mut r = Reader::new(text);
    let mut out = Vec::new();
    while let Some(v) = r.next_value()? {
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Value {
        let v = read_all(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn scalars() {
        assert_eq!(one("nil").kind, Kind::Nil);
        assert_eq!(one("true").kind, Kind::Bool(true));
        assert_eq!(one("-12").kind, Kind::Int(-12));
        assert_eq!(one("+7").kind, Kind::Int(7));
        assert_eq!(one("42N").kind, Kind::Int(42));
        assert_eq!(
            one("123456789012345678901234567890").kind,
            Kind::BigInt("123456789012345678901234567890".into())
        );
        assert_eq!(one("1.5e3").kind, Kind::Float("1.5e3".into()));
        assert_eq!(one("2.0M").kind, Kind::Float("2.0M".into()));
        assert_eq!(one("1/2").kind, Kind::Float("1/2".into()));
        assert_eq!(one("##-Inf").kind, Kind::Float("##-Inf".into()));
        assert_eq!(one(":a/b").kind, Kind::Keyword("a/b".into()));
        assert_eq!(one("foo.bar/baz").kind, Kind::Symbol("foo.bar/baz".into()));
        assert_eq!(one("-").kind, Kind::Symbol("-".into()));
        assert_eq!(one(r#""a\"b\n\u00e9""#).kind, Kind::Str("a\"b\né".into()));
        assert_eq!(one("\\a").kind, Kind::Char('a'));
        assert_eq!(one("\\newline").kind, Kind::Char('\n'));
        assert_eq!(one("\\u00e9").kind, Kind::Char('é'));
        assert_eq!(one("\\(").kind, Kind::Char('('));
    }

    #[test]
    fn collections_tags_discards_and_comments() {
        let v = one("{:a #{1 2}, :b (\"x\" y) ; comment\n :c #inst \"2020\" :d #_ 5 [nil]}");
        assert_eq!(v.get("a").unwrap().to_string(), "#{1 2}");
        assert_eq!(v.get("b").unwrap().to_string(), "(\"x\" y)");
        assert_eq!(v.get("c").unwrap().to_string(), "#inst \"2020\"");
        assert_eq!(v.get("d").unwrap().to_string(), "[nil]");
        let rec = one("#jepsen.history.Op{:index 0, :f :read}");
        assert_eq!(rec.get("f").unwrap().kind, Kind::Keyword("read".into()));
        assert_eq!(
            v.to_string(),
            "{:a #{1 2}, :b (\"x\" y), :c #inst \"2020\", :d [nil]}"
        );
    }

    #[test]
    fn values_keep_their_offsets() {
        let all = read_all("  [1\n {:a 2}]").unwrap();
        let items = all[0].items().unwrap();
        assert_eq!(all[0].start, 2);
        assert_eq!(items[1].start, 6);
        assert_eq!(line_col("  [1\n {:a 2}]", items[1].start), (2, 2));
    }

    #[test]
    fn errors_name_offsets() {
        let e = read_all("[1 2").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("never closed"), "{}", e.message);
        let e = read_all("{:a 1 :b}").unwrap_err();
        assert_eq!(e.offset, 6);
        let e = read_all("(1 ]").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = read_all("1x").unwrap_err();
        assert!(e.message.contains("not a number"), "{}", e.message);
        let e = read_all(&"[".repeat(100)).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{}", e.message);
        let e = read_all("\"abc").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = read_all("#=").unwrap_err();
        assert!(e.message.contains("after `#`"), "{}", e.message);
    }
}
