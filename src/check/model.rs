//! Sequential specifications for the linearizability checker.
//!
//! The checker splits a history per key (P-compositionality: a history is
//! linearizable if and only if each key's sub-history is), so a model's state is
//! the value of one key only. Values are interned: a [`ValueId`] names one value of
//! the history, [`NIL`] is nil. The models:
//! - `register`: Knossos's `register`, read and write (Jepsen `:f :read`, `:write`);
//! - `cas-register`: Knossos's `cas-register`, read, write and compare-and-set
//!   (`:f :cas`, `:value [old new]`);
//! - `kv`: Porcupine's key-value model, get, put and append of strings, plus delete
//!   and cas; the state is the key's string.
//!
//! A model is pure: [`Machine::step`] depends only on its arguments (it memoizes
//! appends, which does not change results).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast, fixed (unseeded) hasher for the checker's tables: the multiply-rotate
/// of rustc's FxHasher. Lookups only; nothing iterates these tables.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// One value of a history, interned. Register values are compared as EDN (`1` and
/// `"1"` differ); kv values are strings.
pub type ValueId = u32;

/// The nil value.
pub const NIL: ValueId = 0;

/// An operation of a single key, with its input and, for a read, its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A read (Jepsen `:read`, Porcupine `get`) and the value it returned. The value
    /// is only checked when the operation is determinate (`ok`).
    Read(ValueId),
    /// A write (`:write`, `put`).
    Write(ValueId),
    /// Compare-and-set from the first value to the second; `ok` means it matched.
    Cas(ValueId, ValueId),
    /// Append the value's string (kv only).
    Append(ValueId),
    /// Make the key absent (kv only).
    Delete,
}

impl Op {
    /// Whether it is a read (which changes no state).
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Read(_))
    }
}

/// Which sequential specification a history is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Knossos's `register`: read and write.
    Register,
    /// Knossos's `cas-register`: read, write, cas.
    CasRegister,
    /// Porcupine's kv: get, put, append (and delete, cas), per key.
    Kv,
}

impl ModelKind {
    /// The name `--model` takes: `register`, `cas-register`, `kv`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
        }
    }

    /// Parses a `--model` value: `register`, `cas-register` or `kv`.
    pub fn parse(s: &str) -> Option<ModelKind> {
        match s {
            "register" => Some(ModelKind::Register),
            "cas-register" => Some(ModelKind::CasRegister),
            "kv" => Some(ModelKind::Kv),
            _ => None,
        }
    }

    /// `Err(reason)` if the model has no such operation.
    pub fn supports(self, op: &Op) -> Result<(), String> {
        match (self, op) {
            (ModelKind::Register, Op::Cas(..)) => {
                Err("the register model has no cas (use --model cas-register)".to_string())
            }
            (ModelKind::Register | ModelKind::CasRegister, Op::Append(_)) => Err(format!(
                "the {} model has no append (use --model kv)",
                self.name()
            )),
            (ModelKind::Register | ModelKind::CasRegister, Op::Delete) => Err(format!(
                "the {} model has no delete (use --model kv)",
                self.name()
            )),
            _ => Ok(()),
        }
    }
}

/// The values of a history: id -> text. For a kv history the text is the string
/// itself; for a register history it is the value printed as EDN.
#[derive(Clone, Debug)]
pub struct Values {
    /// Whether texts are strings (kv) or EDN (registers); only display differs.
    pub strings: bool,
    texts: Vec<Box<str>>,
    index: FxMap<Box<str>, ValueId>,
    /// Per value: its rolling hash and `HASH_BASE^len` (see [`roll`]).
    hashes: Vec<(u64, u64)>,
    /// (rolling hash, length) -> the first value with it.
    by_hash: FxMap<(u64, u32), ValueId>,
}

/// The base of the polynomial rolling hash of strings (mod 2^64).
const HASH_BASE: u64 = 0x100_0000_01b3;

