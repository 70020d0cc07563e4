//! What a job may ask of the ingest: its query options, checked here, and the
//! clearance they need.

use cim_core::catalogue::Classification;

use crate::{ApiError, AppState};

use super::*;

/// What a job's query may carry besides its options.
const JOB_PARAMETERS: [&str; 3] = ["layer", "filename", "access_token"];

/// Options a job passes on to `cim-ingest` (query name; the flag is `--` and the
/// name with '-' for '_'), how each value is checked here (the ingest checks it in
/// full), and whether it may repeat.
const JOB_OPTIONS: [(&str, OptionValue, bool); 19] = [
    ("classification", OptionValue::Classification, false),
    ("owner", OptionValue::Text, false),
    ("update_cycle", OptionValue::Text, false),
    ("src_crs", OptionValue::Text, false),
    ("anchor", OptionValue::Numbers(3, 4), false),
    ("height_attr", OptionValue::Text, false),
    ("default_height", OptionValue::Numbers(1, 1), false),
    ("min_zoom", OptionValue::Count, false),
    ("max_zoom", OptionValue::Count, false),
    ("max_tiles_per_zoom", OptionValue::Count, false),
    ("max_tile_kb", OptionValue::Count, false),
    ("max_tile_features", OptionValue::Count, false),
    ("max_tileset_kb", OptionValue::Count, false),
    ("terrain_error", OptionValue::Numbers(1, 1), false),
    ("keep_versions", OptionValue::Count, false),
    ("ground", OptionValue::Layer, false),
    ("protect", OptionValue::Rule, true),
    ("coarsen", OptionValue::Coarsen, false),
    ("declassify", OptionValue::Flag, false),
];

#[derive(Debug, Clone, Copy)]
enum OptionValue {
    Classification,
    Text,
    /// Comma-separated finite numbers, between so many and so many.
    Numbers(usize, usize),
    Count,
    /// A published layer the caller may see.
    Layer,
    Rule,
    Coarsen,
    /// `true` or `false`; only `true` is passed on.
    Flag,
}

/// A job's options from its query, every name and value checked; unknown names are
/// refused by name rather than ignored.
pub(super) fn job_options(state: &AppState, params: &[(String, String)]) -> Result<JobOptions, ApiError> {
    let mut options = JobOptions::default();
    let mut seen = std::collections::HashSet::new();
    let unknown: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !JOB_PARAMETERS.contains(k) && !JOB_OPTIONS.iter().any(|(n, _, _)| n == k))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = JOB_OPTIONS.iter().map(|(n, _, _)| *n).collect();
        return Err(ApiError::BadRequest(format!(
            "unknown job option{} {}: a job takes layer, filename and {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown
                .iter()
                .map(|k| format!("'{}'", k.chars().take(40).collect::<String>()))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        )));
    }
    for (key, value) in params {
        let Some(&(name, kind, repeats)) = JOB_OPTIONS.iter().find(|(n, _, _)| n == key) else { continue };
        if !seen.insert(name) && !repeats {
            return Err(ApiError::BadRequest(format!("{name}: given more than once")));
        }
        let bad = |what: &str| ApiError::BadRequest(format!("{name}: {what}"));
        if value.is_empty() || value.len() > 200 || value.chars().any(char::is_control) {
            return Err(bad("1-200 printable characters"));
        }
        match kind {
            OptionValue::Classification => {
                value.parse::<Classification>().map_err(|_| bad("public, internal or restricted"))?;
            }
            OptionValue::Text => {}
            OptionValue::Numbers(least, most) => {
                let numbers: Vec<Option<f64>> = value
                    .split(',')
                    .map(|n| n.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
                    .collect();
                if numbers.iter().any(Option::is_none) || !(least..=most).contains(&numbers.len()) {
                    return Err(bad(&if least == most {
                        "a number".to_owned()
                    } else {
                        format!("{least} to {most} comma-separated numbers")
                    }));
                }
            }
            OptionValue::Count => {
                value.parse::<u32>().map_err(|_| bad("a whole number"))?;
            }
            OptionValue::Layer => {
                // A layer the caller may not see does not exist for it.
                if !crate::layers::valid_layer_name(value)
                    || !state
                        .layers
                        .classification_of(value)
                        .is_some_and(|c| crate::access::current().may_see(c))
                {
                    return Err(bad(&format!("no layer '{}'", value.chars().take(64).collect::<String>())));
                }
            }
            // `none` removes the current version's rules.
            OptionValue::Rule if value == "none" => {}
            OptionValue::Rule => {
                value.parse::<cim_core::catalogue::AttributeRule>().map_err(|e| bad(&e))?;
            }
            OptionValue::Coarsen if value == "none" => {}
            OptionValue::Coarsen => {
                value.parse::<cim_core::catalogue::CoarsenRule>().map_err(|e| bad(&e))?;
            }
            OptionValue::Flag => match value.as_str() {
                "true" => {}
                "false" => continue,
                _ => return Err(bad("true or false")),
            },
        }
        match name {
            "classification" => {
                options.classification = value.parse::<Classification>().ok().map(|c| c.to_string())
            }
            "owner" => options.owner = Some(value.clone()),
            "update_cycle" => options.update_cycle = Some(value.clone()),
            "src_crs" => options.src_crs = Some(value.clone()),
            _ => options.more.push((name.to_owned(), value.clone())),
        }
    }
    Ok(options)
}

/// The classification a job would publish at: the one it gives, else the current
/// version's (a re-ingest inherits it), else public.
pub(super) fn clearance_needed(
    options: &JobOptions,
    current: Option<Classification>,
) -> (Classification, Classification) {
    let set = options
        .classification
        .as_deref()
        .and_then(|c| c.parse::<Classification>().ok())
        .or(current)
        .unwrap_or(Classification::Public);
    (set, current.map_or(set, |c| c.max(set)))
}
