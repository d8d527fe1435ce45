//! The run's fingerprint: an explicit byte encoding of every traced event, hashed
//! with 64-bit FNV-1a.
//!
//! A seed's trace hash must be the same on every machine, with every Rust version. So
//! it does not go through [`std::hash::Hash`], whose output depends on the target
//! (`usize` width), on how derived impls number enum variants and on how the standard
//! library prefixes strings and slices, none of which Rust promises to keep. Every
//! value fed to the trace instead implements [`Fingerprint`], which writes the
//! encoding below, fixed by this crate ([`VERSION`]).
//!
//! # Encoding, version 1
//!
//! | value | bytes |
//! |---|---|
//! | `u8`..`u64`, `i8`..`i64` | fixed width, little-endian |
//! | `usize`, `isize` | 8 bytes, little-endian, on every target |
//! | `bool` | 1 byte: 0 or 1 |
//! | `f64` | `to_bits()` as a `u64` |
//! | `char` | its scalar value as a `u32` |
//! | `str`, `String` | length in bytes as a `u64`, then the UTF-8 bytes |
//! | slices, `Vec`, `VecDeque`, `BTreeSet` | length as a `u64`, then each element in order |
//! | `BTreeMap` | length as a `u64`, then each key and value, in key order |
//! | `Option` | a tag byte (0: `None`, 1: `Some`), then the value if any |
//! | tuples, structs | each field in order, no separator |
//! | `()` | nothing |
//! | `Duration` | whole nanoseconds as a `u64` (saturating) |
//! | `&T`, `Box<T>`, `Arc<T>`, `Rc<T>` | as `T` |
//! | enums | a `u32` variant tag, assigned explicitly in the impl, then the variant's fields |
//!
//! Some types trade content for speed and are fingerprinted by identity only; their
//! impls say so (for example Raft's log entries in `AppendEntries`, which a client
//! request already fingerprinted in full). Anything that feeds the trace only through
//! [`Fingerprint`] and integer or correctly rounded float arithmetic is portable; see
//! README "Determinism".
//!
//! [`impl_fingerprint!`](crate::impl_fingerprint) writes the impls of plain structs and
//! enums.

#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Version of the encoding described in this module. The trace hash starts from it, so
/// a change of encoding changes every hash; bump it with any change to the encoding.
pub const VERSION: u32 = 1;

/// Where an encoding goes: the trace's hasher, or a byte buffer.
pub trait Sink {
    /// Appends `bytes` to the encoding.
    fn write(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn write(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// 64-bit FNV-1a over the encoded bytes. It is part of the fingerprint's definition
/// (written here rather than taken from a crate or `std`, whose hashers may change),
/// so it stays as it is.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Fnv {
    /// FNV-1a's 64-bit offset basis: the hash of no bytes.
    pub const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    /// FNV-1a's 64-bit prime.
    pub const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The hash of the bytes written so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv(Fnv::OFFSET_BASIS)
    }
}

impl Sink for Fnv {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Fnv::PRIME);
        }
    }
}

/// A value's contribution to the run's fingerprint, in the encoding described in the
/// module documentation. Implement it for every message, request, response and history
/// operation type of a protocol, usually with [`impl_fingerprint!`](crate::impl_fingerprint).
pub trait Fingerprint {
    /// Writes the value's encoding to `out`.
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S);
}

/// The encoding of `value`, as bytes (for tests and debugging).
pub fn encode<T: Fingerprint + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.fingerprint(&mut out);
    out
}

/// FNV-1a of the encoding of `value`.
pub fn fnv<T: Fingerprint + ?Sized>(value: &T) -> u64 {
    let mut h = Fnv::default();
    value.fingerprint(&mut h);
    h.finish()
}

/// Writes an enum's variant tag (a `u32`).
#[inline]
pub fn tag<S: Sink + ?Sized>(out: &mut S, tag: u32) {
    out.write(&tag.to_le_bytes());
}

/// Writes a length (a `u64`).
#[inline]
pub fn len<S: Sink + ?Sized>(out: &mut S, len: usize) {
    out.write(&(len as u64).to_le_bytes());
}

macro_rules! le_ints {
    ($($t:ty),*) => {$(
        impl Fingerprint for $t {
            #[inline]
            fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
                out.write(&self.to_le_bytes());
            }
        }
    )*};
}

le_ints!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

impl Fingerprint for usize {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        out.write(&(*self as u64).to_le_bytes());
    }
}

impl Fingerprint for isize {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        out.write(&(*self as i64).to_le_bytes());
    }
}

impl Fingerprint for bool {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        out.write(&[u8::from(*self)]);
    }
}

impl Fingerprint for char {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        u32::from(*self).fingerprint(out);
    }
}

impl Fingerprint for f64 {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        self.to_bits().fingerprint(out);
    }
}

impl Fingerprint for f32 {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        self.to_bits().fingerprint(out);
    }
}

impl Fingerprint for () {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, _out: &mut S) {}
}

impl Fingerprint for str {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        len(out, self.len());
        out.write(self.as_bytes());
    }
}

impl Fingerprint for String {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        self.as_str().fingerprint(out);
    }
}

