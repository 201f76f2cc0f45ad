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

/// The topics and stores a description mentions, each with a stable id for diagrams.
struct Diagram<'a> {
    d: &'a TopologyDescription,
    topics: Vec<&'a str>,
    stores: Vec<&'a str>,
}

impl<'a> Diagram<'a> {
    fn new(d: &'a TopologyDescription) -> Self {
        let mut topics = Vec::new();
        let mut stores = Vec::new();
        for n in d.subtopologies.iter().flat_map(|s| &s.nodes) {
            match n {
                NodeDescription::Source { topics: t, .. } => {
                    topics.extend(t.iter().map(|s| s.as_str()))
                }
                NodeDescription::Sink { topic: Some(t), .. } => topics.push(t.as_str()),
                NodeDescription::Processor { stores: s, .. } => {
                    stores.extend(s.iter().map(|s| s.as_str()))
                }
                NodeDescription::Sink { topic: None, .. } => {}
            }
        }
        for v in [&mut topics, &mut stores] {
            let mut seen = std::collections::HashSet::new();
            v.retain(|x| seen.insert(*x));
        }
        Diagram { d, topics, stores }
    }

    fn node_id(&self, name: &str) -> String {
        let mut i = 0;
        for n in self.d.subtopologies.iter().flat_map(|s| &s.nodes) {
            if n.name() == name {
                return format!("n{i}");
            }
            i += 1;
        }
        format!("n{i}")
    }

    fn topic_id(&self, t: &str) -> String {
        format!("t{}", self.topics.iter().position(|x| *x == t).unwrap_or(0))
    }

    fn store_id(&self, s: &str) -> String {
        format!("s{}", self.stores.iter().position(|x| *x == s).unwrap_or(0))
    }

    /// (from, to, dashed) edges: topic → source, node → child, sink → topic, processor — store.
    fn edges(&self) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        for n in self.d.subtopologies.iter().flat_map(|s| &s.nodes) {
            let me = self.node_id(n.name());
            match n {
                NodeDescription::Source {
                    topics, successors, ..
                } => {
                    out.extend(topics.iter().map(|t| (self.topic_id(t), me.clone(), false)));
                    out.extend(
                        successors
                            .iter()
                            .map(|c| (me.clone(), self.node_id(c), false)),
                    );
                }
                NodeDescription::Processor {
                    stores, successors, ..
                } => {
                    out.extend(stores.iter().map(|s| (me.clone(), self.store_id(s), true)));
                    out.extend(
                        successors
                            .iter()
                            .map(|c| (me.clone(), self.node_id(c), false)),
                    );
                }
                NodeDescription::Sink { topic, .. } => {
                    out.extend(topic.iter().map(|t| (me.clone(), self.topic_id(t), false)));
                }
            }
        }
        out
    }
}

/// Escapes a label for a double-quoted Mermaid or DOT string.
fn quoted(s: &str, mermaid: bool) -> String {
    if mermaid {
        s.replace('"', "#quot;")
    } else {
        s.replace('\\', "\\\\").replace('"', "\\\"")
    }
}

impl TopologyDescription {
    /// The topology as a Mermaid flowchart: one subgraph per sub-topology, topics as
    /// parallelograms, stores as cylinders (paste into any Mermaid renderer).
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// let m = b.build()?.describe().to_mermaid();
    /// assert!(m.starts_with("flowchart TD\n"));
    /// assert!(m.contains(r#"t0[/"in"/]"#) && m.contains("t0 --> n0"));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn to_mermaid(&self) -> String {
        let g = Diagram::new(self);
        let mut out = String::from("flowchart TD\n");
        for s in &self.subtopologies {
            out += &format!("  subgraph sub{}[\"Sub-topology {}\"]\n", s.id, s.id);
            for n in &s.nodes {
                out += &format!(
                    "    {}[\"{}\"]\n",
                    g.node_id(n.name()),
                    quoted(n.name(), true)
                );
            }
            out += "  end\n";
        }
        for (i, t) in g.topics.iter().enumerate() {
            out += &format!("  t{i}[/\"{}\"/]\n", quoted(t, true));
        }
        for (i, s) in g.stores.iter().enumerate() {
            out += &format!("  s{i}[(\"{}\")]\n", quoted(s, true));
        }
        for (a, b, dashed) in g.edges() {
            out += &format!("  {a} {} {b}\n", if dashed { "-.-" } else { "-->" });
        }
        out
    }

    /// The topology in Graphviz DOT: one cluster per sub-topology, topics as parallelograms,
    /// stores as cylinders (`dot -Tsvg`).
    pub fn to_dot(&self) -> String {
        let g = Diagram::new(self);
        let mut out = String::from("digraph topology {\n  rankdir=TB;\n");
        for s in &self.subtopologies {
            out += &format!(
                "  subgraph cluster_{} {{\n    label=\"Sub-topology {}\";\n",
                s.id, s.id
            );
            for n in &s.nodes {
                out += &format!(
                    "    {} [label=\"{}\", shape=box];\n",
                    g.node_id(n.name()),
                    quoted(n.name(), false)
                );
            }
            out += "  }\n";
        }
        for (i, t) in g.topics.iter().enumerate() {
            out += &format!(
                "  t{i} [label=\"{}\", shape=parallelogram];\n",
                quoted(t, false)
            );
        }
        for (i, s) in g.stores.iter().enumerate() {
            out += &format!("  s{i} [label=\"{}\", shape=cylinder];\n", quoted(s, false));
        }
        for (a, b, dashed) in g.edges() {
            let style = if dashed {
                " [style=dashed, dir=none]"
            } else {
                ""
            };
            out += &format!("  {a} -> {b}{style};\n");
        }
        out + "}\n"
    }
}
