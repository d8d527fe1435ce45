//! History files, as Jepsen, Knossos and Porcupine write them, and faultline's own.
//!
//! Formats, detected per file from its first non-blank character or line:
//! - **EDN op maps** (Jepsen's `history.edn`, Knossos's data, Porcupine's kv data):
//!   one op map after another, one per line or pretty-printed over many, or all
//!   inside one top-level vector or list. Clojure records (`#jepsen.history.Op{..}`)
//!   count as maps. The whole EDN grammar is read ([`crate::check::edn`]).
//! - **Jepsen's `history.txt`**: one op per line, `PROCESS TYPE F VALUE [ERROR]`
//!   separated by tabs (or spaces), each field EDN: `3\t:ok\t:read\t2`.
//! - **Jepsen console logs**: the same fields in lines of the `jepsen.util` logger,
//!   `INFO [date] jepsen worker 3 - jepsen.util 3\t:ok\t:read\t2` (`jepsen.log`) or
//!   `INFO  jepsen.util - 3\t:ok\t:read\t2` (Porcupine's etcd corpus); lines from
//!   other loggers, and lines without a log prefix, are skipped.
//! - **faultline's `history.jsonl`**: one JSON [`crate::history::HistoryEvent`] per line.
//!
//! Op maps read `:process`, `:type`, `:f`, `:value`, and optionally `:key` and
//! `:time` (nanoseconds); every other key (`:index`, `:error`, `:node`, ...) is
//! ignored, in any order. Ops whose `:process` is not an integer (Jepsen's
//! `:nemesis`) are not client operations and are skipped, whatever they hold.
//!
//! Semantics follow Jepsen: `:fail` did not happen, `:info` is indeterminate, and a
//! completion's `:value` may be an error keyword (`:timed-out`) for anything but an
//! `:ok` read: the input is taken from the invoke. Jepsen's `independent` tuples
//! (`:value [k v]`, and `[k [old new]]` for cas) are recognised from the file and
//! split per key; so is a `:key` field. `:txn` histories are refused: they need a
//! transactional checker (Elle), not a single-object model.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::check::edn::{self, Kind, Value};
use crate::check::linearizability::{pair, Body, Event, Problem};
use crate::check::model::{ModelKind, Op, ValueId, Values, NIL};
use crate::history::OpType;

/// Longest history file accepted, in bytes: it is read into memory whole.
pub const FILE_BYTES_MAX: u64 = 1 << 31;

/// How a file was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// faultline's `history.jsonl`.
    JsonLines,
    /// EDN op maps, one after another.
    EdnOps,
    /// One EDN vector or list of op maps.
    EdnVector,
    /// Jepsen's tab-separated `history.txt`.
    HistoryTxt,
    /// Jepsen console log lines (`INFO  jepsen.util - ...`).
    ConsoleLog,
}

impl Format {
    /// The format's name in reports: `json-lines`, `edn`, `edn-vector`,
    /// `history.txt`, `console-log`.
    pub fn name(self) -> &'static str {
        match self {
            Format::JsonLines => "json-lines",
            Format::EdnOps => "edn",
            Format::EdnVector => "edn-vector",
            Format::HistoryTxt => "history.txt",
            Format::ConsoleLog => "console-log",
        }
    }
}

/// What an absent kv key reads as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbsentReads {
    /// Decide from the file: `""` if some read returns `""` and no operation
    /// writes `""` (Porcupine's and MIT 6.824's convention), else nil.
    Auto,
    /// nil (Knossos, Jepsen).
    Nil,
    /// `""`: a read of nil and a read of `""` both mean "absent".
    Empty,
}

/// How to read a history.
#[derive(Clone, Debug)]
pub struct Options {
    /// The model operations are checked against.
    pub model: ModelKind,
    /// The initial value of the register, or of every kv key, as EDN (`0`, `nil`,
    /// `"x"`); `None` is nil (or `""` under [`AbsentReads::Empty`]).
    pub initial: Option<String>,
    /// What an absent kv key reads as.
    pub absent_reads: AbsentReads,
}

impl Options {
    /// `model`, initial values nil, absent reads decided from the file.
    pub fn new(model: ModelKind) -> Options {
        Options {
            model,
            initial: None,
            absent_reads: AbsentReads::Auto,
        }
    }
}