/// The rolling hash of `s` and `HASH_BASE^len(s)`: the hash of a concatenation
/// `a + b` is `hash(a) * pow(b) + hash(b)`, so an append costs O(1), not O(len).
pub fn roll(s: &str) -> (u64, u64) {
    s.bytes().fold((0u64, 1u64), |(h, p), b| {
        (
            h.wrapping_mul(HASH_BASE).wrapping_add(u64::from(b) + 1),
            p.wrapping_mul(HASH_BASE),
        )
    })
}

impl Values {
    /// A table holding only nil (id 0, text `""`); `strings`: kv strings, else EDN.
    pub fn new(strings: bool) -> Values {
        Values {
            strings,
            texts: vec!["".into()],
            index: FxMap::default(),
            hashes: vec![(0, 1)],
            by_hash: FxMap::default(),
        }
    }

    /// The id of a (non-nil) value with this text.
    pub fn intern(&mut self, text: &str) -> ValueId {
        if let Some(&id) = self.index.get(text) {
            return id;
        }
        let id = ValueId::try_from(self.texts.len()).expect("fewer than 2^32 values");
        self.texts.push(text.into());
        self.index.insert(text.into(), id);
        let (h, p) = roll(text);
        self.hashes.push((h, p));
        self.by_hash.entry((h, text.len() as u32)).or_insert(id);
        id
    }

    /// The id of the value with this text, if it was interned.
    pub fn lookup(&self, text: &str) -> Option<ValueId> {
        self.index.get(text).copied()
    }

    /// The text of a value (`""` for nil).
    pub fn text(&self, id: ValueId) -> &str {
        &self.texts[id as usize]
    }

    /// Values in the table, nil included.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether it holds nil alone.
    pub fn is_empty(&self) -> bool {
        self.texts.len() == 1
    }

    /// The value as a report shows it: `nil`, `"abc"` (kv), or its EDN.
    pub fn show(&self, id: ValueId) -> String {
        if id == NIL {
            return "nil".to_string();
        }
        let t = self.text(id);
        if self.strings {
            let mut s = String::new();
            let _ = crate::check::edn::write_string(&mut s, t);
            s
        } else {
            t.to_string()
        }
    }
}

/// A model bound to a history's values, for one search. States are [`ValueId`]s:
/// a register's value, or a kv key's string (appends intern new strings here).
pub struct Machine<'a> {
    /// The model.
    pub kind: ModelKind,
    base: &'a Values,
    /// The state of a key nothing has written yet (`--initial`).
    pub initial: ValueId,
    /// States built by appends: (state, appended value, hash, pow, length), and
    /// their text once something needed it. These tables gain at most one entry per
    /// search step; `bytes` counts them toward the check's memory bound.
    extra: Vec<(ValueId, ValueId, u64, u64, u32)>,
    extra_text: Vec<std::cell::OnceCell<String>>,
    extra_index: FxMap<(u64, u32), ValueId>,
    appended: FxMap<(ValueId, ValueId), ValueId>,
    /// Bytes held by the strings and tables above (an estimate).
    pub bytes: usize,
}

impl<'a> Machine<'a> {
    /// A machine for model `kind` over a history's `base` values, every key (or the
    /// register) starting at `initial`.
    pub fn new(kind: ModelKind, base: &'a Values, initial: ValueId) -> Machine<'a> {
        Machine {
            kind,
            base,
            initial,
            extra: Vec::new(),
            extra_text: Vec::new(),
            extra_index: FxMap::default(),
            appended: FxMap::default(),
            bytes: 0,
        }
    }

    /// The tables this machine built, detached from the history's values (to be
    /// freed elsewhere: they can be large).
    pub fn into_tables(self) -> impl Send + 'static {
        (self.extra, self.extra_text, self.extra_index, self.appended)
    }

