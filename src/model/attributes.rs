//! [`AttributeSet`]: a group's attributes, ordered by key and stored compactly.
//!
//! A repository of 100,000 groups holds two sets per group (the desired state
//! and the lockfile's record), and a `BTreeMap<String, String>` of eight entries
//! costs about 1 KiB: a 544-byte node and sixteen string allocations. This set
//! keeps every key and value in one string and their end offsets in one slice,
//! a third of the memory. Sets are small (the API allows 16 keys) and read far
//! more than written, so a lookup is a binary search and a change rebuilds the set.
//!
//! Clones share one copy: the groups of a set (`ids:`) resolve to the same
//! attributes, and 1,000 of them hold one set, not 1,000.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A group's custom attributes: key → value, ordered by key so that every
/// rendering, digest and API body built from it is deterministic. Keys are
/// unique; building from entries that repeat a key keeps the last value, as
/// inserting into a map would.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct AttributeSet {
    /// The entries, shared by clones; `None` when there are none (so that an empty
    /// set allocates nothing).
    packed: Option<Arc<Packed>>,
}

/// The entries of a non-empty [`AttributeSet`].
#[derive(PartialEq, Eq, Hash)]
struct Packed {
    /// Every key and value, in order: key 0, value 0, key 1, value 1, ….
    text: Box<str>,
    /// The end offset in `text` of each key and value, in the same order.
    ends: Box<[usize]>,
}

impl AttributeSet {
    /// An empty set.
    pub fn new() -> Self {
        AttributeSet::default()
    }

    /// The text and end offsets (empty for an empty set).
    fn parts(&self) -> (&str, &[usize]) {
        self.packed.as_deref().map_or(("", &[]), |packed| (&packed.text, &packed.ends))
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.parts().1.len() / 2
    }

    /// Whether the set has no keys.
    pub fn is_empty(&self) -> bool {
        self.packed.is_none()
    }

    /// The text of part `i` (key `i/2` when `i` is even, its value when odd).
    fn part(&self, i: usize) -> &str {
        let (text, ends) = self.parts();
        let start = if i == 0 { 0 } else { ends[i - 1] };
        &text[start..ends[i]]
    }

    /// The key and value of entry `i`.
    fn entry(&self, i: usize) -> (&str, &str) {
        (self.part(2 * i), self.part(2 * i + 1))
    }

    /// The index of `key`, or where it would go.
    fn search(&self, key: &str) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.part(2 * mid).cmp(key) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.search(key).ok().map(|i| self.entry(i).1)
    }

    /// The index of `key` in key order.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.search(key).ok()
    }

    /// Whether the set has `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.search(key).is_ok()
    }

    /// The entries, ordered by key.
    pub fn iter(&self) -> Iter<'_> {
        Iter { set: self, front: 0, back: self.len() }
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + Clone {
        self.iter().map(|(key, _)| key)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + Clone {
        self.iter().map(|(_, value)| value)
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        let (key, value) = (key.as_str(), value.as_str());
        let (at, old) = match self.search(key) {
            Ok(i) => (i, Some(self.entry(i).1.to_owned())),
            Err(i) => (i, None),
        };
        let skip = usize::from(old.is_some());
        let entries = self.iter().take(at).chain([(key, value)]).chain(self.iter().skip(at + skip));
        *self = AttributeSet::pack(entries);
        old
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let at = self.search(key).ok()?;
        let old = self.entry(at).1.to_owned();
        *self = AttributeSet::pack(self.iter().take(at).chain(self.iter().skip(at + 1)));
        Some(old)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        *self = AttributeSet::new();
    }

    /// The keys, owned, in order.
    pub fn into_keys(self) -> impl Iterator<Item = String> {
        self.keys().map(str::to_owned).collect::<Vec<_>>().into_iter()
    }

    /// Keeps only the entries for which `keep` says yes.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let kept: Vec<bool> = self.iter().map(|(key, value)| keep(key, value)).collect();
        if kept.iter().all(|kept| *kept) {
            return;
        }
        let entries = self.iter().zip(&kept).filter(|(_, kept)| **kept).map(|(entry, _)| entry);
        *self = AttributeSet::pack(entries);
    }

    /// A set of `entries` whose keys are unique; a repeated key is returned as the error.
    pub fn from_unique<K, V>(entries: Vec<(K, V)>) -> Result<Self, K>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut entries = entries;
        entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        if let Some(at) = entries.windows(2).position(|pair| pair[0].0.as_ref() == pair[1].0.as_ref()) {
            return Err(entries.swap_remove(at).0);
        }
        Ok(AttributeSet::pack(entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))))
    }

    /// Packs entries already ordered by key, each key once.
    fn pack<'a>(entries: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let (mut size, mut count) = (0, 0);
        for (key, value) in entries.clone() {
            size += key.len() + value.len();
            count += 2;
        }
        if count == 0 {
            return AttributeSet::new();
        }
        let mut text = String::with_capacity(size);
        let mut ends = Vec::with_capacity(count);
        for (key, value) in entries {
            text.push_str(key);
            ends.push(text.len());
            text.push_str(value);
            ends.push(text.len());
        }
        let packed = Packed { text: text.into_boxed_str(), ends: ends.into_boxed_slice() };
        AttributeSet { packed: Some(Arc::new(packed)) }
    }
}

