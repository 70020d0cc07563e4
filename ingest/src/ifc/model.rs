//! An IFC file's instances by number, with what every later step asks of them:
//! units, the spatial structure (site / building / storey / space), property sets
//! and quantities per element, openings, and the georeferencing facts.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::IfcError;
use super::step::{Instance, StepHeader, StepReader, StepValue};

pub struct IfcModel {
    pub header: StepHeader,
    instances: HashMap<u64, Instance>,
    by_class: HashMap<Arc<str>, Vec<u64>>,
    /// Metres per model length unit.
    pub length_unit: f64,
    /// Radians per model plane-angle unit.
    pub angle_unit: f64,
    /// Child → parent through `IfcRelAggregates`, element → structure through
    /// `IfcRelContainedInSpatialStructure`.
    parent: HashMap<u64, u64>,
    /// Wholes a part is aggregated into besides its first (IFC allows one; a second
    /// is kept only to find the loops it makes).
    other_parents: Vec<(u64, u64)>,
    /// Property definitions attached to each object (occurrence first, then type).
    definitions: HashMap<u64, Vec<u64>>,
    /// Openings cut into each element (`IfcRelVoidsElement`).
    pub openings: HashMap<u64, Vec<u64>>,
    /// References to instances the file does not define, as messages naming the
    /// line and instance. Real exports carry a few (in type objects, mostly); what
    /// depends on one fails on its own, naming it.
    pub dangling: Vec<String>,
}

/// How deep a chain (placements, aggregation, nested items) may go before it is
/// taken for a reference cycle.
pub const MAX_CHAIN: usize = 256;

impl IfcModel {
    /// Reads a whole file; `progress` gets the number of instances read so far.
    pub fn read(input: impl BufRead, mut progress: impl FnMut(u64)) -> Result<Self, IfcError> {
        let mut reader = StepReader::new(input);
        let header = reader.header()?;
        let mut instances = HashMap::new();
        let mut by_class: HashMap<Arc<str>, Vec<u64>> = HashMap::new();
        while let Some(instance) = reader.next_instance()? {
            if let Some(previous) = instances.get(&instance.id) {
                let previous: &Instance = previous;
                return Err(IfcError::Malformed(format!(
                    "line {}: #{} is defined twice (first on line {})",
                    instance.line, instance.id, previous.line
                )));
            }
            by_class.entry(instance.class.clone()).or_default().push(instance.id);
            instances.insert(instance.id, instance);
            if instances.len() % 4096 == 0 {
                progress(instances.len() as u64);
            }
        }
        progress(instances.len() as u64);
        for ids in by_class.values_mut() {
            ids.sort_unstable();
        }
        let mut model = Self {
            header,
            instances,
            by_class,
            length_unit: 1.0,
            angle_unit: 1.0,
            parent: HashMap::new(),
            other_parents: Vec::new(),
            definitions: HashMap::new(),
            openings: HashMap::new(),
            dangling: Vec::new(),
        };
        model.dangling = model.dangling_references();
        model.read_units()?;
        model.read_relations();
        model.check_structure()?;
        Ok(model)
    }