    /// The history's values it was built over.
    pub fn values(&self) -> &'a Values {
        self.base
    }

    /// The text of a state or value.
    pub fn text(&self, id: ValueId) -> &str {
        let n = self.base.len();
        if (id as usize) < n {
            return self.base.text(id);
        }
        let i = id as usize - n;
        self.extra_text[i].get_or_init(|| {
            let (parent, piece, ..) = self.extra[i];
            let mut s = String::with_capacity(self.extra[i].4 as usize);
            s.push_str(self.text(parent));
            s.push_str(self.text(piece));
            s
        })
    }

    fn hash_of(&self, id: ValueId) -> (u64, u64, u32) {
        let n = self.base.len();
        if (id as usize) < n {
            let (h, p) = self.base.hashes[id as usize];
            (h, p, self.base.text(id).len() as u32)
        } else {
            let (_, _, h, p, len) = self.extra[id as usize - n];
            (h, p, len)
        }
    }

    /// Whether `id`'s text is `text(a) + text(b)`.
    fn is_concat(&self, id: ValueId, a: ValueId, b: ValueId) -> bool {
        let t = self.text(id);
        let (ta, tb) = (self.text(a), self.text(b));
        t.len() == ta.len() + tb.len() && t.starts_with(ta) && t.ends_with(tb)
    }

    fn concat(&mut self, state: ValueId, value: ValueId) -> ValueId {
        if let Some(&id) = self.appended.get(&(state, value)) {
            return id;
        }
        let (hs, ps, ls) = self.hash_of(state);
        let (hv, pv, lv) = self.hash_of(value);
        let key = (hs.wrapping_mul(pv).wrapping_add(hv), ls + lv);
        // Equal strings must be one state; hashes only find candidates, and a
        // candidate is compared by text (materialized once, on a hash match).
        let found = [self.base.by_hash.get(&key), self.extra_index.get(&key)]
            .into_iter()
            .flatten()
            .copied()
            .find(|&c| self.is_concat(c, state, value));
        let id = match found {
            Some(id) => id,
            None => {
                let id = ValueId::try_from(self.base.len() + self.extra.len())
                    .expect("fewer than 2^32 states");
                self.extra
                    .push((state, value, key.0, ps.wrapping_mul(pv), key.1));
                self.extra_text.push(std::cell::OnceCell::new());
                // A colliding, different string keeps the first in the index; the
                // new one is still a distinct state, found again through `appended`.
                self.extra_index.entry(key).or_insert(id);
                self.bytes += 64;
                id
            }
        };
        self.bytes += 24;
        self.appended.insert((state, value), id);
        id
    }

    /// Applies `op` to `state`: `Some(next)` if the operation, with the output it
    /// reported, is legal there. `determinate` is false for an indeterminate
    /// operation (`info`, or never completed): its output is not checked.
    pub fn step(&mut self, state: ValueId, op: &Op, determinate: bool) -> Option<ValueId> {
        match *op {
            Op::Read(v) => (!determinate || v == state).then_some(state),
            Op::Write(v) => Some(v),
            // An indeterminate cas that did not match is the same as one that never
            // happened, which the search covers by not linearizing it at all.
            Op::Cas(expected, new) => (expected == state).then_some(new),
            Op::Append(v) => Some(self.concat(state, v)),
            Op::Delete => Some(self.initial),
        }
    }

    /// The value an operation writes, if it writes one.
    pub fn written(&self, op: &Op) -> Option<ValueId> {
        match *op {
            Op::Write(v) | Op::Append(v) => Some(v),
            Op::Cas(_, v) => Some(v),
            Op::Delete => Some(self.initial),
            Op::Read(_) => None,
        }
    }

    /// The value an operation observed: a read's result, a cas's expected value.
    pub fn observed(&self, op: &Op) -> Option<ValueId> {
        match *op {
            Op::Read(v) | Op::Cas(v, _) => Some(v),
            _ => None,
        }
    }

    /// Whether `writer` may have produced (or, for appends, contributed to) the
    /// value `seen`. Only witness minimisation uses it, to keep a source of every
    /// observed value; over-approximating only keeps an extra operation.
    pub fn contributes(&self, writer: &Op, seen: ValueId) -> bool {
        if seen == self.initial {
            return false;
        }
        match (self.kind, *writer) {
            (ModelKind::Kv, Op::Write(v) | Op::Cas(_, v)) => {
                v != NIL && self.text(seen).starts_with(self.text(v))
            }
            (ModelKind::Kv, Op::Append(v)) => {
                !self.text(v).is_empty() && self.text(seen).contains(self.text(v))
            }
            (_, Op::Delete) => false,
            (_, op) => self.written(&op) == Some(seen),
        }
    }

    /// `read -> 3`, `cas 1 -> 2`, `append "x"`, as a report shows an operation.
    pub fn describe(&self, op: &Op, determinate: bool) -> String {
        let v = |id| self.base.show(id);
        let (read, write) = match self.kind {
            ModelKind::Kv => ("get", "put"),
            _ => ("read", "write"),
        };
        match *op {
            Op::Read(x) if determinate => format!("{read} -> {}", v(x)),
            Op::Read(_) => format!("{read} -> ?"),
            Op::Write(x) => format!("{write} {}", v(x)),
            Op::Cas(a, b) => format!("cas {} -> {}", v(a), v(b)),
            Op::Append(x) => format!("append {}", v(x)),
            Op::Delete => "delete".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_append_concatenates_and_interns() {
        let mut vals = Values::new(true);
        let a = vals.intern("a");
        let ab = vals.intern("ab");
        let b = vals.intern("b");
        let mut m = Machine::new(ModelKind::Kv, &vals, NIL);
        let s = m.step(NIL, &Op::Append(a), true).unwrap();
        assert_eq!(s, a);
        assert_eq!(m.step(s, &Op::Append(b), true), Some(ab));
        let abb = m.step(ab, &Op::Append(b), true).unwrap();
        assert_eq!(m.text(abb), "abb");
        assert_eq!(m.step(ab, &Op::Append(b), true), Some(abb));
    }

    #[test]
    fn register_read_write_cas() {
        let mut vals = Values::new(false);
        let one = vals.intern("1");
        let two = vals.intern("2");
        let mut m = Machine::new(ModelKind::CasRegister, &vals, NIL);
        assert_eq!(m.step(NIL, &Op::Read(NIL), true), Some(NIL));
        assert_eq!(m.step(NIL, &Op::Read(one), true), None);
        assert_eq!(m.step(NIL, &Op::Read(one), false), Some(NIL));
        assert_eq!(m.step(one, &Op::Cas(one, two), true), Some(two));
        assert_eq!(m.step(two, &Op::Cas(one, two), true), None);
        let mut m0 = Machine::new(ModelKind::CasRegister, &vals, one);
        assert_eq!(m0.step(one, &Op::Delete, true), Some(one));
    }

    #[test]
    fn contributions() {
        let mut vals = Values::new(true);
        let a = vals.intern("x 1 y");
        let seen = vals.intern("x 0 yx 1 y");
        let m = Machine::new(ModelKind::Kv, &vals, NIL);
        assert!(m.contributes(&Op::Append(a), seen));
        assert!(!m.contributes(&Op::Write(a), seen));
        assert!(!m.contributes(&Op::Read(a), seen));
    }

    #[test]
    fn models_refuse_what_they_lack() {
        assert!(ModelKind::Register.supports(&Op::Cas(1, 2)).is_err());
        assert!(ModelKind::CasRegister.supports(&Op::Append(1)).is_err());
        assert!(ModelKind::Kv.supports(&Op::Append(1)).is_ok());
        assert_eq!(
            ModelKind::parse("cas-register"),
            Some(ModelKind::CasRegister)
        );
    }
}