/// The entries of an [`AttributeSet`], ordered by key.
#[derive(Clone)]
pub struct Iter<'a> {
    set: &'a AttributeSet,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        (self.front < self.back).then(|| {
            self.front += 1;
            self.set.entry(self.front - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.back - self.front;
        (left, Some(left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        (self.front < self.back).then(|| {
            self.back -= 1;
            self.set.entry(self.back)
        })
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a AttributeSet {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for AttributeSet {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter().map(|(key, value)| (key.to_owned(), value.to_owned())).collect::<Vec<_>>().into_iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for AttributeSet {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut entries: Vec<(K, V)> = entries.into_iter().collect();
        // A stable sort keeps repeats of a key in the order given; the last wins.
        entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let last_of_each = |i: &usize| entries.get(i + 1).is_none_or(|next| next.0.as_ref() != entries[*i].0.as_ref());
        let kept: Vec<usize> = (0..entries.len()).filter(last_of_each).collect();
        AttributeSet::pack(kept.iter().map(|&i| (entries[i].0.as_ref(), entries[i].1.as_ref())))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for AttributeSet {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        let added: Vec<(K, V)> = entries.into_iter().collect();
        let before = self.iter();
        let after = added.iter().map(|(key, value)| (key.as_ref(), value.as_ref()));
        *self = before.chain(after).collect();
    }
}

impl<const N: usize> From<[(String, String); N]> for AttributeSet {
    fn from(entries: [(String, String); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for AttributeSet {
    fn from(map: BTreeMap<String, String>) -> Self {
        AttributeSet::pack(map.iter().map(|(key, value)| (key.as_str(), value.as_str())))
    }
}

impl std::ops::Index<&str> for AttributeSet {
    type Output = str;

    /// The value of `key`; panics when the set lacks it (as a map's index does).
    fn index(&self, key: &str) -> &str {
        self.get(key).unwrap_or_else(|| panic!("no attribute {key:?}"))
    }
}

impl fmt::Debug for AttributeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for AttributeSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for AttributeSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = AttributeSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of attribute keys to text values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeSet, A::Error> {
                let mut entries: Vec<(std::borrow::Cow<'de, str>, std::borrow::Cow<'de, str>)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = map.next_entry::<CowStr<'de>, CowStr<'de>>()? {
                    entries.push((entry.0.0, entry.1.0));
                }
                // A key given twice is refused, never "the last wins": readers of the
                // same JSON disagree on which one counts, so a record or a saved plan
                // holding one could say one thing to a reviewer and another to grattr.
                AttributeSet::from_unique(entries).map_err(|twice| {
                    serde::de::Error::custom(format_args!("attribute key {:?} given twice", twice.as_ref()))
                })
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// Text borrowed from the input when it can be (JSON without escapes), else owned.
struct CowStr<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = CowStr<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("text")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(std::borrow::Cow::Borrowed(text)))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(std::borrow::Cow::Owned(text.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<CowStr<'de>, E> {
                Ok(CowStr(std::borrow::Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[(&str, &str)]) -> AttributeSet {
        entries.iter().copied().collect()
    }

    #[test]
    fn entries_are_ordered_by_key_and_the_last_repeat_wins() {
        let s = set(&[("b", "2"), ("a", "1"), ("b", "3"), ("", "empty")]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [("", "empty"), ("a", "1"), ("b", "3")]);
        assert_eq!(s.len(), 3);
        assert_eq!((s.get("b"), s.get("c"), s.get("")), (Some("3"), None, Some("empty")));
        assert_eq!(s.iter().rev().map(|(k, _)| k).collect::<String>(), "ba");
    }

    #[test]
    fn a_key_given_twice_in_json_is_refused_not_overwritten() {
        let error = serde_json::from_str::<AttributeSet>(r#"{"k": "a", "j": "b", "k": "c"}"#).unwrap_err();
        assert!(error.to_string().starts_with("attribute key \"k\" given twice"), "{error}");
        let read: AttributeSet = serde_json::from_str(r#"{"k": "a", "j": "b"}"#).unwrap();
        assert_eq!(read, set(&[("j", "b"), ("k", "a")]));
    }

    #[test]
    fn it_behaves_as_a_map_under_any_sequence_of_changes() {
        // Differential: the same operations on a BTreeMap give the same contents.
        let mut model = BTreeMap::<String, String>::new();
        let mut s = AttributeSet::new();
        let keys = ["k", "a", "zz", "", "é", "m", "k2"];
        for step in 0..400usize {
            let key = keys[(step * 7 + step / 3) % keys.len()];
            let value = format!("v{}", step % 5);
            match step % 4 {
                0 | 1 => assert_eq!(s.insert(key.into(), value.clone()), model.insert(key.into(), value)),
                2 => assert_eq!(s.remove(key), model.remove(key)),
                _ => {
                    s.retain(|k, v| k != key || v != "v1");
                    model.retain(|k, v| k != key || v != "v1");
                }
            }
            assert!(s.iter().eq(model.iter().map(|(k, v)| (k.as_str(), v.as_str()))), "step {step}");
            assert_eq!(s, AttributeSet::from(model.clone()));
            assert_eq!(s.len(), model.len());
        }
    }

    #[test]
    fn from_unique_returns_a_repeated_key() {
        assert_eq!(AttributeSet::from_unique(vec![("a", "1"), ("b", "2"), ("a", "3")]).unwrap_err(), "a");
        assert_eq!(AttributeSet::from_unique(vec![("b", "2"), ("a", "1")]).unwrap(), set(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn json_round_trips_as_a_sorted_object() {
        let s = set(&[("z", "\"quoted\"\n"), ("a", "1")]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"a":"1","z":"\"quoted\"\n"}"#);
        assert_eq!(serde_json::from_str::<AttributeSet>(&json).unwrap(), s);
        // A repeated key is refused (issue 22): which repeat counts is the reader's guess.
        assert!(serde_json::from_str::<AttributeSet>(r#"{"a":"1","a":"2"}"#).is_err());
        assert!(serde_json::from_str::<AttributeSet>(r#"{"a":1}"#).is_err());
        assert_eq!(format!("{s:?}"), r#"{"a": "1", "z": "\"quoted\"\n"}"#);
    }

    #[test]
    fn clones_share_their_entries_until_changed() {
        let a = set(&[("a", "1"), ("b", "2")]);
        let mut b = a.clone();
        assert!(a.packed.as_ref().zip(b.packed.as_ref()).is_some_and(|(a, b)| Arc::ptr_eq(a, b)));
        b.insert("c".into(), "3".into());
        assert_eq!((a.len(), b.len()), (2, 3));
        assert_eq!(a, set(&[("b", "2"), ("a", "1")]));
        b.retain(|_, _| false);
        assert!(b.is_empty() && b.packed.is_none() && b == AttributeSet::new());
        assert_eq!(set(&[]), AttributeSet::new());
        assert_eq!(b.iter().count(), 0);
    }

    #[test]
    fn extend_and_owned_iteration() {
        let mut s = set(&[("a", "1")]);
        s.extend([("b", "2"), ("a", "3")]);
        let owned: Vec<(String, String)> = s.clone().into_iter().collect();
        assert_eq!(owned, [("a".into(), "3".into()), ("b".into(), "2".into())]);
        assert_eq!(s, AttributeSet::from([("b".into(), "2".into()), ("a".into(), "3".into())]));
        assert_eq!(&s["b"], "2");
    }
}
