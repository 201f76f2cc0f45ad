//! A map from (topic, partition) to a small value, looked up once per consumed record.

/// Values by topic, then partition number. A stream thread or a restore reads few topics, so
/// a topic is found by scanning a short list comparing names — cheaper per record than hashing
/// the name — and its partitions index a vector.
pub(crate) struct PartitionMap<T>(Vec<(String, Vec<Option<T>>)>);

impl<T> Default for PartitionMap<T> {
    fn default() -> Self {
        PartitionMap(Vec::new())
    }
}

impl<T: Copy> PartitionMap<T> {
    /// The value of `topic`/`partition`, if any.
    pub fn get(&self, topic: &str, partition: i32) -> Option<T> {
        let (_, by_partition) = self.0.iter().find(|(t, _)| t == topic)?;
        by_partition
            .get(usize::try_from(partition).ok()?)
            .copied()
            .flatten()
    }

    /// Sets the value of `topic`/`partition`; returns the value it replaces.
    pub fn insert(&mut self, topic: &str, partition: usize, value: T) -> Option<T> {
        let i = match self.0.iter().position(|(t, _)| t == topic) {
            Some(i) => i,
            None => {
                self.0.push((topic.to_string(), Vec::new()));
                self.0.len() - 1
            }
        };
        let by_partition = &mut self.0[i].1;
        if by_partition.len() <= partition {
            by_partition.resize(partition + 1, None);
        }
        by_partition[partition].replace(value)
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TaskId;

    fn id(subtopology: usize, partition: i32) -> TaskId {
        TaskId {
            subtopology,
            partition,
        }
    }

    #[test]
    fn routes_find_each_topic_partition_and_nothing_else() {
        let mut routes = PartitionMap::default();
        routes.insert("orders", 2, (id(0, 2), 0));
        routes.insert("payments", 0, (id(1, 0), 1));
        assert_eq!(routes.get("orders", 2), Some((id(0, 2), 0)));
        assert_eq!(routes.get("payments", 0), Some((id(1, 0), 1)));
        assert_eq!(routes.get("orders", 0), None);
        assert_eq!(routes.get("orders", 3), None);
        assert_eq!(routes.get("orders", -1), None);
        assert_eq!(routes.get("order", 2), None);
        routes.clear();
        assert_eq!(routes.get("orders", 2), None);
    }

    #[test]
    fn the_slot_index_finds_each_partition_of_each_topic() {
        let mut index = PartitionMap::default();
        index.insert("a-changelog", 0, 0);
        index.insert("a-changelog", 2, 1);
        index.insert("b-changelog", 0, 2);
        assert_eq!(index.insert("a-changelog", 3, 3), None);
        assert_eq!(index.get("a-changelog", 0), Some(0));
        assert_eq!(index.get("a-changelog", 1), None);
        assert_eq!(index.get("a-changelog", 2), Some(1));
        assert_eq!(index.get("a-changelog", 3), Some(3));
        assert_eq!(index.get("a-changelog", 4), None);
        assert_eq!(index.get("a-changelog", -1), None);
        assert_eq!(index.get("b-changelog", 0), Some(2));
        assert_eq!(index.get("c-changelog", 0), None);
        // A second value for a partition reports the one it replaced.
        assert_eq!(index.insert("b-changelog", 0, 4), Some(2));
    }
}
