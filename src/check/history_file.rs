//! History files: faultline's JSON lines (`history.jsonl`, one [`HistoryEvent<KvOp>`]
//! per line) and Jepsen EDN histories (one op map per line). The format is detected
//! per file from its first line.
//!
//! EDN support is a small subset, exactly what op maps need: maps, vectors, keywords,
//! integers, strings, `nil`, `true`/`false`, `;` comments; commas are whitespace.
//! Op maps read `:process`, `:type`, `:f`, `:value`, and optionally `:key`, `:time`
//! (ns), `:index`; other keys are ignored. Lines whose `:process` is a keyword (Jepsen's
//! `:nemesis`) are skipped. Values become strings: integers in decimal, keywords with
//! their colon (`:a`), so an integer and a string with the same text compare equal.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::check::linearizability::{
    check_partitions, pair_events, render_report, Operation, Outcome, TimeBase,
};
use crate::check::model::{CasRegisterModel, KvModel, ModelKind};
use crate::history::{HistoryEvent, KvOp, OpType};
use crate::process::ClientId;
use crate::system::Verdict;

/// Longest history file accepted, in bytes: it is read into memory whole.
pub const FILE_BYTES_MAX: u64 = 1 << 30;
/// Deepest EDN nesting accepted (op maps need 2).
const EDN_DEPTH_MAX: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Edn,
}

/// Bad input: the file cannot be read, or a line is not what it should be.
#[derive(Debug)]
pub enum HistoryError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    Syntax {
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based, in bytes, where known.
        column: Option<usize>,
        message: String,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            HistoryError::Syntax {
                path,
                line,
                column: Some(c),
                message,
            } => write!(f, "{}:{line}:{c}: {message}", path.display()),
            HistoryError::Syntax {
                path,
                line,
                column: None,
                message,
            } => write!(f, "{}:{line}: {message}", path.display()),
        }
    }
}

impl std::error::Error for HistoryError {}

/// A parsed history file.
#[derive(Clone, Debug)]
pub struct LoadedHistory {
    pub format: Format,
    pub model: ModelKind,
    pub events: Vec<HistoryEvent<KvOp>>,
    /// The 1-based line of each event.
    pub lines: Vec<usize>,
    pub times: TimeBase,
}

/// The checked history, with the text to print.
#[derive(Clone, Debug)]
pub struct Report {
    pub outcome: Outcome,
    /// Details, ending with a line `linearizable`, `not linearizable` or `unknown`.
    pub text: String,
}

impl Report {
    /// The CLI's exit code: 0 linearizable, 1 not, 3 unknown (2 is bad input).
    pub fn exit_code(&self) -> i32 {
        match self.outcome.verdict {
            Verdict::Pass => 0,
            Verdict::Fail(_) => 1,
            Verdict::Unknown(_) => 3,
        }
    }
}

