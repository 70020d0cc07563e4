//! The sensors in memory: by id (in id order, for the readings' lookups and for
//! pages) and in an R-tree for boxes, with a generation that changes on every write (what
//! cached answers about the whole registry are keyed by).

use std::collections::BTreeMap;
use std::ops::Deref;

use cim_core::catalogue::Classification;
use cim_core::sensors::Sensor;
use rstar::primitives::GeomWithData;
use rstar::{AABB, RTree};

type Place = GeomWithData<[f64; 2], String>;

#[derive(Default)]
pub struct Registry {
    by_id: BTreeMap<String, Sensor>,
    places: RTree<Place>,
    generation: u64,
}

impl Deref for Registry {
    type Target = BTreeMap<String, Sensor>;

    fn deref(&self) -> &Self::Target {
        &self.by_id
    }
}

impl Registry {
    pub fn new(sensors: Vec<Sensor>) -> Self {
        let places =
            RTree::bulk_load(sensors.iter().map(|s| Place::new([s.lon, s.lat], s.id.clone())).collect());
        let by_id = sensors.into_iter().map(|s| (s.id.clone(), s)).collect();
        Self { by_id, places, generation: 0 }
    }

    /// Adds or replaces a sensor; true when it replaced one.
    pub fn insert(&mut self, sensor: Sensor) -> bool {
        let old = self.remove(&sensor.id);
        self.places.insert(Place::new([sensor.lon, sensor.lat], sensor.id.clone()));
        self.by_id.insert(sensor.id.clone(), sensor);
        self.generation += 1;
        old.is_some()
    }

    pub fn remove(&mut self, id: &str) -> Option<Sensor> {
        let old = self.by_id.remove(id)?;
        self.places.remove(&Place::new([old.lon, old.lat], old.id.clone()));
        self.generation += 1;
        Some(old)
    }

    /// Changes with every insert and removal.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Up to `limit` sensors a caller cleared to `clearance` may see, in id order
    /// after `after`, and whether more follow.
    pub fn page(&self, after: Option<&str>, limit: usize, clearance: Classification) -> (Vec<&Sensor>, bool) {
        let from = match after {
            Some(a) => self.by_id.range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => self.by_id.range::<str, _>(..),
        };
        let mut visible = from.map(|(_, s)| s).filter(|s| s.clearance_needed() <= clearance);
        let page: Vec<&Sensor> = visible.by_ref().take(limit).collect();
        let more = visible.next().is_some();
        (page, more)
    }

    /// The sensors in `[west, south, east, north]` a caller cleared to `clearance`
    /// may see, in id order.
    pub fn in_box(&self, b: [f64; 4], clearance: Classification) -> Vec<&Sensor> {
        let mut hits: Vec<&Sensor> = self
            .places
            .locate_in_envelope(&AABB::from_corners([b[0], b[1]], [b[2], b[3]]))
            .filter_map(|p| self.by_id.get(&p.data))
            .filter(|s| s.clearance_needed() <= clearance)
            .collect();
        hits.sort_by(|a, b| a.id.cmp(&b.id));
        hits
    }

    /// Every sensor a caller cleared to `clearance` may see, in id order.
    pub fn visible(&self, clearance: Classification) -> impl Iterator<Item = &Sensor> {
        self.by_id.values().filter(move |s| s.clearance_needed() <= clearance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(id: &str, lon: f64, lat: f64, classification: Option<&str>) -> Sensor {
        serde_json::from_value(serde_json::json!({
            "id": id, "kind": "temperature", "unit": "C", "lon": lon, "lat": lat,
            "classification": classification,
        }))
        .expect("sensor")
    }

    #[test]
    fn pages_boxes_and_moves_agree_with_a_plain_scan() {
        let mut r = Registry::new(vec![sensor("b", 1.0, 1.0, None), sensor("a", 5.0, 5.0, None)]);
        let g0 = r.generation();
        assert!(!r.insert(sensor("c", 2.0, 2.0, Some("restricted"))));
        assert!(r.insert(sensor("a", 1.5, 1.5, None)), "a moved");
        assert_ne!(r.generation(), g0);
        let ids = |v: Vec<&Sensor>| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(r.in_box([0.0, 0.0, 3.0, 3.0], Classification::Public)), ["a", "b"]);
        assert_eq!(ids(r.in_box([0.0, 0.0, 3.0, 3.0], Classification::Restricted)), ["a", "b", "c"]);
        assert!(
            r.in_box([4.0, 4.0, 6.0, 6.0], Classification::Restricted).is_empty(),
            "a's old place is gone"
        );
        let (first, more) = r.page(None, 1, Classification::Restricted);
        assert_eq!((ids(first), more), (vec!["a".to_owned()], true));
        let (rest, more) = r.page(Some("a"), 5, Classification::Public);
        assert_eq!((ids(rest), more), (vec!["b".to_owned()], false), "c hidden from the public");
        let g1 = r.generation();
        assert_eq!(r.remove("b").map(|s| s.id), Some("b".to_owned()));
        assert_ne!(r.generation(), g1);
        assert_eq!(ids(r.visible(Classification::Restricted).collect()), ["a", "c"]);
        assert_eq!(r.places.size(), 2);
    }
}
