//! `Topology::describe()`: a printable description in Kafka Streams' format.

use std::fmt;

use super::{NodeKind, Topology};

/// A whole topology: its sub-topologies in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// The sub-topologies.
    pub subtopologies: Vec<SubTopologyDescription>,
}

/// One sub-topology and its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubTopologyDescription {
    /// Its id (tasks are named `<id>_<partition>`).
    pub id: usize,
    /// Its nodes, parents before children.
    pub nodes: Vec<NodeDescription>,
    /// Whether it updates a global table's store: it runs on the global thread and
    /// generates no tasks.
    pub global: bool,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDescription {
    /// Reads topics.
    Source {
        /// Node name.
        name: String,
        /// Topics read.
        topics: Vec<String>,
        /// Child names.
        successors: Vec<String>,
    },
    /// Transforms records.
    Processor {
        /// Node name.
        name: String,
        /// State stores used.
        stores: Vec<String>,
        /// Child names.
        successors: Vec<String>,
        /// Parent names.
        predecessors: Vec<String>,
    },
    /// Writes a topic.
    Sink {
        /// Node name.
        name: String,
        /// Topic written, or `None` when chosen per record.
        topic: Option<String>,
        /// Parent names.
        predecessors: Vec<String>,
    },
}

impl NodeDescription {
    /// The node's name.
    pub fn name(&self) -> &str {
        match self {
            NodeDescription::Source { name, .. }
            | NodeDescription::Processor { name, .. }
            | NodeDescription::Sink { name, .. } => name,
        }
    }
}

pub(super) fn describe(t: &Topology) -> TopologyDescription {
    let names = |ix: &[usize]| {
        ix.iter()
            .map(|&i| t.nodes[i].name.to_string())
            .collect::<Vec<_>>()
    };
    TopologyDescription {
        subtopologies: t
            .subtopologies
            .iter()
            .chain(&t.global_subtopologies)
            .map(|s| SubTopologyDescription {
                id: s.id,
                global: s.id >= t.subtopologies.len(),
                nodes: s
                    .nodes
                    .iter()
                    .map(|&i| {
                        let n = &t.nodes[i];
                        let name = n.name.to_string();
                        match &n.kind {
                            NodeKind::Source { topics } => NodeDescription::Source {
                                name,
                                topics: topics.iter().map(|t| t.to_string()).collect(),
                                successors: names(&n.children),
                            },
                            NodeKind::Processor => NodeDescription::Processor {
                                name,
                                stores: n.stores.clone(),
                                successors: names(&n.children),
                                predecessors: names(&n.parents),
                            },
                            NodeKind::Sink { topic } => NodeDescription::Sink {
                                name,
                                topic: topic.as_ref().map(|t| t.to_string()),
                                predecessors: names(&n.parents),
                            },
                        }
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn arrows(f: &mut fmt::Formatter<'_>, arrow: &str, names: &[String]) -> fmt::Result {
    let list = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    writeln!(f, "      {arrow} {list}")
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Topologies:")?;
        for s in &self.subtopologies {
            if s.global {
                writeln!(
                    f,
                    "   Sub-topology: {} for global store (will not generate tasks)",
                    s.id
                )?;
            } else {
                writeln!(f, "   Sub-topology: {}", s.id)?;
            }
            for n in &s.nodes {
                match n {
                    NodeDescription::Source {
                        name,
                        topics,
                        successors,
                    } => {
                        writeln!(f, "    Source: {name} (topics: [{}])", topics.join(", "))?;
                        arrows(f, "-->", successors)?;
                    }
                    NodeDescription::Processor {
                        name,
                        stores,
                        successors,
                        predecessors,
                    } => {
                        writeln!(f, "    Processor: {name} (stores: [{}])", stores.join(", "))?;
                        arrows(f, "-->", successors)?;
                        arrows(f, "<--", predecessors)?;
                    }
                    NodeDescription::Sink {
                        name,
                        topic,
                        predecessors,
                    } => {
                        match topic {
                            Some(t) => writeln!(f, "    Sink: {name} (topic: {t})")?,
                            None => {
                                writeln!(f, "    Sink: {name} (extractor class: per-record topic)")?
                            }
                        }
                        arrows(f, "<--", predecessors)?;
                    }
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
