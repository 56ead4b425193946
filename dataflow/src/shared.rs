//! [`Shared`]: an immutable value held by reference count inside collections.
//!
//! Arrangements copy their values on every merge of their batches; an alert is a few
//! hundred bytes of strings and lists, so a trace of alerts spent its time cloning them.
//! A `Shared<Alert>` is copied as a pointer, and one alert is held once however many
//! arrangements keep it. It orders, compares and hashes as its value, and is
//! (de)serialized as its value (what serde's `rc` feature does, without turning that
//! feature on for the whole dependency tree).

use std::borrow::Borrow;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable value shared by reference count (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shared<T>(Arc<T>);

// Ordered as the value, with one shortcut: two holders of one value are equal without
// comparing it (arrangements compare an alert with itself whenever its +1 and -1 meet).
// `Arc`'s own equality already takes that shortcut for `Eq` values.
impl<T: Ord> Ord for Shared<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl<T: Ord> PartialOrd for Shared<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Shared<T> {
    /// Shares `value`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }
}

impl<T: Clone> Shared<T> {
    /// The value: moved out when this is its only holder, cloned otherwise.
    pub fn into_inner(self) -> T {
        Arc::unwrap_or_clone(self.0)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Borrow<T> for Shared<T> {
    fn borrow(&self) -> &T {
        &self.0
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.as_ref().serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_serializes_as_its_value() {
        let (a, b) = (Shared::new("a".to_string()), Shared::new("b".to_string()));
        assert!(a < b);
        assert_eq!(a, Shared::new("a".into()));
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"b\"");
        let back: Shared<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.into_inner(), "b");
        let c = a.clone();
        assert_eq!(a.cmp(&c), std::cmp::Ordering::Equal);
        assert!(Shared::new("a".to_string()) < b);
    }
}