/// Reads and parses a history file.
pub fn load(path: &Path, model: ModelKind) -> Result<LoadedHistory, HistoryError> {
    let io = |error| HistoryError::Io {
        path: path.to_path_buf(),
        error,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > FILE_BYTES_MAX {
        return Err(HistoryError::Syntax {
            path: path.to_path_buf(),
            line: 1,
            column: None,
            message: format!("file is {len} bytes; at most {FILE_BYTES_MAX} are accepted"),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse_bytes(&bytes, path, model)
}

/// Loads, checks within `budget`, and renders the report.
pub fn check_file(path: &Path, model: ModelKind, budget: Duration) -> Result<Report, HistoryError> {
    let loaded = load(path, model)?;
    check_loaded(&loaded, path, budget)
}

/// Checks a parsed history. `path` only names the file in errors.
pub fn check_loaded(
    loaded: &LoadedHistory,
    path: &Path,
    budget: Duration,
) -> Result<Report, HistoryError> {
    let ops = pair_events(&loaded.events).map_err(|e| HistoryError::Syntax {
        path: path.to_path_buf(),
        line: loaded.lines[e.position],
        column: None,
        message: e.message,
    })?;
    let mut partitions: BTreeMap<String, Vec<Operation<KvOp>>> = BTreeMap::new();
    for op in ops {
        partitions
            .entry(op.op.key().to_string())
            .or_default()
            .push(op);
    }
    let outcome = match loaded.model {
        ModelKind::Kv => check_partitions(&KvModel, partitions, budget),
        ModelKind::CasRegister => check_partitions(&CasRegisterModel, partitions, budget),
    };
    let text = render_report(&outcome, loaded.times);
    Ok(Report { outcome, text })
}

/// Parses a whole file's bytes. Never panics on any input.
pub fn parse_bytes(
    bytes: &[u8],
    path: &Path,
    model: ModelKind,
) -> Result<LoadedHistory, HistoryError> {
    let err = |line: usize, column: Option<usize>, message: String| HistoryError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            return Err(err(line, Some(column), "invalid UTF-8".to_string()));
        }
    };
    let mut format = None;
    let mut events = Vec::new();
    let mut lines = Vec::new();
    let mut times_given = None::<(bool, usize)>; // (has time, first line), EDN only
    let mut pending: BTreeMap<ClientId, KvOp> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            continue;
        }
        let fmt = match format {
            Some(f) => f,
            None => {
                let f = detect(trimmed).ok_or_else(|| {
                    err(
                        line_no,
                        Some(1 + raw.len() - raw.trim_start().len()),
                        "expected a JSON object ({\"index\":..}) or an EDN map ({:process ..})"
                            .to_string(),
                    )
                })?;
                format = Some(f);
                f
            }
        };
        let position = events.len();
        let parsed = match fmt {
            Format::JsonLines => parse_json_line(raw).map(Some),
            Format::Edn => parse_edn_line(raw, position, &mut pending),
        };
        let Some((event, has_time)) = parsed.map_err(|(c, m)| err(line_no, c, m))? else {
            continue;
        };
        if let Err(m) = model.supports(&event.op) {
            return Err(err(line_no, None, m));
        }
        if fmt == Format::Edn {
            match times_given {
                None => times_given = Some((has_time, line_no)),
                Some((t, first)) if t != has_time => {
                    return Err(err(
                        line_no,
                        None,
                        format!(
                            "{} :time, but line {first} {}: give every op a :time, or none",
                            if has_time { "has" } else { "lacks" },
                            if t { "has one" } else { "has none" }
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        events.push(event);
        lines.push(line_no);
    }
    let Some(format) = format else {
        return Err(err(1, None, "no operations in the file".to_string()));
    };
    let times = if format == Format::Edn && times_given.is_some_and(|(t, _)| !t) {
        TimeBase::EventOrder
    } else {
        TimeBase::Nanos
    };
    Ok(LoadedHistory {
        format,
        model,
        events,
        lines,
        times,
    })
}

fn detect(line: &str) -> Option<Format> {
    let rest = line.strip_prefix('{')?.trim_start_matches([' ', '\t', ',']);
    match rest.chars().next() {
        Some('"') => Some(Format::JsonLines),
        Some(':') | Some('}') => Some(Format::Edn),
        _ => None,
    }
}

/// Mirrors [`HistoryEvent`], which only serializes.
#[derive(Deserialize)]
struct JsonEvent {
    index: usize,
    process: ClientId,
    #[serde(rename = "type")]
    kind: OpType,
    #[serde(flatten)]
    op: KvOp,
    time_ns: u64,
}

type LineResult<T> = Result<T, (Option<usize>, String)>;

fn parse_json_line(raw: &str) -> LineResult<(HistoryEvent<KvOp>, bool)> {
    let e: JsonEvent = serde_json::from_str(raw).map_err(|e| {
        (
            Some(e.column()).filter(|&c| c > 0),
            format!("expected a history event like {{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\",\"time_ns\":5}}: {e}"),
        )
    })?;
    Ok((
        HistoryEvent {
            index: e.index,
            process: e.process,
            kind: e.kind,
            op: e.op,
            time_ns: e.time_ns,
        },
        true,
    ))
}

/// The EDN values an op map holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    Keyword(String),
    Vector(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

struct EdnParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl EdnParser<'_> {
    fn fail<T>(&self, message: impl Into<String>) -> LineResult<T> {
        Err((Some(self.pos + 1), message.into()))
    }

    fn skip_ws(&mut self) {
        while let Some(&b) = self.s.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | b',' => self.pos += 1,
                b';' => self.pos = self.s.len(),
                _ => break,
            }
        }
    }

    fn value(&mut self, depth: usize) -> LineResult<Edn> {
        if depth > EDN_DEPTH_MAX {
            return self.fail(format!("nested deeper than {EDN_DEPTH_MAX} levels"));
        }
        self.skip_ws();
        let Some(&b) = self.s.get(self.pos) else {
            return self.fail("expected a value, found the end of the line");
        };
        match b {
            b'{' => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    self.skip_ws();
                    match self.s.get(self.pos) {
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Edn::Map(entries));
                        }
                        None => return self.fail("expected `}` to close the map"),
                        Some(_) => {
                            let k = self.value(depth + 1)?;
                            self.skip_ws();
                            if matches!(self.s.get(self.pos), Some(b'}') | None) {
                                return self.fail("expected a value after the map key");
                            }
                            let v = self.value(depth + 1)?;
                            entries.push((k, v));
                        }
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.s.get(self.pos) {
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Edn::Vector(items));
                        }
                        None => return self.fail("expected `]` to close the vector"),
                        Some(_) => items.push(self.value(depth + 1)?),
                    }
                }
            }
            b'"' => self.string(),
            b':' => {
                self.pos += 1;
                let name = self.token();
                if name.is_empty() {
                    return self.fail("expected a keyword name after `:`");
                }
                Ok(Edn::Keyword(name))
            }
            b'-' | b'+' | b'0'..=b'9' => {
                let start = self.pos;
                let tok = self.token();
                // `N` marks a bignum in EDN; small ones are fine as i64.
                let digits = tok.strip_suffix('N').unwrap_or(&tok);
                match digits.parse::<i64>() {
                    Ok(n) => Ok(Edn::Int(n)),
                    Err(_) => {
                        self.pos = start;
                        self.fail(format!("expected an integer (64-bit), found `{tok}`"))
                    }
                }
            }
            _ => {
                let start = self.pos;
                let tok = self.token();
                match tok.as_str() {
                    "nil" => Ok(Edn::Nil),
                    "true" => Ok(Edn::Bool(true)),
                    "false" => Ok(Edn::Bool(false)),
                    _ => {
                        self.pos = start;
                        let shown: String = if tok.is_empty() {
                            String::from_utf8_lossy(&self.s[start..(start + 1).min(self.s.len())])
                                .chars()
                                .take(1)
                                .collect()
                        } else {
                            tok
                        };
                        self.fail(format!(
                            "expected a map, vector, keyword, integer, string, nil, true or false; found `{shown}`"
                        ))
                    }
                }
            }
        }
    }

    /// A run of symbol characters (ASCII only; anything else ends the token).
    fn token(&mut self) -> String {
        let start = self.pos;
        while let Some(&b) = self.s.get(self.pos) {
            if b.is_ascii_alphanumeric() || b"-_?!*+./<>=&%$#'".contains(&b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }

    fn string(&mut self) -> LineResult<Edn> {
        let open = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                self.pos = open;
                return self.fail("expected `\"` to close the string");
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return self.fail("expected an escape after `\\`");
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'u' => {
                            let hex = self.s.get(self.pos..self.pos + 4);
                            let c = hex
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32);
                            let Some(c) = c else {
                                return self
                                    .fail("expected 4 hex digits of a character after `\\u`");
                            };
                            self.pos += 4;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => {
                            self.pos -= 1;
                            return self
                                .fail("expected one of the escapes \\\" \\\\ \\n \\t \\r \\uXXXX");
                        }
                    }
                }
                _ => out.push(b),
            }
        }
        // The line is valid UTF-8 and escapes add whole characters, so this holds.
        Ok(Edn::Str(
            String::from_utf8(out).expect("valid UTF-8 string"),
        ))
    }
}

