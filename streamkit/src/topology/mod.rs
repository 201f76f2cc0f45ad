//! The topology graph: nodes (sources, processors, sinks), their edges, sub-topologies, and
//! [`Topology::describe`].
//!
//! The DSL ([`StreamsBuilder`](crate::stream::StreamsBuilder)) adds nodes to a graph; `build()`
//! freezes it into a [`Topology`]. The graph splits into **sub-topologies** wherever records go
//! through a Kafka topic (a repartition topic): a sink writing to the topic ends one
//! sub-topology and a source reading it starts another. Each sub-topology runs as one task per
//! input partition.
//!
//! Node names follow Kafka Streams (`KSTREAM-FILTER-0000000001`) unless the user names a node
//! with [`KStream::named`](crate::stream::KStream::named); name the steps whose names reach
//! Kafka (repartition topics, and in the stateful layer, stores and changelogs) so that a
//! change elsewhere in the topology cannot silently rename them.

mod describe;
pub(crate) mod node;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

pub use describe::{NodeDescription, SubTopologyDescription, TopologyDescription};

use crate::error::{Error, Result};
use crate::state::spec::{StoreKind, StoreSpec};
use node::NodeFactory;

impl StoreSpec {
    /// `<name>-changelog`, prefixed with the application id at run time.
    pub fn changelog_topic(&self) -> TopicName {
        TopicName::Internal(format!("{}-changelog", self.name))
    }

    fn changelog(&self) -> InternalTopic {
        let config = match self.kind {
            StoreKind::KeyValue => vec![("cleanup.policy".into(), "compact".into())],
            StoreKind::Window { retention_ms } | StoreKind::Session { retention_ms } => vec![
                ("cleanup.policy".into(), "compact,delete".into()),
                // A day more than the store keeps, as Kafka Streams does.
                (
                    "retention.ms".into(),
                    (retention_ms + 86_400_000).to_string(),
                ),
            ],
        };
        InternalTopic {
            name: self.changelog_topic(),
            partitions: None,
            config,
        }
    }
}

/// A topic name as the topology knows it: a user topic, or an internal topic whose real name
/// is prefixed with the application id at run time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicName {
    /// A user topic, used as written.
    External(String),
    /// An internal topic; its name on the cluster is `<application-id>-<name>`.
    Internal(String),
}

impl TopicName {
    /// The name on the cluster for an application.
    pub fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicName::External(t) => t.clone(),
            TopicName::Internal(t) => format!("{application_id}-{t}"),
        }
    }

    /// Whether the runtime creates and owns this topic.
    pub fn is_internal(&self) -> bool {
        matches!(self, TopicName::Internal(_))
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicName::External(t) | TopicName::Internal(t) => f.write_str(t),
        }
    }
}

/// What kind of node this is.
#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Source {
        topics: Vec<TopicName>,
    },
    Processor,
    /// `topic: None` when the topic is chosen per record.
    Sink {
        topic: Option<TopicName>,
    },
}

pub(crate) struct NodeDef {
    pub name: Arc<str>,
    pub kind: NodeKind,
    pub parents: Vec<usize>,
    pub children: Vec<usize>,
    pub factory: Arc<dyn NodeFactory>,
    pub stores: Vec<String>,
}

/// An internal topic the runtime must create before starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    /// The topic (always [`TopicName::Internal`]).
    pub name: TopicName,
    /// Partition count; `None` = as many as the sub-topology that writes it reads.
    pub partitions: Option<i32>,
    /// Topic configs, such as `cleanup.policy`.
    pub config: Vec<(String, String)>,
}

