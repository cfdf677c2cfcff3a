//! A JSON value as block-style YAML (for `vane pipeline render`). Every scalar is written as
//! JSON, which YAML reads back unchanged (strings double-quoted), so no YAML quoting rules are
//! needed; maps and lists use block style so the output reads like a hand-written manifest.

use serde_json::Value;

/// `v` as a YAML document.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    block(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        Value::Array(_) | Value::Object(_) => None,
        other => Some(other.to_string()),
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

/// Writes `v` (a map or list) at `indent`, one entry per line.
fn block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match scalar(x) {
                    Some(s) => out.push_str(&format!("{pad}{}: {s}\n", key(k))),
                    None => {
                        out.push_str(&format!("{pad}{}:\n", key(k)));
                        // Lists under a key sit at the key's indentation, as kubectl writes them.
                        let inner = if x.is_array() { indent } else { indent + 2 };
                        block(x, inner, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            for x in items {
                match scalar(x) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        // The item's first line follows the dash; the rest align under it.
                        let mut item = String::new();
                        block(x, indent + 2, &mut item);
                        let item = item.trim_start_matches(' ');
                        out.push_str(&format!("{pad}- {item}"));
                    }
                }
            }
        }
        other => out.push_str(&format!("{pad}{other}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_style_reads_back() {
        let v = json!({
            "kind": "Workflow",
            "spec": {
                "steps": [[{"name": "a", "when": "{{x}} == 0"}], []],
                "args": ["it's", "two words", 3, true, null],
                "empty": {},
                "weird key": "v: 1 # not a comment",
            }
        });
        let y = to_yaml(&v);
        assert!(
            y.contains("  steps:\n  - - name: \"a\"\n      when: \"{{x}} == 0\"\n  - []\n"),
            "{y}"
        );
        assert!(
            y.contains("  \"weird key\": \"v: 1 # not a comment\"\n"),
            "{y}"
        );
        // Python's YAML loader (the CI validator) reads it back; here, a structural check.
        assert_eq!(y.matches("- ").count(), 8, "{y}");
    }
}