/// Parses one EDN value filling the whole line.
pub fn parse_edn(line: &str) -> Result<Edn, (Option<usize>, String)> {
    let mut p = EdnParser {
        s: line.as_bytes(),
        pos: 0,
    };
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos < p.s.len() {
        return p.fail("expected the end of the line after the op map (one op per line)");
    }
    Ok(v)
}

fn scalar(v: &Edn, what: &str) -> LineResult<Option<String>> {
    match v {
        Edn::Nil => Ok(None),
        Edn::Bool(b) => Ok(Some(b.to_string())),
        Edn::Int(n) => Ok(Some(n.to_string())),
        Edn::Str(s) => Ok(Some(s.clone())),
        Edn::Keyword(k) => Ok(Some(format!(":{k}"))),
        Edn::Vector(_) | Edn::Map(_) => Err((
            None,
            format!("expected {what} to be an integer, string, keyword or nil, found {v:?}"),
        )),
    }
}

fn parse_edn_line(
    raw: &str,
    position: usize,
    pending: &mut BTreeMap<ClientId, KvOp>,
) -> LineResult<Option<(HistoryEvent<KvOp>, bool)>> {
    let Edn::Map(entries) = parse_edn(raw)? else {
        return Err((
            None,
            "expected an op map {:process .. :type .. :f ..}".to_string(),
        ));
    };
    let mut fields: BTreeMap<&str, &Edn> = BTreeMap::new();
    for (k, v) in &entries {
        if let Edn::Keyword(name) = k {
            if fields.insert(name.as_str(), v).is_some() {
                return Err((None, format!("duplicate key :{name}")));
            }
        }
    }
    let need = |name: &str| {
        fields
            .get(name)
            .copied()
            .ok_or((None, format!("expected a :{name} in the op map")))
    };
    let process = match need("process")? {
        // Jepsen's nemesis ops (`:process :nemesis`) are not client operations.
        Edn::Keyword(_) => return Ok(None),
        Edn::Int(n) if *n >= 0 => *n as ClientId,
        other => {
            return Err((
                None,
                format!("expected :process to be a non-negative integer, found {other:?}"),
            ))
        }
    };
    let kind = match need("type")? {
        Edn::Keyword(k) => match k.as_str() {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            _ => {
                return Err((
                    None,
                    format!("expected :type :invoke, :ok, :fail or :info, found :{k}"),
                ))
            }
        },
        other => {
            return Err((
                None,
                format!("expected :type to be a keyword, found {other:?}"),
            ))
        }
    };
    let nonneg = |name: &str| -> LineResult<Option<u64>> {
        match fields.get(name) {
            None => Ok(None),
            Some(Edn::Int(n)) if *n >= 0 => Ok(Some(*n as u64)),
            Some(other) => Err((
                None,
                format!("expected :{name} to be a non-negative integer, found {other:?}"),
            )),
        }
    };
    let time = nonneg("time")?;
    let index = nonneg("index")?.map_or(position, |i| i as usize);
    let key = match fields.get("key") {
        None => String::new(),
        Some(v) => scalar(v, ":key")?.ok_or((None, "expected :key to be non-nil".to_string()))?,
    };
    let value = fields.get("value").copied().unwrap_or(&Edn::Nil);
    let f = match need("f")? {
        Edn::Keyword(f) => f.as_str(),
        other => {
            return Err((
                None,
                format!("expected :f to be a keyword, found {other:?}"),
            ))
        }
    };
    // A completion may leave out the input; take it from the invoke.
    let from_invoke = || pending.get(&process).cloned();
    let required = |v: Option<String>, what: &str| -> LineResult<String> {
        v.ok_or((None, format!("expected a non-nil :value for {what}")))
    };
    let op = match f {
        "read" | "get" => KvOp::Get {
            key,
            value: if kind == OpType::Invoke {
                None
            } else {
                scalar(value, ":value")?
            },
        },
        "write" | "put" | "append" => {
            let v = match (scalar(value, ":value")?, kind, from_invoke()) {
                (Some(v), _, _) => v,
                (None, OpType::Ok | OpType::Fail | OpType::Info, Some(KvOp::Put { value, .. } | KvOp::Append { value, .. })) => value,
                (None, _, _) => required(None, f)?,
            };
            if f == "append" {
                KvOp::Append { key, value: v }
            } else {
                KvOp::Put { key, value: v }
            }
        }
        "delete" => KvOp::Delete { key },
        "cas" => {
            let pair = match (value, kind, from_invoke()) {
                (Edn::Vector(items), _, _) if items.len() == 2 => {
                    let new = scalar(&items[1], "a cas's new value")?
                        .ok_or((None, "expected a non-nil new value in [old new]".to_string()))?;
                    (scalar(&items[0], "a cas's old value")?, new)
                }
                (Edn::Nil, OpType::Ok | OpType::Fail | OpType::Info, Some(KvOp::Cas { value, .. })) => {
                    value
                }
                _ => {
                    return Err((
                        None,
                        format!("expected a cas :value [old new], found {value:?}"),
                    ))
                }
            };
            KvOp::Cas { key, value: pair }
        }
        other => {
            return Err((
                None,
                format!(
                    "unknown :f :{other}; expected read, write, cas (cas-register) or get, put, append, delete, cas (kv)"
                ),
            ))
        }
    };
    if kind == OpType::Invoke {
        pending.insert(process, op.clone());
    } else {
        pending.remove(&process);
    }
    Ok(Some((
        HistoryEvent {
            index,
            process,
            kind,
            op,
            time_ns: time.unwrap_or(position as u64),
        },
        time.is_some(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, model: ModelKind) -> Result<LoadedHistory, HistoryError> {
        parse_bytes(text.as_bytes(), Path::new("h.edn"), model)
    }

    #[test]
    fn edn_values_and_commas() {
        let v = parse_edn(r#"{:a 1, :b [nil "x\"y"], :c :kw, :d -3, :e true}"#).unwrap();
        let Edn::Map(m) = v else { panic!("map") };
        assert_eq!(m.len(), 5);
        assert_eq!(m[1].1, Edn::Vector(vec![Edn::Nil, Edn::Str("x\"y".into())]));
        assert_eq!(m[3].1, Edn::Int(-3));
    }

    #[test]
    fn edn_errors_name_column() {
        let (col, msg) = parse_edn("{:a 1 :b }").unwrap_err();
        assert_eq!(col, Some(10));
        assert!(msg.contains("expected a value"), "{msg}");
        let (col, _) = parse_edn("{:a @}").unwrap_err();
        assert_eq!(col, Some(5));
    }

    #[test]
    fn edn_cas_register_history_loads() {
        let h = parse(
            "{:process 0, :type :invoke, :f :write, :value 3}\n\
             {:process 0, :type :ok, :f :write, :value 3}\n\
             {:process 1, :type :invoke, :f :cas, :value [3 4]}\n\
             {:process 1, :type :ok, :f :cas}\n\
             {:process :nemesis, :type :info, :f :start}\n\
             {:process 0, :type :invoke, :f :read, :value nil}\n\
             {:process 0, :type :ok, :f :read, :value 4}\n",
            ModelKind::CasRegister,
        )
        .unwrap();
        assert_eq!(h.format, Format::Edn);
        assert_eq!(h.times, TimeBase::EventOrder);
        assert_eq!(h.events.len(), 6);
        assert_eq!(
            h.events[3].op,
            KvOp::Cas {
                key: String::new(),
                value: (Some("3".into()), "4".into())
            }
        );
        assert_eq!(h.lines[5], 7);
    }

    #[test]
    fn append_rejected_under_cas_register_naming_line() {
        let e = parse(
            "{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0, :type :invoke, :f :append, :value 3}\n",
            ModelKind::CasRegister,
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("h.edn:2:"), "{s}");
        assert!(s.contains("no append"), "{s}");
    }

    #[test]
    fn mixed_times_rejected() {
        let e = parse(
            "{:process 0, :type :invoke, :f :read, :time 5}\n{:process 0, :type :ok, :f :read, :value 1}\n",
            ModelKind::CasRegister,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("h.edn:2:"), "{e}");
    }

    #[test]
    fn json_line_loads_and_bad_json_names_line_and_column() {
        let good = r#"{"index":0,"process":1,"type":"invoke","f":"put","key":"x","value":"1","time_ns":5}"#;
        let h = parse_bytes(good.as_bytes(), Path::new("h.jsonl"), ModelKind::Kv).unwrap();
        assert_eq!(h.format, Format::JsonLines);
        assert_eq!(h.events[0].time_ns, 5);
        let bad = format!("{good}\n{{\"index\":1,\"process\":1,\"type\":\"ok\",\"f\":\"put\",\"key\":\"x\",\"time_ns\":6}}\n");
        let e = parse_bytes(bad.as_bytes(), Path::new("h.jsonl"), ModelKind::Kv).unwrap_err();
        let HistoryError::Syntax { line, column, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*line, 2);
        assert!(column.is_some(), "{e}");
    }

    #[test]
    fn empty_file_is_an_error() {
        let e = parse("\n  \n", ModelKind::Kv).unwrap_err();
        assert!(e.to_string().contains("no operations"), "{e}");
    }
}