/// The mutable graph the DSL writes to.
#[derive(Default)]
pub(crate) struct GraphBuilder {
    pub nodes: Vec<NodeDef>,
    counter: usize,
    pub internal_topics: Vec<InternalTopic>,
    pub copartition_groups: Vec<Vec<TopicName>>,
    pub stores: Vec<Arc<StoreSpec>>,
    pub errors: Vec<String>,
    /// Table node → the store holding its rows, for tables materialized after the fact (so a
    /// table joined twice gets one store).
    pub materialized: HashMap<usize, String>,
    /// Topics read by global tables: their sub-topologies run on the global thread.
    pub global_topics: BTreeSet<TopicName>,
    /// Stores of global tables: shared read-only by every task, owned by no sub-topology.
    pub global_stores: BTreeSet<String>,
    /// Source connectors the application runs beside its stream threads.
    pub connectors: Vec<Box<dyn crate::connect::SourceConnector>>,
    /// Sources' own `auto.offset.reset` policies, by topic.
    pub offset_resets: HashMap<TopicName, crate::stream::OffsetReset>,
}

impl GraphBuilder {
    /// Declares a store; a second declaration of the same name is an error.
    pub fn add_store(&mut self, spec: StoreSpec) {
        if self.stores.iter().any(|s| s.name == spec.name) {
            self.errors
                .push(format!("two stores are named {:?}", spec.name));
            return;
        }
        self.stores.push(Arc::new(spec));
    }

    /// Gives `node` access to the store called `store`.
    pub fn connect_store(&mut self, node: usize, store: &str) {
        if !self.stores.iter().any(|s| s.name == store) {
            self.errors.push(format!(
                "node {} uses store {store:?}, which was never added",
                self.nodes[node].name
            ));
        }
        self.nodes[node].stores.push(store.to_string());
    }

