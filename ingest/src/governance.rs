//! A re-ingest keeps the governance of the version it replaces: classification,
//! owner, update cycle, `--protect` and `--coarsen` rules that the run does not give
//! are inherited, and a run that would lower any of them (a lower classification, a
//! rule dropped or weakened) is refused unless it says `--declassify`. What changed
//! is appended to the catalogue's governance history, the lineage of who may see
//! what.

use std::path::Path;

use cim_core::catalogue::{
    AttributeRule, CATALOGUE_FILE, CatalogueEntry, Classification, CoarsenRule, GovernanceChange, RuleAction,
};

use crate::IngestError;

/// The governance a run asks for; `None` where it gives nothing.
#[derive(Debug, Clone, Default)]
pub struct Requested {
    pub classification: Option<Classification>,
    pub owner: Option<String>,
    pub update_cycle: Option<String>,
    /// `Some(rules)` replaces the set (`Some(vec![])`: `--protect none`).
    pub attribute_rules: Option<Vec<AttributeRule>>,
    /// `Some(None)`: `--coarsen none`.
    pub coarsen: Option<Option<CoarsenRule>>,
    /// Lowering is allowed (and recorded as such).
    pub declassify: bool,
}

/// The governance the new version gets, and what the run should say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub classification: Classification,
    pub owner: Option<String>,
    pub update_cycle: Option<String>,
    pub attribute_rules: Vec<AttributeRule>,
    pub coarsen: Option<CoarsenRule>,
    /// The history to write: the current version's, plus this run's change if any.
    pub history: Vec<GovernanceChange>,
    /// What was inherited, for the run to print ("classification restricted", ...).
    pub inherited: Vec<String>,
}

/// The current version's catalogue, if the layer is published.
fn current(store: &Path, layer: &str) -> Result<Option<CatalogueEntry>, IngestError> {
    let path = store.join(layer).join(CATALOGUE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IngestError::store(&path, e)),
    };
    // Unreadable governance must not become "none": refuse rather than declassify.
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        IngestError::source(&path, format!("cannot read the current version's governance to inherit it: {e}"))
    })
}

fn action_rank(a: RuleAction) -> u8 {
    // What a caller below the clearance learns: nothing, a pseudonym, a mask.
    match a {
        RuleAction::Drop => 2,
        RuleAction::Hash => 1,
        RuleAction::Mask => 1,
    }
}

fn rule_text(r: &AttributeRule) -> String {
    let action = match r.action {
        RuleAction::Drop => "drop",
        RuleAction::Mask => "mask",
        RuleAction::Hash => "hash",
    };
    format!("{}:{action}:{}", r.attribute, r.clearance)
}

fn coarsen_text(c: Option<CoarsenRule>) -> String {
    c.map_or_else(|| "none".to_owned(), |c| format!("{}:{}", c.metres, c.clearance))
}

/// Resolves a run's governance against the layer's current version, before any
/// work; `at` is the run's time, for the history (whose new entry gets its version
/// when published: [`crate::run::LayerRun::finish`]).
pub fn resolve(store: &Path, layer: &str, requested: &Requested, at: &str) -> Result<Resolved, IngestError> {
    let current = current(store, layer)?;
    let mut inherited = Vec::new();
    let mut lowered = Vec::new();
    let mut changes = Vec::new();
    let was = current.as_ref();

    let classification = match (requested.classification, was) {
        (Some(c), Some(w)) => {
            if c < w.classification {
                lowered.push(format!("classification {} -> {c}", w.classification));
            } else if c != w.classification {
                changes.push(format!("classification {} -> {c}", w.classification));
            }
            c
        }
        (Some(c), None) => c,
        (None, Some(w)) => {
            inherited.push(format!("classification {}", w.classification));
            w.classification
        }
        (None, None) => Classification::Public,
    };
    let mut text = |given: &Option<String>, was: Option<&Option<String>>, what: &str| match (given, was) {
        (Some(v), _) => Some(v.clone()),
        (None, Some(Some(w))) => {
            inherited.push(format!("{what} '{w}'"));
            Some(w.clone())
        }
        (None, _) => None,
    };
    let owner = text(&requested.owner, was.map(|w| &w.owner), "owner");
    let update_cycle = text(&requested.update_cycle, was.map(|w| &w.update_cycle), "update cycle");

    let attribute_rules = match (&requested.attribute_rules, was) {
        (Some(rules), Some(w)) => {
            for old in &w.attribute_rules {
                let kept = rules.iter().any(|new| {
                    new.attribute == old.attribute
                        && new.clearance >= old.clearance
                        && action_rank(new.action) >= action_rank(old.action)
                });
                if !kept {
                    let now = rules.iter().find(|n| n.attribute == old.attribute);
                    lowered.push(format!(
                        "--protect {} -> {}",
                        rule_text(old),
                        now.map_or_else(|| "dropped".to_owned(), rule_text)
                    ));
                }
            }
            for new in rules.iter().filter(|n| !w.attribute_rules.contains(n)) {
                changes.push(format!("--protect {}", rule_text(new)));
            }
            rules.clone()
        }
        (Some(rules), None) => rules.clone(),
        (None, Some(w)) => {
            if !w.attribute_rules.is_empty() {
                inherited.push(format!(
                    "--protect {}",
                    w.attribute_rules.iter().map(rule_text).collect::<Vec<_>>().join(" ")
                ));
            }
            w.attribute_rules.clone()
        }
        (None, None) => Vec::new(),
    };
    let coarsen = match (requested.coarsen, was) {
        (Some(new), Some(w)) => {
            let weaker = match (new, w.coarsen) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(n), Some(o)) => n.metres < o.metres || n.clearance < o.clearance,
            };
            if weaker {
                lowered.push(format!("--coarsen {} -> {}", coarsen_text(w.coarsen), coarsen_text(new)));
            } else if new != w.coarsen {
                changes.push(format!("--coarsen {} -> {}", coarsen_text(w.coarsen), coarsen_text(new)));
            }
            new
        }
        (Some(new), None) => new,
        (None, Some(w)) => {
            if w.coarsen.is_some() {
                inherited.push(format!("--coarsen {}", coarsen_text(w.coarsen)));
            }
            w.coarsen
        }
        (None, None) => None,
    };

    if !lowered.is_empty() && !requested.declassify {
        return Err(IngestError::source(
            &store.join(layer),
            format!(
                "this run would lower the governance of the published layer ({}); pass --declassify to do so \
                 (recorded in the catalogue), or give the current values",
                lowered.join("; ")
            ),
        ));
    }
    let mut history = was.map(|w| w.governance_history.clone()).unwrap_or_default();
    if !lowered.is_empty() || !changes.is_empty() {
        history.push(GovernanceChange {
            version: String::new(),
            at: at.to_owned(),
            from_version: was.map(|w| w.version.clone()),
            declassified: !lowered.is_empty(),
            changes: lowered.into_iter().chain(changes).collect(),
        });
    }
    Ok(Resolved { classification, owner, update_cycle, attribute_rules, coarsen, history, inherited })
}