/// Bad input: the file cannot be read, or something in it is not what it should be.
#[derive(Debug)]
pub enum HistoryError {
    /// The file cannot be read.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Something in the file is malformed or not a history operation.
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based, in characters, where known.
        column: Option<usize>,
        /// What is wrong there.
        message: String,
    },
    /// A bad option (`--initial`, ...), not tied to a place in the file.
    Usage(String),
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
            HistoryError::Usage(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for HistoryError {}

/// Where an event came from in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// Byte offset where its text starts.
    pub start: usize,
    /// 1-based line of that offset.
    pub line: usize,
    /// Whether it is a whole line (text formats) rather than one EDN value.
    pub whole_line: bool,
}

/// A parsed history file.
#[derive(Clone, Debug)]
pub struct LoadedHistory {
    /// The file.
    pub path: PathBuf,
    /// Its contents.
    pub text: String,
    /// The format it was read as (detected).
    pub format: Format,
    /// The operations, paired and interned, ready for the search.
    pub problem: Problem,
    /// Per client event (as numbered in pairing): where it is in the file.
    pub sources: Vec<Source>,
    /// Whether times are nanoseconds (`:time`) rather than event positions.
    pub timed: bool,
    /// What the reader decided from the file (tuples, absent reads, skipped ops).
    pub notes: Vec<String>,
}

impl LoadedHistory {
    /// An event's text as written, on one line (inner whitespace runs become one
    /// space).
    pub fn event_text(&self, event: usize) -> String {
        let src = self.sources[event];
        let end = if src.whole_line {
            self.text[src.start..]
                .find('\n')
                .map_or(self.text.len(), |i| src.start + i)
        } else {
            let mut r = edn::Reader::at(&self.text, src.start);
            match r.value(0) {
                Ok(_) => r.offset(),
                Err(_) => self.text.len().min(src.start + 200),
            }
        };
        self.text[src.start..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Reads and parses a history file.
pub fn load(path: &Path, options: &Options) -> Result<LoadedHistory, HistoryError> {
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
    parse_bytes(&bytes, path, options)
}

/// Parses a whole file's bytes. Never panics on any input.
pub fn parse_bytes(
    bytes: &[u8],
    path: &Path,
    options: &Options,
) -> Result<LoadedHistory, HistoryError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        Err(e) => {
            let (line, column) = edn::line_col(
                std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
                e.valid_up_to(),
            );
            return Err(HistoryError::Syntax {
                path: path.to_path_buf(),
                line,
                column: Some(column),
                message: "invalid UTF-8".to_string(),
            });
        }
    };
    let mut p = Parser {
        path,
        text: &text,
        options,
        raw: Vec::new(),
        notes: Vec::new(),
        skipped: 0,
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
    };
    let format = p.read()?;
    p.finish(format, text.clone())
}

/// One client op before values are interned.
struct RawOp {
    process: u64,
    kind: OpType,
    f: String,
    /// Where `f` is, for errors.
    f_at: usize,
    value: Option<Value>,
    key: Option<Value>,
    time: Option<u64>,
    source: Source,
}

struct Parser<'a> {
    path: &'a Path,
    text: &'a str,
    options: &'a Options,
    raw: Vec<RawOp>,
    notes: Vec<String>,
    skipped: usize,
    /// Byte offsets where lines start.
    line_starts: Vec<usize>,
}

/// `0`, `:nemesis`, `"x"` as EDN, shortened for messages.
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Whether a line starts like a log line: `INFO ...`, `WARN ...`.
fn is_log_line(line: &str) -> bool {
    matches!(
        line.split_whitespace().next(),
        Some("INFO" | "WARN" | "DEBUG" | "ERROR" | "TRACE")
    )
}

/// For a log line of Jepsen's op logger, the byte offset of the op's fields. Two
/// layouts: `INFO  jepsen.util - 3\t:ok ...` (logger before the dash, as in
/// Porcupine's corpus) and `INFO [date] jepsen worker 3 - jepsen.util 3\t:ok ...`
/// (thread before the dash, logger after, as Jepsen writes `jepsen.log`).
fn console_op_offset(line: &str) -> Option<usize> {
    if !is_log_line(line) {
        return None;
    }
    let dash = line.find(" - ")?;
    let after = dash + 3;
    if let Some(rest) = line[after..].strip_prefix("jepsen.util") {
        if rest.starts_with([' ', '\t']) {
            return Some(after + "jepsen.util".len());
        }
    }
    (line[..dash].split_whitespace().last() == Some("jepsen.util")).then_some(after)
}

