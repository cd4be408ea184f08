//! Application data carried by `message`: opaque JSON that the server routes but never reads.
//!
//! A room message fans out to every member. Holding it as parsed JSON would mean one deep copy
//! per member on the media thread; a [`Payload`] is the JSON text behind a reference count, so a
//! copy is a pointer bump, and each member's signalling task writes the same text out verbatim.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON value kept as its text. Cloning shares the text.
#[derive(Clone)]
pub struct Payload(Arc<RawValue>);

impl Payload {
    /// The JSON text, exactly as it will be written out.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Bytes of JSON text (what rate limits count).
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }

    /// A payload from a JSON value.
    pub fn from_value(value: &serde_json::Value) -> Payload {
        let raw = serde_json::value::to_raw_value(value)
            .expect("a JSON value always serializes (its keys are strings)");
        Payload(Arc::from(raw))
    }

    /// A payload from JSON text; fails when the text is not one JSON value.
    pub fn from_json_text(text: String) -> Result<Payload, serde_json::Error> {
        RawValue::from_string(text).map(|raw| Payload(Arc::from(raw)))
    }

    /// JSON `null`.
    pub fn null() -> Payload {
        Payload::from_value(&serde_json::Value::Null)
    }

    /// The payload parsed as a JSON value (for tests and clients that want to look inside).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.json()).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({})", self.json())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for Payload {}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        Payload::from_value(&value)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // serde_json writes a `RawValue` verbatim.
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Inside an internally tagged enum serde buffers the fields, and a `RawValue` cannot be
        // read from that buffer; go through a `Value` (this runs in the signalling task, once per
        // message, never on the media thread).
        let value = serde_json::Value::deserialize(deserializer)?;
        let text = serde_json::to_string(&value).map_err(serde::de::Error::custom)?;
        Payload::from_json_text(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_inside_a_tagged_message() {
        let msg: crate::ClientMessage =
            serde_json::from_str(r#"{"type":"message","data":{"a":[1,2,{"b":null}]},"to":"x"}"#)
                .expect("parses");
        let crate::ClientMessage::Message { data, to } = msg else {
            panic!("a message");
        };
        assert_eq!(data.json(), r#"{"a":[1,2,{"b":null}]}"#);
        assert_eq!(to.as_deref(), Some("x"));
        let out = crate::ServerMessage::Message {
            from: Some("p".into()),
            data: data.clone(),
        };
        assert_eq!(
            serde_json::to_string(&out).expect("serializes"),
            r#"{"type":"message","from":"p","data":{"a":[1,2,{"b":null}]}}"#
        );
        assert_eq!(
            data,
            Payload::from(serde_json::json!({"a": [1, 2, {"b": null}]}))
        );
        assert_eq!(Payload::null().json(), "null");
    }
}
