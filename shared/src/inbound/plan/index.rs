//! The planner's per-delivery indexes (which message, status log and contact each id folds into).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use foldhash::fast::RandomState;

/// How many keys are searched in place before a hash table is used.
const IN_PLACE: usize = 4;

/// An index whose first few keys are searched in place and the rest hashed: most deliveries hold one
/// item, and a hash table's first allocation costs more than a few comparisons; a batch of a
/// thousand statuses still gets its table. Seeded per process: the keys come from Meta's signed
/// bodies, but a fixed hash would be no better.
pub(super) struct FoldIndex<K, V> {
    in_place: [Option<(K, V)>; IN_PLACE],
    hashed: HashMap<K, V, RandomState>,
}

impl<K: Hash + Eq, V: Copy> FoldIndex<K, V> {
    pub(super) fn new() -> Self {
        Self {
            in_place: [const { None }; IN_PLACE],
            hashed: HashMap::default(),
        }
    }

    pub(super) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.hashed.is_empty() {
            return self.hashed.get(key).copied();
        }
        self.in_place
            .iter()
            .flatten()
            .find(|(k, _)| k.borrow() == key)
            .map(|(_, v)| *v)
    }

    /// Adds a key not in the index (callers `get` first). Once the keys outgrow the place they are
    /// searched in, all of them move to the table.
    pub(super) fn insert(&mut self, key: K, value: V) {
        if self.hashed.is_empty() {
            if let Some(slot) = self.in_place.iter_mut().find(|slot| slot.is_none()) {
                *slot = Some((key, value));
                return;
            }
            self.hashed
                .extend(self.in_place.iter_mut().filter_map(Option::take));
        }
        self.hashed.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_beyond_the_first_few_are_found_as_well() {
        let mut index = FoldIndex::new();
        for i in 0..50 {
            let key = format!("wamid.{i}");
            assert_eq!(index.get(key.as_str()), None);
            index.insert(key, i);
        }
        for i in 0..50 {
            assert_eq!(index.get(format!("wamid.{i}").as_str()), Some(i));
        }
        assert_eq!(index.get("wamid.50"), None);
    }
}