    /// The topics read by the sources upstream of `node` (the inputs of its sub-topology
    /// that reach it), in the order found.
    pub fn upstream_source_topics(&self, node: usize) -> Vec<TopicName> {
        let mut out: Vec<TopicName> = Vec::new();
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            match &self.nodes[n].kind {
                NodeKind::Source { topics } => {
                    for t in topics {
                        if !out.contains(t) {
                            out.push(t.clone());
                        }
                    }
                }
                _ => stack.extend(self.nodes[n].parents.iter().copied()),
            }
        }
        out
    }

    /// Requires the inputs upstream of `nodes` (the sides of a join) to be co-partitioned:
    /// checked when the application starts.
    pub fn require_copartitioned(&mut self, nodes: &[usize]) {
        let mut group: Vec<TopicName> = Vec::new();
        for &n in nodes {
            for t in self.upstream_source_topics(n) {
                if !group.contains(&t) {
                    group.push(t);
                }
            }
        }
        if group.len() > 1 {
            self.copartition_groups.push(group);
        }
    }

    /// The next Kafka Streams-style generated name, e.g. `KSTREAM-FILTER-0000000003`.
    pub fn generate_name(&mut self, prefix: &str) -> String {
        let n = self.counter;
        self.counter += 1;
        format!("{prefix}-{n:010}")
    }

    pub fn add_node(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: &[usize],
        factory: Arc<dyn NodeFactory>,
    ) -> usize {
        if self.nodes.iter().any(|n| *n.name == *name) {
            self.errors.push(format!("two nodes are named {name:?}"));
        }
        let index = self.nodes.len();
        for &p in parents {
            self.nodes[p].children.push(index);
        }
        self.nodes.push(NodeDef {
            name: name.into(),
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            factory,
            stores: Vec::new(),
        });
        index
    }

    pub fn rename(&mut self, index: usize, name: &str) {
        if self
            .nodes
            .iter()
            .enumerate()
            .any(|(i, n)| i != index && &*n.name == name)
        {
            self.errors.push(format!("two nodes are named {name:?}"));
        }
        if !self.nodes[index].children.is_empty() {
            self.errors.push(format!(
                "node {} already has children; name it right after creating it",
                self.nodes[index].name
            ));
        }
        self.nodes[index].name = name.into();
    }

    pub fn build(self) -> Result<Topology> {
        if !self.errors.is_empty() {
            return Err(Error::Topology(self.errors.join("; ")));
        }
        if !self
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Source { .. }))
        {
            return Err(Error::Topology(
                "the topology has no source; call StreamsBuilder::stream first".into(),
            ));
        }
        // Union-find over edges: a sub-topology is a connected component.
        let mut parent: Vec<usize> = (0..self.nodes.len()).collect();
        fn find(p: &mut [usize], i: usize) -> usize {
            let mut r = i;
            while p[r] != r {
                r = p[r];
            }
            p[i] = r;
            r
        }
        let union = |parent: &mut Vec<usize>, i: usize, j: usize| {
            let (a, b) = (find(parent, i), find(parent, j));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        };
        for (i, n) in self.nodes.iter().enumerate() {
            for &c in &n.children {
                union(&mut parent, i, c);
            }
        }
        // Nodes sharing a store run in one task (a stream-table join reads the store its
        // table's source writes), as in Kafka Streams.
        let mut store_user: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for s in n.stores.iter().filter(|s| !self.global_stores.contains(*s)) {
                match store_user.get(s.as_str()) {
                    Some(&j) => union(&mut parent, i, j),
                    None => {
                        store_user.insert(s, i);
                    }
                }
            }
        }
        let mut component_of_root: HashMap<usize, usize> = HashMap::new();
        let mut subtopologies: Vec<SubTopology> = Vec::new();
        for i in 0..self.nodes.len() {
            let root = find(&mut parent, i);
            let id = *component_of_root.entry(root).or_insert_with(|| {
                subtopologies.push(SubTopology::default());
                subtopologies.len() - 1
            });
            let sub = &mut subtopologies[id];
            sub.nodes.push(i);
            match &self.nodes[i].kind {
                NodeKind::Source { topics } => sub.source_topics.extend(topics.iter().cloned()),
                NodeKind::Sink { topic: Some(t) } => sub.sink_topics.push(t.clone()),
                _ => {}
            }
        }
        // Global tables' sub-topologies are numbered after the others and run on no group
        // partition.
        let (global_subtopologies, mut subtopologies): (Vec<_>, Vec<_>) =
            subtopologies.into_iter().partition(|s| {
                s.source_topics
                    .iter()
                    .any(|t| self.global_topics.contains(t))
            });
        let mut global_subtopologies = global_subtopologies;
        let mut internal_topics = self.internal_topics;
        let mut owner: HashMap<&str, usize> = HashMap::new();
        let regular = subtopologies.len();
        for (i, s) in subtopologies
            .iter_mut()
            .chain(global_subtopologies.iter_mut())
            .enumerate()
        {
            s.id = i;
            if s.source_topics.is_empty() {
                return Err(Error::Topology(format!("sub-topology {i} has no source")));
            }
            for &n in &s.nodes {
                for store in &self.nodes[n].stores {
                    if i < regular && self.global_stores.contains(store) {
                        // Read-only lookups of a global table: its store lives elsewhere.
                        continue;
                    }
                    if let Some(&other) = owner.get(store.as_str()) {
                        if other != i {
                            return Err(Error::Topology(format!(
                                "store {store:?} is used in sub-topologies {other} and {i}; a store belongs to one"
                            )));
                        }
                        continue;
                    }
                    owner.insert(store, i);
                    let spec = self
                        .stores
                        .iter()
                        .find(|x| &x.name == store)
                        .expect("checked by connect_store");
                    if spec.logging {
                        s.sink_topics.push(spec.changelog_topic());
                        internal_topics.push(spec.changelog());
                    }
                    s.stores.push(spec.clone());
                }
            }
        }
        let mut seen = BTreeSet::new();
        for s in subtopologies.iter().chain(&global_subtopologies) {
            for t in &s.source_topics {
                if !seen.insert(t.clone()) {
                    return Err(Error::Topology(format!("topic {t} is read by two sources")));
                }
            }
        }
        Ok(Topology {
            nodes: self.nodes,
            subtopologies,
            global_subtopologies,
            internal_topics,
            copartition_groups: self.copartition_groups,
            offset_resets: self.offset_resets,
            connector_topics: self.connectors.iter().flat_map(|c| c.topics()).collect(),
            connectors: std::sync::Mutex::new(self.connectors),
        })
    }
}

