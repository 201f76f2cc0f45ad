//! Join operators, one file per kind, and the joiner shapes they share.

pub(crate) mod foreign_key;
pub(crate) mod stream_global;
pub(crate) mod stream_stream;
pub(crate) mod stream_table;
pub(crate) mod table_table;

use std::sync::Arc;

/// Joins two present values.
pub(crate) type InnerFn<V1, V2, VR> = Arc<dyn Fn(&V1, &V2) -> VR + Send + Sync>;
/// Joins a left value with a right one that may be missing.
pub(crate) type LeftFn<V1, V2, VR> = Arc<dyn Fn(&V1, Option<&V2>) -> VR + Send + Sync>;
/// Joins values either of which may be missing.
pub(crate) type OuterFn<V1, V2, VR> = Arc<dyn Fn(Option<&V1>, Option<&V2>) -> VR + Send + Sync>;

/// A value joiner in one of three shapes; the shape is the join's kind. Inner joins only ever
/// see both values, left joins may lack the right one, outer joins either (never both).
pub(crate) enum Joiner<V1, V2, VR> {
    Inner(InnerFn<V1, V2, VR>),
    Left(LeftFn<V1, V2, VR>),
    Outer(OuterFn<V1, V2, VR>),
}

impl<V1, V2, VR> Clone for Joiner<V1, V2, VR> {
    fn clone(&self) -> Self {
        match self {
            Joiner::Inner(f) => Joiner::Inner(f.clone()),
            Joiner::Left(f) => Joiner::Left(f.clone()),
            Joiner::Outer(f) => Joiner::Outer(f.clone()),
        }
    }
}

impl<V1, V2, VR> Joiner<V1, V2, VR> {
    /// The result for two partners.
    pub fn both(&self, left: &V1, right: &V2) -> VR {
        match self {
            Joiner::Inner(f) => f(left, right),
            Joiner::Left(f) => f(left, Some(right)),
            Joiner::Outer(f) => f(Some(left), Some(right)),
        }
    }

    /// The result for a left value without a partner, if this kind of join has one.
    pub fn left_only(&self, left: &V1) -> Option<VR> {
        match self {
            Joiner::Inner(_) => None,
            Joiner::Left(f) => Some(f(left, None)),
            Joiner::Outer(f) => Some(f(Some(left), None)),
        }
    }

    /// The result for a right value without a partner (outer joins only).
    pub fn right_only(&self, right: &V2) -> Option<VR> {
        match self {
            Joiner::Outer(f) => Some(f(None, Some(right))),
            _ => None,
        }
    }

    /// Whether unmatched left records produce a result.
    pub fn keeps_left(&self) -> bool {
        !matches!(self, Joiner::Inner(_))
    }

    /// Whether unmatched right records produce a result.
    pub fn keeps_right(&self) -> bool {
        matches!(self, Joiner::Outer(_))
    }
}