impl Fingerprint for Duration {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        u64::try_from(self.as_nanos())
            .unwrap_or(u64::MAX)
            .fingerprint(out);
    }
}

impl<T: Fingerprint> Fingerprint for Option<T> {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        match self {
            None => out.write(&[0]),
            Some(v) => {
                out.write(&[1]);
                v.fingerprint(out);
            }
        }
    }
}

/// Encoding: a byte 0 then the value for `Ok`, 1 then the error for `Err`.
impl<T: Fingerprint, E: Fingerprint> Fingerprint for Result<T, E> {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        match self {
            Ok(v) => {
                out.write(&[0]);
                v.fingerprint(out);
            }
            Err(e) => {
                out.write(&[1]);
                e.fingerprint(out);
            }
        }
    }
}

impl<T: Fingerprint> Fingerprint for [T] {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        len(out, self.len());
        for v in self {
            v.fingerprint(out);
        }
    }
}

impl<T: Fingerprint, const N: usize> Fingerprint for [T; N] {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        self.as_slice().fingerprint(out);
    }
}

impl<T: Fingerprint> Fingerprint for Vec<T> {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        self.as_slice().fingerprint(out);
    }
}

impl<T: Fingerprint> Fingerprint for VecDeque<T> {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        len(out, self.len());
        for v in self {
            v.fingerprint(out);
        }
    }
}

impl<T: Fingerprint> Fingerprint for BTreeSet<T> {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        len(out, self.len());
        for v in self {
            v.fingerprint(out);
        }
    }
}

impl<K: Fingerprint, V: Fingerprint> Fingerprint for BTreeMap<K, V> {
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        len(out, self.len());
        for (k, v) in self {
            k.fingerprint(out);
            v.fingerprint(out);
        }
    }
}

impl<T: Fingerprint + ?Sized> Fingerprint for &T {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        (**self).fingerprint(out);
    }
}

impl<T: Fingerprint + ?Sized> Fingerprint for Box<T> {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        (**self).fingerprint(out);
    }
}

impl<T: Fingerprint + ?Sized> Fingerprint for Arc<T> {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        (**self).fingerprint(out);
    }
}

impl<T: Fingerprint + ?Sized> Fingerprint for Rc<T> {
    #[inline]
    fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
        (**self).fingerprint(out);
    }
}

macro_rules! tuples {
    ($(($($name:ident),+))*) => {$(
        impl<$($name: Fingerprint),+> Fingerprint for ($($name,)+) {
            #[inline]
            #[allow(non_snake_case)]
            fn fingerprint<S: Sink + ?Sized>(&self, out: &mut S) {
                let ($($name,)+) = self;
                $($name.fingerprint(out);)+
            }
        }
    )*};
}

tuples! {
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
    (A, B, C, D, E)
    (A, B, C, D, E, F)
}