/// One connected part of the graph, run as one task per input partition.
#[derive(Default, Clone)]
pub(crate) struct SubTopology {
    pub id: usize,
    /// Node indices, ascending (parents before children).
    pub nodes: Vec<usize>,
    pub source_topics: Vec<TopicName>,
    /// Topics written (sinks and changelogs).
    pub sink_topics: Vec<TopicName>,
    pub stores: Vec<Arc<StoreSpec>>,
}

/// A built, immutable topology: what [`KafkaStreams`](crate::KafkaStreams) runs and
/// [`TopologyTestDriver`](crate::testing::TopologyTestDriver) tests. Cheap to share between
/// threads.
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) subtopologies: Vec<SubTopology>,
    /// Sub-topologies updating global tables' stores, run by the global thread.
    pub(crate) global_subtopologies: Vec<SubTopology>,
    pub(crate) internal_topics: Vec<InternalTopic>,
    pub(crate) copartition_groups: Vec<Vec<TopicName>>,
    /// Sources' own `auto.offset.reset` policies, by topic.
    pub(crate) offset_resets: HashMap<TopicName, crate::stream::OffsetReset>,
    /// The topics the connectors write.
    pub(crate) connector_topics: Vec<String>,
    /// Source connectors, taken by the instance that starts them.
    pub(crate) connectors: std::sync::Mutex<Vec<Box<dyn crate::connect::SourceConnector>>>,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.describe(), f)
    }
}

impl Topology {
    /// Sub-topologies, sources, processors, sinks and stores, printed like Kafka Streams'
    /// `Topology#describe()`.
    pub fn describe(&self) -> TopologyDescription {
        describe::describe(self)
    }

    /// Every topic the topology reads (internal ones with their unresolved names).
    pub fn source_topics(&self) -> Vec<TopicName> {
        self.subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter().cloned())
            .collect()
    }

    /// Topics read by global tables (every partition, on every instance).
    pub fn global_topics(&self) -> Vec<TopicName> {
        self.global_subtopologies
            .iter()
            .flat_map(|s| s.source_topics.iter().cloned())
            .collect()
    }

    /// The sub-topology with this id, global ones included.
    pub(crate) fn subtopology(&self, id: usize) -> Option<&SubTopology> {
        self.subtopologies
            .iter()
            .chain(&self.global_subtopologies)
            .find(|s| s.id == id)
    }

    /// Internal topics the runtime creates.
    pub fn internal_topics(&self) -> &[InternalTopic] {
        &self.internal_topics
    }

    /// Groups of topics that must have equal partition counts (join inputs).
    pub fn copartition_groups(&self) -> &[Vec<TopicName>] {
        &self.copartition_groups
    }

    /// Number of sub-topologies.
    pub fn subtopology_count(&self) -> usize {
        self.subtopologies.len()
    }

    /// The offset reset policy of the source reading `topic` (a resolved name) for the
    /// application `app_id`, when the source has its own
    /// ([`Consumed::with_offset_reset`](crate::stream::Consumed::with_offset_reset)).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("live", Consumed::with(Serdes::string(), Serdes::string()).with_offset_reset(OffsetReset::Latest))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let topology = b.build()?;
    /// assert_eq!(topology.offset_reset("app", "live"), Some(OffsetReset::Latest));
    /// assert_eq!(topology.offset_reset("app", "out"), None);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn offset_reset(&self, app_id: &str, topic: &str) -> Option<crate::stream::OffsetReset> {
        self.offset_resets
            .iter()
            .find(|(t, _)| t.resolve(app_id) == topic)
            .map(|(_, r)| *r)
    }

    /// The sub-topology reading a resolved topic name.
    pub(crate) fn subtopology_of_topic(&self, app_id: &str, topic: &str) -> Option<usize> {
        self.subtopologies
            .iter()
            .find(|s| s.source_topics.iter().any(|t| t.resolve(app_id) == topic))
            .map(|s| s.id)
    }
}