impl<'a> Parser<'a> {
    /// The 1-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    fn err<T>(&self, offset: usize, message: impl Into<String>) -> Result<T, HistoryError> {
        let (line, column) = edn::line_col(self.text, offset);
        Err(HistoryError::Syntax {
            path: self.path.to_path_buf(),
            line,
            column: Some(column),
            message: message.into(),
        })
    }

    fn edn_err<T>(&self, e: edn::Error) -> Result<T, HistoryError> {
        self.err(e.offset, e.message)
    }

    fn read(&mut self) -> Result<Format, HistoryError> {
        let mut r = edn::Reader::new(self.text);
        let first = match r.peek() {
            Ok(b) => b,
            Err(e) => return self.edn_err(e),
        };
        let start = r.offset();
        let Some(first) = first else {
            // Nothing but whitespace and comments: an empty history.
            return Ok(Format::EdnOps);
        };
        let first_line = self.text[start..].lines().next().unwrap_or("");
        if first == b'{' && first_line[1..].trim_start().starts_with('"') {
            self.read_json_lines()?;
            return Ok(Format::JsonLines);
        }
        if is_log_line(first_line) {
            self.read_lines(true)?;
            return Ok(Format::ConsoleLog);
        }
        match first {
            b'{' | b'#' => {
                while let Some(v) = r.next_value().or_else(|e| self.edn_err(e))? {
                    self.op_map(&v)?;
                }
                Ok(Format::EdnOps)
            }
            b'[' | b'(' => {
                let all = r
                    .next_value()
                    .or_else(|e| self.edn_err(e))?
                    .expect("peeked");
                if let Some(extra) = r.next_value().or_else(|e| self.edn_err(e))? {
                    return self.err(
                        extra.start,
                        "expected the end of the file after the vector of ops",
                    );
                }
                for v in all.items().expect("a vector or list") {
                    self.op_map(v)?;
                }
                Ok(Format::EdnVector)
            }
            _ => {
                self.read_lines(false)?;
                Ok(Format::HistoryTxt)
            }
        }
    }

    fn read_json_lines(&mut self) -> Result<(), HistoryError> {
        #[derive(serde::Deserialize)]
        struct JsonEvent {
            #[allow(dead_code)]
            index: usize,
            process: u64,
            #[serde(rename = "type")]
            kind: OpType,
            #[serde(flatten)]
            op: crate::history::KvOp,
            time_ns: u64,
        }
        let mut offset = 0;
        for (i, line) in self.text.split('\n').enumerate() {
            let here = offset;
            offset += line.len() + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let e: JsonEvent = match serde_json::from_str(trimmed) {
                Ok(e) => e,
                Err(e) => {
                    return Err(HistoryError::Syntax {
                        path: self.path.to_path_buf(),
                        line: i + 1,
                        column: Some(e.column()).filter(|&c| c > 0),
                        message: format!("expected a history event like {{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\",\"time_ns\":5}}: {e}"),
                    })
                }
            };
            use crate::history::KvOp;
            let s = |t: &str| Value {
                kind: Kind::Str(t.to_string()),
                start: here,
            };
            let nil = Value {
                kind: Kind::Nil,
                start: here,
            };
            let opt = |v: &Option<String>| v.as_deref().map_or(nil.clone(), s);
            let (f, key, value) = match &e.op {
                KvOp::Get { key, value } => ("get", key, opt(value)),
                KvOp::Put { key, value } => ("put", key, s(value)),
                KvOp::Append { key, value } => ("append", key, s(value)),
                KvOp::Delete { key } => ("delete", key, nil.clone()),
                KvOp::Cas {
                    key,
                    value: (old, new),
                } => (
                    "cas",
                    key,
                    Value {
                        kind: Kind::Vector(vec![opt(old), s(new)]),
                        start: here,
                    },
                ),
            };
            self.raw.push(RawOp {
                process: e.process,
                kind: e.kind,
                f: f.to_string(),
                f_at: here,
                value: Some(value),
                key: Some(s(key)),
                time: Some(e.time_ns),
                source: Source {
                    start: here,
                    line: i + 1,
                    whole_line: true,
                },
            });
        }
        Ok(())
    }

    /// `history.txt` or console-log lines: PROCESS TYPE F VALUE, each EDN.
    fn read_lines(&mut self, console: bool) -> Result<(), HistoryError> {
        let mut offset = 0;
        for (i, line) in self.text.split('\n').enumerate() {
            let line_start = offset;
            offset += line.len() + 1;
            let mut body_at = line_start;
            if console {
                match console_op_offset(line) {
                    Some(at) => body_at += at,
                    // Other loggers, stack traces, blank lines.
                    None => continue,
                }
            }
            let body_end = line_start + line.len();
            let body = &self.text[body_at..body_end];
            if body.trim().is_empty() || body.trim_start().starts_with(';') {
                continue;
            }
            let mut r = edn::Reader::at(&self.text[..body_end], body_at);
            let mut fields = Vec::new();
            // Four values at most, each consuming input.
            while fields.len() < 4 {
                match r.next_value() {
                    Ok(Some(v)) => fields.push(v),
                    Ok(None) => break,
                    Err(e) => return self.edn_err(e),
                }
            }
            let source = Source {
                start: line_start,
                line: i + 1,
                whole_line: true,
            };
            if fields.len() < 3 {
                return self.err(
                    body_at,
                    "expected PROCESS TYPE F VALUE separated by tabs, like `3\t:ok\t:read\t2`",
                );
            }
            let mut it = fields.into_iter();
            let process = it.next().expect("3 fields");
            let kind = it.next().expect("3 fields");
            let f = it.next().expect("3 fields");
            let value = it.next();
            self.client_op(&process, &kind, Some(&f), value, None, None, source)?;
        }
        Ok(())
    }

    fn op_map(&mut self, v: &Value) -> Result<(), HistoryError> {
        let map = match &v.kind {
            Kind::Map(_) => v,
            Kind::Tagged(_, inner) if matches!(inner.kind, Kind::Map(_)) => inner,
            _ => {
                return self.err(
                    v.start,
                    format!(
                        "expected an op map like {{:process 0, :type :invoke, :f :read, :value nil}}, found {}",
                        show(v)
                    ),
                )
            }
        };
        let Some(process) = map.get("process") else {
            return self.err(v.start, "this op map has no :process");
        };
        let Some(kind) = map.get("type") else {
            // A non-client op may lack fields; only client ops need them.
            if !matches!(process.kind, Kind::Int(_)) {
                self.skipped += 1;
                return Ok(());
            }
            return self.err(v.start, "this op map has no :type");
        };
        let time = match map.get("time") {
            None => None,
            Some(Value {
                kind: Kind::Int(n), ..
            }) if *n >= 0 => Some(*n as u64),
            Some(t) => {
                if !matches!(process.kind, Kind::Int(_)) {
                    None
                } else {
                    return self.err(
                        t.start,
                        format!(
                            "expected :time to be a non-negative integer (nanoseconds), found {}",
                            show(t)
                        ),
                    );
                }
            }
        };
        let line = self.line_of(v.start);
        let source = Source {
            start: v.start,
            line,
            whole_line: false,
        };
        self.client_op(
            process,
            kind,
            map.get("f"),
            map.get("value").cloned(),
            map.get("key").cloned(),
            time,
            source,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn client_op(
        &mut self,
        process: &Value,
        kind: &Value,
        f: Option<&Value>,
        value: Option<Value>,
        key: Option<Value>,
        time: Option<u64>,
        source: Source,
    ) -> Result<(), HistoryError> {
        let process = match process.kind {
            Kind::Int(n) if n >= 0 => n as u64,
            Kind::Int(_) => {
                return self.err(
                    process.start,
                    "expected :process to be a non-negative integer",
                )
            }
            // Jepsen's nemesis and other non-client processes.
            _ => {
                self.skipped += 1;
                return Ok(());
            }
        };
        let op_type = match &kind.kind {
            Kind::Keyword(k) | Kind::Symbol(k) => match k.as_str() {
                "invoke" => Some(OpType::Invoke),
                "ok" => Some(OpType::Ok),
                "fail" => Some(OpType::Fail),
                "info" => Some(OpType::Info),
                _ => None,
            },
            _ => None,
        };
        let Some(kind) = op_type else {
            return self.err(
                kind.start,
                format!(
                    "expected :type :invoke, :ok, :fail or :info, found {}",
                    show(kind)
                ),
            );
        };
        let Some(f) = f else {
            return self.err(source.start, "this op has no :f");
        };
        let f_name = match &f.kind {
            Kind::Keyword(k) | Kind::Symbol(k) | Kind::Str(k) => k.clone(),
            _ => {
                return self.err(
                    f.start,
                    format!("expected :f to be a keyword like :read, found {}", show(f)),
                )
            }
        };
        self.raw.push(RawOp {
            process,
            kind,
            f: f_name,
            f_at: f.start,
            value,
            key,
            time,
            source,
        });
        Ok(())
    }

    /// Interns `v` as the model compares values.
    fn value_text(&self, v: &Value) -> Option<String> {
        match &v.kind {
            Kind::Nil => None,
            Kind::Str(s) if self.options.model == ModelKind::Kv => Some(s.clone()),
            _ => Some(v.to_string()),
        }
    }

    fn finish(mut self, format: Format, text: String) -> Result<LoadedHistory, HistoryError> {
        let model = self.options.model;
        if self.raw.is_empty() {
            // An empty history is linearizable; say so, since it may be a mistake.
            self.notes.push(format!(
                "no client operations in the file{}",
                if self.skipped > 0 {
                    format!(" (skipped {} non-client op(s))", self.skipped)
                } else {
                    String::new()
                }
            ));
        }
        if let Some(t) = self.raw.iter().find(|o| o.f == "txn") {
            return self.err(
                t.f_at,
                "`:f :txn` (multi-object transactions) cannot be checked against a single-object model; use a transactional checker such as Elle",
            );
        }
        // Times: all client ops or none.
        let timed = self.raw.first().is_some_and(|o| o.time.is_some());
        if let Some(o) = self.raw.iter().find(|o| o.time.is_some() != timed) {
            return self.err(
                o.source.start,
                format!(
                    "this op {} :time but the first client op (line {}) {}: give every op a :time, or none",
                    if timed { "lacks" } else { "has" },
                    self.raw[0].source.line,
                    if timed { "has one" } else { "has none" }
                ),
            );
        }
        // Jepsen independent tuples: [k v], cas [k [old new]], read invokes [k nil];
        // decided from invokes, since a plain register may hold a vector.
        let has_key_field = self.raw.iter().any(|o| o.key.is_some());
        let tuples = !has_key_field
            && self
                .raw
                .iter()
                .filter(|o| o.kind == OpType::Invoke)
                .any(|o| {
                    let pair = |v: &Value| v.items().filter(|i| i.len() == 2).map(|i| i.to_vec());
                    match (o.f.as_str(), o.value.as_ref().and_then(pair)) {
                        ("cas", Some(items)) => items[1].items().is_some_and(|i| i.len() == 2),
                        ("read" | "write" | "get" | "put" | "append", Some(_)) => true,
                        _ => false,
                    }
                });
        if tuples {
            self.notes.push(
                "values are Jepsen independent [key value] tuples: checked per key".to_string(),
            );
        }
        // Values.
        let mut values = Values::new(model == ModelKind::Kv);
        let absent_empty = match (model, self.options.absent_reads) {
            (ModelKind::Kv, AbsentReads::Empty) => true,
            (ModelKind::Kv, AbsentReads::Auto) => {
                let empty = |v: &Option<Value>| matches!(v, Some(Value { kind: Kind::Str(s), .. }) if s.is_empty());
                let reads_empty = self
                    .raw
                    .iter()
                    .filter(|o| o.kind == OpType::Ok && matches!(o.f.as_str(), "get" | "read"))
                    .filter(|o| empty(&o.value))
                    .count();
                let writes_empty = self
                    .raw
                    .iter()
                    .any(|o| matches!(o.f.as_str(), "put" | "write" | "append") && empty(&o.value));
                if reads_empty > 0 && !writes_empty {
                    self.notes.push(format!(
                        "absent keys read as \"\" (Porcupine's convention, detected: {reads_empty} read(s) return \"\", which no operation writes; --absent-reads nil turns this off)"
                    ));
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        let initial = match &self.options.initial {
            Some(t) => {
                let vals = edn::read_all(t).map_err(|e| {
                    HistoryError::Usage(format!(
                        "--initial {t:?}: {} (give one EDN value, like 0 or nil)",
                        e.message
                    ))
                })?;
                let [v] = vals.as_slice() else {
                    return Err(HistoryError::Usage(format!(
                        "--initial {t:?}: give one EDN value, like 0, nil or \"\""
                    )));
                };
                self.value_text(v).map_or(NIL, |s| values.intern(&s))
            }
            None if absent_empty => values.intern(""),
            None => NIL,
        };
        let absent = |id: ValueId| {
            if absent_empty && id == NIL {
                initial
            } else {
                id
            }
        };
        // Keys, in order of first appearance.
        let mut key_ids: BTreeMap<String, usize> = BTreeMap::new();
        let mut key_names: Vec<String> = Vec::new();
        let mut events = Vec::with_capacity(self.raw.len());
        let mut sources = Vec::with_capacity(self.raw.len());
        let raw = std::mem::take(&mut self.raw);
        for (pos, o) in raw.iter().enumerate() {
            let at = o.value.as_ref().map_or(o.source.start, |v| v.start);
            // Split an independent tuple.
            let (key_v, value) = if tuples {
                match o.value.as_ref().and_then(|v| v.items()) {
                    Some([k, v]) => (Some(k.clone()), Some(v.clone())),
                    _ if o.kind == OpType::Invoke || (o.kind == OpType::Ok && matches!(o.f.as_str(), "read" | "get")) => {
                        return self.err(
                            at,
                            format!(
                                "expected a [key value] tuple (the file uses Jepsen independent keys), found {}",
                                o.value.as_ref().map_or("nothing".to_string(), show)
                            ),
                        )
                    }
                    _ => (None, None),
                }
            } else {
                (o.key.clone(), o.value.clone())
            };
            let key = match &key_v {
                Some(k) => {
                    let name = match (&k.kind, model) {
                        (Kind::Str(s), ModelKind::Kv) if !tuples => s.clone(),
                        _ => k.to_string(),
                    };
                    let next = key_names.len();
                    let id = *key_ids.entry(name.clone()).or_insert(next);
                    if id == next {
                        key_names.push(name);
                    }
                    Some(id)
                }
                None => None,
            };
            let vid = |this: &Self, values: &mut Values, v: &Value| {
                this.value_text(v).map_or(NIL, |s| values.intern(&s))
            };
            let body = if o.kind == OpType::Invoke {
                let key = match key {
                    Some(k) => k,
                    None => {
                        let next = key_names.len();
                        let id = *key_ids.entry(String::new()).or_insert(next);
                        if id == next {
                            key_names.push(String::new());
                        }
                        id
                    }
                };
                let need = |this: &Self, what: &str| -> Result<Value, HistoryError> {
                    match &value {
                        Some(v) => Ok(v.clone()),
                        None => this.err(
                            o.source.start,
                            format!("this :{} invoke has no :value {what}", o.f),
                        ),
                    }
                };
                let op = match o.f.as_str() {
                    "read" | "get" => Op::Read(NIL),
                    "write" | "put" => {
                        Op::Write(vid(&self, &mut values, &need(&self, "to write")?))
                    }
                    "append" => Op::Append(vid(&self, &mut values, &need(&self, "to append")?)),
                    "delete" => Op::Delete,
                    "cas" => {
                        let v = need(&self, "[old new]")?;
                        match v.items() {
                            Some([old, new]) => Op::Cas(
                                absent(vid(&self, &mut values, old)),
                                vid(&self, &mut values, new),
                            ),
                            _ => {
                                return self.err(
                                    v.start,
                                    format!("expected a cas :value [old new], found {}", show(&v)),
                                )
                            }
                        }
                    }
                    other => {
                        return self.err(
                            o.f_at,
                            format!(
                                "unknown :f :{other}; the {} model has {}",
                                model.name(),
                                match model {
                                    ModelKind::Register => ":read and :write",
                                    ModelKind::CasRegister => ":read, :write and :cas",
                                    ModelKind::Kv =>
                                        ":get (:read), :put (:write), :append, :delete and :cas",
                                }
                            ),
                        )
                    }
                };
                if let Err(m) = model.supports(&op) {
                    return self.err(o.f_at, m);
                }
                Body::Invoke { key, op }
            } else {
                let f = match o.f.as_str() {
                    "read" | "get" => "read",
                    "write" | "put" => "write",
                    "cas" => "cas",
                    "append" => "append",
                    "delete" => "delete",
                    _ => {
                        return self.err(o.f_at, format!("unknown :f :{}", o.f));
                    }
                };
                let read = if f == "read" && o.kind == OpType::Ok {
                    let v = value.as_ref().map_or(NIL, |v| vid(&self, &mut values, v));
                    Some(absent(v))
                } else {
                    None
                };
                Body::Complete { key, read, f }
            };
            events.push(Event {
                process: o.process,
                kind: o.kind,
                time: o.time.unwrap_or(pos as u64),
                body,
            });
            sources.push(o.source);
        }
        if self.skipped > 0 {
            self.notes.push(format!(
                "skipped {} non-client op(s) (:process not an integer)",
                self.skipped
            ));
        }
        let per_key = match pair(&events, key_names.len()) {
            Ok(p) => p,
            Err(e) => {
                return Err(HistoryError::Syntax {
                    path: self.path.to_path_buf(),
                    line: sources[e.position].line,
                    column: Some(edn::line_col(self.text, sources[e.position].start).1),
                    message: e.message,
                })
            }
        };
        Ok(LoadedHistory {
            path: self.path.to_path_buf(),
            format,
            problem: Problem {
                model,
                values,
                initial,
                keys: key_names.into_iter().zip(per_key).collect(),
            },
            sources,
            timed,
            notes: self.notes,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, model: ModelKind) -> Result<LoadedHistory, HistoryError> {
        parse_bytes(text.as_bytes(), Path::new("h.edn"), &Options::new(model))
    }

    #[test]
    fn formats_are_detected() {
        let line = "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n";
        assert_eq!(
            parse(line, ModelKind::CasRegister).unwrap().format,
            Format::EdnOps
        );
        let vector = format!("[{}]", line);
        assert_eq!(
            parse(&vector, ModelKind::CasRegister).unwrap().format,
            Format::EdnVector
        );
        let txt = "0\t:invoke\t:write\t1\n0\t:ok\t:write\t1\n";
        assert_eq!(
            parse(txt, ModelKind::CasRegister).unwrap().format,
            Format::HistoryTxt
        );
        let log = "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.core - hello\nINFO  jepsen.util - 0\t:ok\t:write\t1\n";
        let h = parse(log, ModelKind::CasRegister).unwrap();
        assert_eq!(h.format, Format::ConsoleLog);
        assert_eq!(h.sources[1].line, 3);
        // Jepsen's own jepsen.log layout, with stray lines of a multi-line message.
        let log = "INFO [2019-04-01 11:25:23,001] main - jepsen.core Running\n{:valid? true\n :x 1}\nINFO [2019-04-01 11:25:23,719] jepsen worker 8 - jepsen.util 8\t:invoke\t:read\tnil\nINFO [2018-02-04 22:14:07,142] jepsen nemesis - jepsen.util :nemesis\t:info\t:stop\t:network-healed\nINFO [2019-04-01 11:25:23,722] jepsen worker 8 - jepsen.util 8\t:ok\t:read\t#{1 2}\n";
        let h = parse(log, ModelKind::CasRegister).unwrap();
        assert_eq!(h.format, Format::ConsoleLog);
        assert_eq!(h.problem.keys[0].1.len(), 1);
        assert_eq!((h.sources[0].line, h.sources[1].line), (4, 6));
    }

    #[test]
    fn errors_show_edn_and_place() {
        let e = parse("{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :read, :value [2 8]}\n", ModelKind::CasRegister)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("h.edn:2:1:"), "{e}");
        let e = parse(
            "{:process 0, :type :invoked, :f :write}\n",
            ModelKind::CasRegister,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("found :invoked"), "{e}");
        assert!(e.starts_with("h.edn:1:20:"), "{e}");
    }

    #[test]
    fn event_text_is_as_written() {
        let h = parse("{:process 0,\n :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}", ModelKind::CasRegister).unwrap();
        assert_eq!(
            h.event_text(0),
            "{:process 0, :type :invoke, :f :write, :value 1}"
        );
        assert_eq!(h.sources[1].line, 3);
    }
}