/// Implements [`Fingerprint`] for a struct (its fields in the order listed) or an enum
/// (each variant's tag as given, then its fields in the order listed).
///
/// ```
/// use faultline::impl_fingerprint;
///
/// struct Point { x: i64, y: i64 }
/// struct Wrapper(u64, String);
/// enum Shape { Dot, Circle { centre: Point, radius: u32 }, Pair(Point, Point) }
///
/// impl_fingerprint!(struct Point { x, y });
/// impl_fingerprint!(struct Wrapper(0, 1));
/// impl_fingerprint!(enum Shape {
///     0 => Dot,
///     1 => Circle { centre, radius },
///     2 => Pair(a, b),
/// });
///
/// let circle = Shape::Circle { centre: Point { x: 1, y: -1 }, radius: 2 };
/// let bytes = faultline::fingerprint::encode(&circle);
/// assert_eq!(bytes.len(), 4 + 8 + 8 + 4);
/// assert_eq!(bytes[..4], [1, 0, 0, 0]);
/// ```
///
/// A type with one type parameter takes it first, with its bound:
/// `impl_fingerprint!(<M: Bound> struct Wrapper { field })` (the parameter may not be
/// named `S`, which the generated method uses).
///
/// An enum variant lists every field: one left out of the fingerprint is named after
/// `; skip` (`Vote { term; skip transfer }`), so that a new field cannot be forgotten
/// silently.
///
/// List every field that matters (a field left out is not fingerprinted), and give
/// each variant a tag of its own that never changes: a new variant takes a new tag.
#[macro_export]
macro_rules! impl_fingerprint {
    (<$g:ident : $bound:path> struct $ty:ident $($body:tt)*) => {
        $crate::impl_fingerprint!(@struct [$g: $bound] [$ty<$g>] $($body)*);
    };
    (struct $ty:ident $($body:tt)*) => {
        $crate::impl_fingerprint!(@struct [] [$ty] $($body)*);
    };
    (<$g:ident : $bound:path> enum $ty:ident $body:tt) => {
        $crate::impl_fingerprint!(@enum [$g: $bound] [$ty<$g>] $ty $body);
    };
    (enum $ty:ident $body:tt) => {
        $crate::impl_fingerprint!(@enum [] [$ty] $ty $body);
    };
    (@struct [$($gen:tt)*] [$($full:tt)*] { $($field:ident),* $(,)? }) => {
        impl<$($gen)*> $crate::fingerprint::Fingerprint for $($full)* {
            #[inline]
            fn fingerprint<S: $crate::fingerprint::Sink + ?Sized>(&self, _out: &mut S) {
                $( $crate::fingerprint::Fingerprint::fingerprint(&self.$field, _out); )*
            }
        }
    };
    (@struct [$($gen:tt)*] [$($full:tt)*] ( $($index:tt),* $(,)? )) => {
        impl<$($gen)*> $crate::fingerprint::Fingerprint for $($full)* {
            #[inline]
            fn fingerprint<S: $crate::fingerprint::Sink + ?Sized>(&self, _out: &mut S) {
                $( $crate::fingerprint::Fingerprint::fingerprint(&self.$index, _out); )*
            }
        }
    };
    (@enum [$($gen:tt)*] [$($full:tt)*] $ty:ident {
        $( $tag:literal => $variant:ident
            $({ $($field:ident),* $(,)? $(; skip $($skip:ident),+)? })?
            $(( $($positional:ident),* $(,)? ))?
        ),* $(,)?
    }) => {
        impl<$($gen)*> $crate::fingerprint::Fingerprint for $($full)* {
            fn fingerprint<S: $crate::fingerprint::Sink + ?Sized>(&self, out: &mut S) {
                match self {
                    $(
                        $ty::$variant $({ $($field,)* $($($skip: _,)+)? })? $(( $($positional),* ))? => {
                            $crate::fingerprint::tag(out, $tag);
                            $($( $crate::fingerprint::Fingerprint::fingerprint($field, out); )*)?
                            $($( $crate::fingerprint::Fingerprint::fingerprint($positional, out); )*)?
                        }
                    )*
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Point {
        x: i64,
        y: i64,
    }
    struct Wrapper(u64, String);
    enum Shape {
        Dot,
        Circle { centre: Point, radius: u32 },
        Pair(Point, Point),
    }
    crate::impl_fingerprint!(struct Point { x, y });
    crate::impl_fingerprint!(struct Wrapper(0, 1));
    crate::impl_fingerprint!(enum Shape {
        0 => Dot,
        7 => Circle { centre, radius },
        2 => Pair(a, b),
    });

    /// Golden bytes: any change to the encoding fails this test. If the change is
    /// intended, bump [`VERSION`] and update the bytes here and in the module docs.
    #[test]
    fn the_encoding_is_fixed() {
        assert_eq!(VERSION, 1);
        assert_eq!(encode(&0x0102_0304_0506_0708u64), [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(
            encode(&3usize),
            [3, 0, 0, 0, 0, 0, 0, 0],
            "8 bytes on every target"
        );
        assert_eq!(
            encode(&-2isize),
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(encode(&0x0102u16), [2, 1]);
        assert_eq!(encode(&-1i32), [0xff; 4]);
        assert_eq!(encode(&true), [1]);
        assert_eq!(encode(&false), [0]);
        assert_eq!(encode(&1.5f64), 1.5f64.to_bits().to_le_bytes());
        assert_eq!(encode(&1.5f64), [0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);
        assert_eq!(encode(&()), [0u8; 0]);
        assert_eq!(encode("ab"), [2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']);
        assert_eq!(encode(&String::from("ab")), encode("ab"));
        assert_eq!(
            encode(&Duration::from_micros(1)),
            [0xe8, 3, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(encode(&None::<u8>), [0]);
        assert_eq!(encode(&Some(5u8)), [1, 5]);
        assert_eq!(encode(&vec![1u16, 2]), [2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0]);
        assert_eq!(encode(&(1u8, 2u32)), [1, 2, 0, 0, 0]);
        let map: BTreeMap<u8, bool> = [(2, true), (1, false)].into();
        assert_eq!(encode(&map), [2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 1]);
        assert_eq!(encode(&Arc::new(7u8)), [7]);

        assert_eq!(encode(&Wrapper(1, "x".into())), {
            let mut b = vec![1, 0, 0, 0, 0, 0, 0, 0];
            b.extend([1, 0, 0, 0, 0, 0, 0, 0, b'x']);
            b
        });
        assert_eq!(encode(&Shape::Dot), [0, 0, 0, 0]);
        let circle = Shape::Circle {
            centre: Point { x: 1, y: -1 },
            radius: 2,
        };
        assert_eq!(
            encode(&circle),
            [
                7, 0, 0, 0, // tag
                1, 0, 0, 0, 0, 0, 0, 0, // x
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // y
                2, 0, 0, 0, // radius
            ]
        );
        let pair = Shape::Pair(Point { x: 0, y: 0 }, Point { x: 0, y: 1 });
        assert_eq!(encode(&pair)[..4], [2, 0, 0, 0]);
        assert_eq!(encode(&pair).len(), 4 + 32);
    }

    /// FNV-1a's published test vectors.
    #[test]
    fn fnv_is_fnv_1a_64() {
        let hash = |bytes: &[u8]| {
            let mut h = Fnv::default();
            h.write(bytes);
            h.finish()
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