    /// Every `#n` that names no instance of the file.
    fn dangling_references(&self) -> Vec<String> {
        fn walk(v: &StepValue, found: &mut impl FnMut(u64) -> bool) -> bool {
            match v {
                StepValue::Ref(r) => found(*r),
                StepValue::List(l) => l.iter().all(|v| walk(v, found)),
                StepValue::Typed(_, v) => walk(v, found),
                _ => true,
            }
        }
        let mut ids: Vec<&u64> = self.instances.keys().collect();
        ids.sort_unstable();
        let mut found = Vec::new();
        for id in ids {
            let instance = &self.instances[id];
            let mut missing = None;
            for a in &instance.attributes {
                if !walk(a, &mut |r| {
                    let ok = self.instances.contains_key(&r);
                    if !ok {
                        missing = Some(r);
                    }
                    ok
                }) {
                    break;
                }
            }
            if let Some(r) = missing {
                found.push(format!(
                    "line {}, #{id} ({}): refers to #{r}, which the file does not define",
                    instance.line, instance.class
                ));
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    pub fn schema(&self) -> &str {
        self.header.schemas.first().map_or("", String::as_str)
    }

    /// The instance `#id`; references were checked on read, so a miss here is a
    /// reference to something of the wrong kind made by the caller.
    pub fn get(&self, id: u64) -> Result<&Instance, IfcError> {
        self.instances.get(&id).ok_or_else(|| IfcError::Malformed(format!("#{id} does not exist")))
    }

    pub fn class_of(&self, id: u64) -> Option<&str> {
        self.instances.get(&id).map(|i| &*i.class)
    }

    /// Instance numbers of one class (upper-case name), ascending.
    pub fn ids_of(&self, class: &str) -> &[u64] {
        self.by_class.get(class).map_or(&[], Vec::as_slice)
    }

    /// Every instance number, ascending.
    pub fn all_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.instances.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Instance counts per class, for the quality report.
    pub fn class_counts(&self) -> BTreeMap<String, u64> {
        self.by_class.iter().map(|(c, ids)| (c.to_string(), ids.len() as u64)).collect()
    }

    pub fn attribute<'a>(&'a self, instance: &'a Instance, index: usize) -> &'a StepValue {
        instance.attributes.get(index).unwrap_or(&StepValue::Null)
    }

    /// The instance an attribute refers to, if it does.
    pub fn follow(&self, instance: &Instance, index: usize) -> Option<&Instance> {
        self.attribute(instance, index).as_ref().and_then(|r| self.instances.get(&r))
    }

    /// The instances a list attribute refers to.
    pub fn follow_list<'a>(
        &'a self,
        instance: &'a Instance,
        index: usize,
    ) -> impl Iterator<Item = &'a Instance> {
        self.attribute(instance, index)
            .as_list()
            .unwrap_or(&[])
            .iter()
            .filter_map(|v| v.as_ref().and_then(|r| self.instances.get(&r)))
    }

    fn read_units(&mut self) -> Result<(), IfcError> {
        let Some(&project) = self.ids_of("IFCPROJECT").first() else {
            return Err(IfcError::Malformed("no IfcProject (not an IFC model?)".into()));
        };
        let project = self.get(project)?;
        let mut length = None;
        let mut angle = None;
        if let Some(assignment) = self.follow(project, 8) {
            for unit in self.follow_list(assignment, 0) {
                let kind = self.attribute(unit, 1).as_enum().unwrap_or("");
                let factor = self.unit_factor(unit, 0);
                match (kind, factor) {
                    ("LENGTHUNIT", Some(f)) => length = Some(f),
                    ("PLANEANGLEUNIT", Some(f)) => angle = Some(f),
                    _ => {}
                }
            }
        }
        self.length_unit = length.unwrap_or(1.0);
        self.angle_unit = angle.unwrap_or(1.0);
        Ok(())
    }

    /// SI factor of an `IfcSIUnit` or `IfcConversionBasedUnit`.
    fn unit_factor(&self, unit: &Instance, depth: usize) -> Option<f64> {
        if depth > 8 {
            return None;
        }
        match &*unit.class {
            "IFCSIUNIT" => {
                let prefix = match self.attribute(unit, 2).as_enum() {
                    None => 1.0,
                    Some("MILLI") => 1e-3,
                    Some("CENTI") => 1e-2,
                    Some("DECI") => 1e-1,
                    Some("KILO") => 1e3,
                    Some("MICRO") => 1e-6,
                    Some(_) => return None,
                };
                Some(prefix)
            }
            "IFCCONVERSIONBASEDUNIT" | "IFCCONVERSIONBASEDUNITWITHOFFSET" => {
                let measure = self.follow(unit, 3)?;
                let value = self.attribute(measure, 0).as_f64()?;
                let base =
                    self.follow(measure, 1).and_then(|u| self.unit_factor(u, depth + 1)).unwrap_or(1.0);
                Some(value * base)
            }
            _ => None,
        }
    }

    fn read_relations(&mut self) {
        let mut parent = HashMap::new();
        // Every aggregation, a part's second whole included: a loop may close there.
        let mut extra_parents: Vec<(u64, u64)> = Vec::new();
        let mut definitions: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut type_definitions: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut openings: HashMap<u64, Vec<u64>> = HashMap::new();
        let refs = |v: &StepValue| -> Vec<u64> {
            match v {
                StepValue::Ref(r) => vec![*r],
                StepValue::List(l) => l.iter().filter_map(StepValue::as_ref).collect(),
                _ => Vec::new(),
            }
        };
        for &id in self.ids_of("IFCRELAGGREGATES").iter().chain(self.ids_of("IFCRELNESTS")) {
            let rel = &self.instances[&id];
            if let Some(whole) = self.attribute(rel, 4).as_ref() {
                for part in refs(self.attribute(rel, 5)) {
                    parent.entry(part).or_insert(whole);
                    extra_parents.push((part, whole));
                }
            }
        }
        for &id in self.ids_of("IFCRELCONTAINEDINSPATIALSTRUCTURE") {
            let rel = &self.instances[&id];
            if let Some(structure) = self.attribute(rel, 5).as_ref() {
                for element in refs(self.attribute(rel, 4)) {
                    parent.insert(element, structure);
                }
            }
        }
        for &id in self.ids_of("IFCRELDEFINESBYPROPERTIES") {
            let rel = &self.instances[&id];
            for definition in refs(self.attribute(rel, 5)) {
                for object in refs(self.attribute(rel, 4)) {
                    definitions.entry(object).or_default().push(definition);
                }
            }
        }
        for &id in self.ids_of("IFCRELDEFINESBYTYPE") {
            let rel = &self.instances[&id];
            let Some(kind) = self.attribute(rel, 5).as_ref().and_then(|r| self.instances.get(&r)) else {
                continue;
            };
            let type_sets = refs(self.attribute(kind, 5));
            for object in refs(self.attribute(rel, 4)) {
                type_definitions.entry(object).or_default().extend(type_sets.iter().copied());
            }
        }
        for (object, sets) in type_definitions {
            definitions.entry(object).or_default().extend(sets);
        }
        for &id in self.ids_of("IFCRELVOIDSELEMENT") {
            let rel = &self.instances[&id];
            if let (Some(element), Some(opening)) =
                (self.attribute(rel, 4).as_ref(), self.attribute(rel, 5).as_ref())
            {
                openings.entry(element).or_default().push(opening);
            }
        }
        extra_parents.retain(|(part, whole)| parent.get(part) != Some(whole));
        self.parent = parent;
        self.other_parents = extra_parents;
        self.definitions = definitions;
        self.openings = openings;
    }

    /// The spatial structure must be a tree: a chain of parents that comes back to
    /// where it started would place an element inside itself, whichever of its
    /// relations (a part's second whole included) closes the chain.
    fn check_structure(&self) -> Result<(), IfcError> {
        let mut ups: HashMap<u64, Vec<u64>> = HashMap::new();
        for (&child, &up) in &self.parent {
            ups.entry(child).or_default().push(up);
        }
        for &(child, up) in &self.other_parents {
            ups.entry(child).or_default().push(up);
        }
        // Depth-first over every upward edge: a node met again on the current path
        // closes a loop.
        let mut settled: std::collections::HashSet<u64> = std::collections::HashSet::new();
        let mut starts: Vec<u64> = ups.keys().copied().collect();
        starts.sort_unstable();
        for start in starts {
            if settled.contains(&start) {
                continue;
            }
            let mut path = vec![start];
            let mut next: Vec<usize> = vec![0];
            while let Some(&at) = path.last() {
                let k = next.last().copied().unwrap_or(0);
                let Some(&up) = ups.get(&at).and_then(|u| u.get(k)) else {
                    settled.insert(at);
                    path.pop();
                    next.pop();
                    continue;
                };
                if let Some(n) = next.last_mut() {
                    *n += 1;
                }
                if settled.contains(&up) {
                    continue;
                }
                if let Some(i) = path.iter().position(|&p| p == up) {
                    let cycle: Vec<String> = path[i..]
                        .iter()
                        .chain([&up])
                        .map(|id| {
                            let class = self.class_of(*id).unwrap_or("?");
                            format!("#{id} ({})", super::class_names::display_name(class))
                        })
                        .collect();
                    let line = self.instances.get(&up).map_or(0, |i| i.line);
                    return Err(IfcError::Malformed(format!(
                        "line {line}: the spatial structure (IfcRelAggregates / IfcRelContainedInSpatialStructure) loops: {}",
                        cycle.join(" in ")
                    )));
                }
                path.push(up);
                next.push(0);
            }
        }
        Ok(())
    }

    /// The spatial structure element of a class (e.g. `IFCBUILDINGSTOREY`) that
    /// holds `id`, directly or through its parents.
    pub fn enclosing(&self, id: u64, class: &str) -> Result<Option<u64>, IfcError> {
        let mut at = id;
        for _ in 0..MAX_CHAIN {
            let Some(&up) = self.parent.get(&at) else {
                return Ok(None);
            };
            if self.class_of(up) == Some(class) {
                return Ok(Some(up));
            }
            at = up;
        }
        Err(IfcError::Malformed(format!(
            "#{id}: its spatial structure (IfcRelAggregates / IfcRelContainedInSpatialStructure) loops"
        )))
    }

    /// Property sets and quantity sets of an object: `{set name: {property: value}}`;
    /// occurrence values win over its type's.
    pub fn property_sets(&self, id: u64) -> Map<String, Value> {
        let mut sets = Map::new();
        for &definition in self.definitions.get(&id).map_or(&[][..], Vec::as_slice) {
            let Some(set) = self.instances.get(&definition) else { continue };
            let name = self.attribute(set, 2).as_str().unwrap_or("").to_owned();
            let mut values = Map::new();
            match &*set.class {
                "IFCPROPERTYSET" => {
                    for property in self.follow_list(set, 4) {
                        if let (Some(key), Some(value)) =
                            (self.attribute(property, 0).as_str(), self.property_value(property))
                        {
                            values.insert(key.to_owned(), value);
                        }
                    }
                }
                "IFCELEMENTQUANTITY" => {
                    for quantity in self.follow_list(set, 5) {
                        let key = self.attribute(quantity, 0).as_str();
                        let value = self.attribute(quantity, 3).as_f64();
                        if let (Some(key), Some(value)) = (key, value) {
                            values.insert(key.to_owned(), number(value));
                        }
                    }
                }
                class => {
                    // Predefined property sets: their attributes are the properties.
                    let Some(names) = predefined_property_names(class) else { continue };
                    for (i, key) in names.iter().enumerate() {
                        if let Some(value) = step_to_json(self.attribute(set, 4 + i)) {
                            values.insert((*key).to_owned(), value);
                        }
                    }
                }
            }
            if values.is_empty() {
                continue;
            }
            match sets.get_mut(&name) {
                // The occurrence's set came first; the type only fills gaps.
                Some(Value::Object(existing)) => {
                    for (k, v) in values {
                        existing.entry(k).or_insert(v);
                    }
                }
                _ => {
                    sets.insert(name, Value::Object(values));
                }
            }
        }
        sets
    }

    fn property_value(&self, property: &Instance) -> Option<Value> {
        match &*property.class {
            "IFCPROPERTYSINGLEVALUE" => step_to_json(self.attribute(property, 2)),
            "IFCPROPERTYENUMERATEDVALUE" | "IFCPROPERTYLISTVALUE" => {
                let list = self.attribute(property, 2).as_list()?;
                Some(Value::Array(list.iter().filter_map(step_to_json).collect()))
            }
            "IFCPROPERTYBOUNDEDVALUE" => {
                let mut m = Map::new();
                if let Some(v) = step_to_json(self.attribute(property, 2)) {
                    m.insert("upper".into(), v);
                }
                if let Some(v) = step_to_json(self.attribute(property, 3)) {
                    m.insert("lower".into(), v);
                }
                (!m.is_empty()).then_some(Value::Object(m))
            }
            _ => None,
        }
    }
}

/// Attribute names of the predefined property sets exporters write, after the four
/// `IfcRoot` attributes (IFC4 order; IFC 2x3 stops earlier).
fn predefined_property_names(class: &str) -> Option<&'static [&'static str]> {
    Some(match class {
        "IFCDOORLININGPROPERTIES" => &[
            "LiningDepth",
            "LiningThickness",
            "ThresholdDepth",
            "ThresholdThickness",
            "TransomThickness",
            "TransomOffset",
            "LiningOffset",
            "ThresholdOffset",
            "CasingThickness",
            "CasingDepth",
            "ShapeAspectStyle",
            "LiningToPanelOffsetX",
            "LiningToPanelOffsetY",
        ],
        "IFCDOORPANELPROPERTIES" => {
            &["PanelDepth", "PanelOperation", "PanelWidth", "PanelPosition", "ShapeAspectStyle"]
        }
        "IFCWINDOWLININGPROPERTIES" => &[
            "LiningDepth",
            "LiningThickness",
            "TransomThickness",
            "MullionThickness",
            "FirstTransomOffset",
            "SecondTransomOffset",
            "FirstMullionOffset",
            "SecondMullionOffset",
            "ShapeAspectStyle",
            "LiningOffset",
            "LiningToPanelOffsetX",
            "LiningToPanelOffsetY",
        ],
        "IFCWINDOWPANELPROPERTIES" => {
            &["OperationType", "PanelPosition", "FrameDepth", "FrameThickness", "ShapeAspectStyle"]
        }
        _ => return None,
    })
}

fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A property's value as JSON: defined types are looked through, booleans and
/// logicals become JSON booleans (unknown stays "UNKNOWN", as IfcOpenShell has it).
pub fn step_to_json(v: &StepValue) -> Option<Value> {
    match v {
        StepValue::Null | StepValue::Derived => None,
        StepValue::Integer(i) => Some(Value::from(*i)),
        StepValue::Real(r) => Some(number(*r)),
        StepValue::String(s) => Some(Value::from(s.as_str())),
        StepValue::Enum(e) => Some(match e.as_str() {
            "T" => Value::Bool(true),
            "F" => Value::Bool(false),
            "U" => Value::from("UNKNOWN"),
            other => Value::from(other),
        }),
        StepValue::Ref(_) => None,
        StepValue::Binary(b) => Some(Value::from(b.as_str())),
        StepValue::List(l) => Some(Value::Array(l.iter().filter_map(step_to_json).collect())),
        StepValue::Typed(_, inner) => step_to_json(inner),
    }
}
