//! Keeping secrets out of what Ferry shows. Jobs keep what they need to run — a remote
//! import keeps its URL, password included, since the fetch needs it — but whatever shows
//! a job (the admin CLI, the job API, a log line) shows it through these functions.

use std::borrow::Cow;

use serde_json::Value;

/// What a password is shown as.
const MASK: &str = "***";

/// `text` with the password of every `scheme://user:password@host` in it replaced by `***`
/// (the user stays: it says which account was used).
pub fn url_passwords(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // the authority ends where a path, query, fragment or the surrounding text begins
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '(' | ')') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rsplit_once('@').and_then(|(userinfo, host)| Some((userinfo.split_once(':')?, host))) {
            Some(((user, _password), host)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
                out.push('@');
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `value` with [`url_passwords`] applied to every string in it.
pub fn json_url_passwords(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(url_passwords(s).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(json_url_passwords).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), json_url_passwords(v))).collect()),
        other => other.clone(),
    }
}

/// For `#[serde(serialize_with)]` on a JSON field that may hold URLs.
pub fn serialize_json<S: serde::Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&json_url_passwords(value), serializer)
}

/// For `#[serde(serialize_with)]` on an optional text field that may hold URLs.
pub fn serialize_text<S: serde::Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&value.as_deref().map(url_passwords), serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_and_users_stay() {
        for (text, shown) in [
            ("http://alice:pw@h/x", "http://alice:***@h/x"),
            ("https://a:p%40ss@h:81/x?y=http://b:q@i", "https://a:***@h:81/x?y=http://b:***@i"),
            ("fetching (http://u:p@10.0.0.1) failed", "fetching (http://u:***@10.0.0.1) failed"),
            ("http://u:p:q@h", "http://u:***@h"),
            ("http://u@h/x", "http://u@h/x"),
            ("http://h/a@b", "http://h/a@b"),
            ("mailto:a@b", "mailto:a@b"),
            ("no url", "no url"),
            ("http://u:pw@", "http://u:***@"),
        ] {
            assert_eq!(url_passwords(text), shown, "{text}");
        }
    }

    #[test]
    fn every_string_of_a_json_value_is_redacted() {
        let value = serde_json::json!({"url": "http://u:pw@h/", "list": ["ftp://a:b@c"], "n": 1});
        let shown = json_url_passwords(&value);
        assert_eq!(shown, serde_json::json!({"url": "http://u:***@h/", "list": ["ftp://a:***@c"], "n": 1}));
    }
}
