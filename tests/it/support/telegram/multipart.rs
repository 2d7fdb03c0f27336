//! Reads a `multipart/form-data` body as teloxide's `reqwest` builds it: text parts (numbers, strings, JSON
//! for nested values) and file parts (with a `filename`) referenced from text as `attach://{part name}`.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// An uploaded file part.
pub(super) struct Upload {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

impl Upload {
    /// How a call records this file: `{"file_name", "len", "sha256"}`.
    pub fn describe(&self) -> Value {
        json!({
            "file_name": self.file_name,
            "len": self.bytes.len(),
            "sha256": hex::encode(Sha256::digest(&self.bytes)),
        })
    }
}

/// A form's text fields and its uploads (by part name).
pub(super) struct Form {
    pub fields: Map<String, Value>,
    pub uploads: HashMap<String, Upload>,
}

impl Form {
    /// The fields with every `attach://x` replaced by upload `x`'s description, and uploads nobody references
    /// added under their own part names.
    pub fn recorded(&self) -> Value {
        let mut used = HashSet::new();
        let mut fields = match self.resolve(&Value::Object(self.fields.clone()), &mut used) {
            Value::Object(map) => map,
            _ => unreachable!("an object resolves to an object"),
        };
        for (name, upload) in &self.uploads {
            if !used.contains(name) {
                fields.insert(name.clone(), upload.describe());
            }
        }
        Value::Object(fields)
    }

    fn resolve(&self, value: &Value, used: &mut HashSet<String>) -> Value {
        match value {
            Value::String(s) => match s.strip_prefix("attach://").and_then(|n| self.uploads.get_key_value(n)) {
                Some((name, upload)) => {
                    used.insert(name.clone());
                    upload.describe()
                }
                None => value.clone(),
            },
            Value::Array(items) => Value::Array(items.iter().map(|v| self.resolve(v, used)).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), self.resolve(v, used))).collect()),
            _ => value.clone(),
        }
    }

    /// The upload a field value (`attach://x`) points to.
    pub fn upload(&self, value: &Value) -> Option<&Upload> {
        self.uploads.get(value.as_str()?.strip_prefix("attach://")?)
    }
}

/// A form text value: JSON when it parses as JSON (numbers, booleans, arrays, objects), else the string.
pub(super) fn text_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Parses a body of this `Content-Type` (`multipart/form-data; boundary=…`).
pub(super) fn parse(content_type: &str, body: &[u8]) -> Result<Form, String> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .ok_or("multipart without a boundary")?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let next_part = format!("\r\n{delimiter}");
    let start = find(body, delimiter.as_bytes()).ok_or("no opening boundary")?;
    let mut rest = &body[start + delimiter.len()..];
    let mut form = Form { fields: Map::new(), uploads: HashMap::new() };
    while !rest.starts_with(b"--") {
        rest = rest.strip_prefix(b"\r\n").ok_or("no line break after a boundary")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("part headers without an end")?;
        let headers = std::str::from_utf8(&rest[..head_end]).map_err(|e| format!("part headers: {e}"))?;
        rest = &rest[head_end + 4..];
        let end = find(rest, next_part.as_bytes()).ok_or("a part without a closing boundary")?;
        let data = &rest[..end];
        rest = &rest[end + next_part.len()..];

        let disposition = headers
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition")))
            .map(|(_, v)| v.trim())
            .ok_or("a part without Content-Disposition")?;
        let name = param(disposition, "name").ok_or("a part without a name")?;
        match param(disposition, "filename") {
            Some(file_name) => {
                form.uploads.insert(name, Upload { file_name, bytes: data.to_vec() });
            }
            None => {
                let text = String::from_utf8(data.to_vec()).map_err(|e| format!("text part {name}: {e}"))?;
                form.fields.insert(name, text_value(&text));
            }
        }
    }
    Ok(form)
}

/// A quoted parameter of a `Content-Disposition` value: `key="value"` (with `\"` and `\\` escapes).
fn param(disposition: &str, key: &str) -> Option<String> {
    let needle = format!("{key}=\"");
    let mut from = 0;
    let at = loop {
        let at = from + disposition[from..].find(&needle)?;
        // `name=` must not match inside `filename=`
        if at == 0 || matches!(disposition.as_bytes()[at - 1], b' ' | b';') {
            break at + needle.len();
        }
        from = at + needle.len();
    };
    let mut value = String::new();
    let mut chars = disposition[at..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
