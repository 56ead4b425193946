//! What the drill tests share.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use serde_json::Value;

/// `v` with every `"drill": true` turned into `false`; fails if any is missing or false.
pub fn undrilled(mut v: Value, marked: &mut usize) -> Value {
    fn walk(v: &mut Value, marked: &mut usize) {
        match v {
            Value::Object(m) => {
                if let Some(d) = m.get_mut("drill") {
                    assert_eq!(*d, Value::Bool(true), "an unmarked drill record");
                    *d = Value::Bool(false);
                    *marked += 1;
                }
                for x in m.values_mut() {
                    walk(x, marked);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, marked)),
            _ => {}
        }
    }
    walk(&mut v, marked);
    v
}
