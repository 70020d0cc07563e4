//! Host paths kept from callers below admin: where the ingest host keeps its files
//! tells an outsider about the machine, not about the data.

use serde_json::Value;

/// `text` with every absolute path in it (a word starting with `/`, as ingest
/// messages and lineage carry them) cut to its last component: a file name.
pub fn without_directories(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('/') {
        let starts_word =
            rest[..at].chars().next_back().is_none_or(|c| c.is_whitespace() || "'\"(=[{<,`".contains(c));
        if !starts_word {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            continue;
        }
        out.push_str(&rest[..at]);
        // A quoted path runs to its closing quote, spaces and all.
        let end = match rest[..at].chars().next_back().filter(|c| "'\"`".contains(*c)) {
            Some(quote) => rest[at..].find(quote),
            None => rest[at..].find(|c: char| c.is_whitespace() || "'\"`)]>,".contains(c)),
        }
        .map_or(rest.len(), |e| at + e);
        let word = &rest[at..end];
        out.push_str(word.rsplit('/').next().unwrap_or_default());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Every string in a JSON document passed through [`without_directories`].
pub fn scrub(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('/') => *s = without_directories(s),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_become_file_names_and_other_slashes_stay() {
        assert_eq!(
            without_directories("/srv/cim/.jobs/uploads/3/roads.geojson: feature 12: ring not closed"),
            "roads.geojson: feature 12: ring not closed"
        );
        assert_eq!(
            without_directories("layer x from '/home/survey/drop 2/a.las' (EPSG:2056) and /tmp/b.laz"),
            "layer x from 'a.las' (EPSG:2056) and b.laz"
        );
        assert_eq!(without_directories("2 m/s and 1/2"), "2 m/s and 1/2");
        assert_eq!(without_directories("see /3dtiles"), "see 3dtiles");
        let mut doc = serde_json::json!({"sources": [{"path": "/data/in/x.gpkg"}], "n": 1});
        scrub(&mut doc);
        assert_eq!(doc["sources"][0]["path"], "x.gpkg");
    }
}
