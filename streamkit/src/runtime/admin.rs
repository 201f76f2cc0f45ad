//! Before the threads start: check source topics, size and create internal topics, and check
//! co-partitioning.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::config::StreamsConfig;
use crate::error::{Error, Result};
use crate::topology::{TopicName, Topology};

/// (resolved name, partitions, topic configs) of a topic to create.
pub(crate) type TopicSpec = (String, i32, Vec<(String, String)>);

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a consumer waits before fetching again once its local queue is over
/// `queued.min.messages` (librdkafka's `fetch.queue.backoff.ms`, 1000 ms by default). A
/// stream thread drains a queue of 100 000 records in well under a second, then sat idle for
/// the rest of that second: on a broker that answers fetches quickly, reads ran at a fifth of
/// the client's rate. The Java consumer fetches again as soon as its buffer has room; this
/// comes close to that without spinning.
pub(crate) const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// How many records the stream threads' consumers prefetch before they stop fetching
/// (librdkafka's `queued.min.messages`, 100 000 by default). With fetching resumed after
/// [`FETCH_QUEUE_BACKOFF_MS`], a smaller queue refills in time and holds far less memory: in
/// the benchmark's windowed count, peak RSS fell from ≈140 MiB to ≈110 MiB at the same rate.
/// Kafka Streams' own buffer is of the same order (`max.poll.records` 1000 and
/// `buffered.records.per.partition` 1000 per partition, plus one fetch).
pub(crate) const STREAM_QUEUED_MIN_MESSAGES: &str = "20000";

/// librdkafka's default `message.timeout.ms`.
const PRODUCER_MESSAGE_TIMEOUT: Duration = Duration::from_secs(300);

/// librdkafka settings shared by every client of an application, with the defaults streamkit
/// sets where librdkafka's do not suit it (consumers: [`FETCH_QUEUE_BACKOFF_MS`]; the stream
/// threads' consumers: [`STREAM_QUEUED_MIN_MESSAGES`]).
pub(crate) fn base_client_config(config: &StreamsConfig, kind: &str) -> Result<ClientConfig> {
    let servers = config.bootstrap_servers.as_deref().ok_or_else(|| {
        Error::Config("bootstrap_servers is not set (or use StreamsConfig::embedded)".into())
    })?;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", servers);
    if kind.ends_with("consumer") {
        c.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    }
    if kind == "consumer" {
        c.set("queued.min.messages", STREAM_QUEUED_MIN_MESSAGES);
    }
    // Records must outlive an outage the threads ride out (`task_timeout`), or they expire
    // in the producer's queue and fail the thread first.
    if kind == "producer" && config.task_timeout > PRODUCER_MESSAGE_TIMEOUT {
        c.set(
            "message.timeout.ms",
            config.task_timeout.as_millis().to_string(),
        );
    }
    for (k, v) in config.client_settings(kind) {
        c.set(k, v);
    }
    Ok(c)
}

/// Partition counts of every existing topic.
pub(crate) fn topic_partitions(config: &StreamsConfig) -> Result<HashMap<String, i32>> {
    let mut c = base_client_config(config, "admin")?;
    c.set("allow.auto.create.topics", "false");
    let consumer: BaseConsumer = c.create()?;
    let md = consumer.fetch_metadata(None, METADATA_TIMEOUT)?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// Why some of `topics` cannot be read, asked of the cluster by name: the application is not
/// authorized for them (before anything else: that needs an operator), or they do not exist.
/// `None` when every one is there and readable.
pub(crate) fn unavailable_topics<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[String],
) -> Result<Option<Error>> {
    use rdkafka::types::RDKafkaRespErr as E;
    let (mut missing, mut denied) = (Vec::new(), Vec::new());
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let t = md.topics().iter().find(|t| t.name() == topic);
        match t.and_then(|t| t.error()) {
            Some(E::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) => denied.push(topic.clone()),
            Some(
                E::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART | E::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_ID,
            ) => missing.push(topic.clone()),
            _ if t.is_none_or(|t| t.partitions().is_empty()) => missing.push(topic.clone()),
            _ => {}
        }
    }
    Ok(if !denied.is_empty() {
        Some(Error::TopicAuthorization(denied))
    } else if !missing.is_empty() {
        Some(Error::MissingSourceTopics(missing))
    } else {
        None
    })
}

/// Checks sources, checks co-partitioning, sizes and creates internal topics.
pub(crate) fn prepare_topics(config: &StreamsConfig, topology: &Topology) -> Result<()> {
    let app = config.application_id.as_str();
    let existing = topic_partitions(config)?;
    let mut counts: BTreeMap<TopicName, i32> = BTreeMap::new();
    let mut missing = Vec::new();
    for t in topology
        .source_topics()
        .into_iter()
        .chain(topology.global_topics())
    {
        if let TopicName::External(name) = &t {
            match existing.get(name) {
                Some(&n) => {
                    counts.insert(t.clone(), n);
                }
                None => missing.push(name.clone()),
            }
        }
    }
    if !missing.is_empty() {
        // A topic the application may not describe is left out of the metadata like a
        // missing one: ask for each by name to tell which it is.
        let mut c = base_client_config(config, "admin")?;
        c.set("allow.auto.create.topics", "false");
        let consumer: BaseConsumer = c.create()?;
        return Err(
            unavailable_topics(&consumer, &missing)?.unwrap_or(Error::MissingSourceTopics(missing))
        );
    }
    // Internal topics: explicit count, else the largest input of the sub-topology writing them
    // (repeated until stable, since a writer may itself read an internal topic). Explicit
    // counts take part in the co-partitioning check.
    for it in topology.internal_topics() {
        if let Some(n) = it.partitions {
            counts.insert(it.name.clone(), n);
        }
    }
    check_copartitioning(topology.copartition_groups(), &mut counts)?;
    let explicit: Vec<&TopicName> = topology
        .internal_topics()
        .iter()
        .filter(|it| it.partitions.is_some())
        .map(|it| &it.name)
        .collect();
    for _ in 0..=topology.internal_topics().len() {
        equalize_internal_groups(topology.copartition_groups(), &explicit, &mut counts);
        for it in topology.internal_topics() {
            if counts.contains_key(&it.name) {
                continue;
            }
            let writer_inputs = topology
                .subtopologies
                .iter()
                .filter(|s| s.sink_topics.contains(&it.name))
                .flat_map(|s| s.source_topics.iter())
                .collect::<Vec<_>>();
            let known: Vec<i32> = writer_inputs
                .iter()
                .filter_map(|t| counts.get(*t).copied())
                .collect();
            if known.len() == writer_inputs.len() {
                counts.insert(
                    it.name.clone(),
                    known.into_iter().max().unwrap_or(config.default_partitions),
                );
            }
        }
    }
    equalize_internal_groups(topology.copartition_groups(), &explicit, &mut counts);
    let to_create: Vec<TopicSpec> = topology
        .internal_topics()
        .iter()
        .map(|it| {
            let n = counts.get(&it.name).copied().unwrap_or(config.default_partitions);
            counts.insert(it.name.clone(), n);
            (it.name.resolve(app), n, it.config.clone())
        })
        .filter(|(name, n, _)| match existing.get(name) {
            Some(have) if have == n => false,
            Some(have) => {
                tracing::warn!(topic = %name, have, want = n, "internal topic exists with another partition count; keeping it");
                false
            }
            None => true,
        })
        .collect();
    create_topics(config, &to_create)
}

/// Co-partition groups (the input topics of a join): every member whose partition count is
/// known (source topics, internal topics with an explicit count) must agree, else the error
/// names each topic with its count; the other internal members take that count.
pub(crate) fn check_copartitioning(
    groups: &[Vec<TopicName>],
    counts: &mut BTreeMap<TopicName, i32>,
) -> Result<()> {
    for group in groups {
        let external: Vec<(String, i32)> = group
            .iter()
            .filter_map(|t| counts.get(t).map(|n| (t.to_string(), *n)))
            .collect();
        // Internal topics without a count yet are sized here, so an explicit count that
        // disagrees is caught.
        let unsized_internal: Vec<&TopicName> = group
            .iter()
            .filter(|t| t.is_internal() && !counts.contains_key(*t))
            .collect();
        if external.windows(2).any(|w| w[0].1 != w[1].1) {
            let detail: Vec<String> = external
                .iter()
                .map(|(t, n)| format!("{t} has {n} partitions"))
                .collect();
            return Err(Error::CoPartitioning(format!(
                "{}; topics that are joined need equal partition counts: repartition one side first",
                detail.join(", ")
            )));
        }
        if let Some(&(_, n)) = external.first() {
            for t in unsized_internal {
                counts.insert(t.clone(), n);
            }
        }
    }
    Ok(())
}

/// Co-partition groups of internal topics only (a join of two re-keyed streams): each
/// repartition topic was sized by its own writer, so the two sides could differ and a key
/// would land in different partition numbers. As Kafka Streams does, every member takes the
/// explicit count of one of them, else the largest count in the group. (Groups with a source
/// topic were settled by [`check_copartitioning`].)
fn equalize_internal_groups(
    groups: &[Vec<TopicName>],
    explicit: &[&TopicName],
    counts: &mut BTreeMap<TopicName, i32>,
) {
    for group in groups {
        // Only once every member is sized: a side sized later by its writer could be the
        // larger one.
        if !group
            .iter()
            .all(|t| t.is_internal() && counts.contains_key(t))
        {
            continue;
        }
        let fixed = group
            .iter()
            .find(|t| explicit.contains(t))
            .and_then(|t| counts.get(t).copied());
        let Some(n) = fixed.or_else(|| group.iter().filter_map(|t| counts.get(t)).max().copied())
        else {
            continue;
        };
        for t in group {
            if !explicit.contains(&t) {
                counts.insert(t.clone(), n);
            }
        }
    }
}

/// Creates those of `topics` (name, partitions) that do not exist yet, on the cluster or the
/// embedded broker `config` points at, with the config's replication factor. For applications
/// that create their own input and output topics at start; internal topics are created by
/// [`KafkaStreams::start`](crate::KafkaStreams::start) itself. Works on clusters
/// without the admin API when every topic already exists.
pub fn ensure_topics(config: &StreamsConfig, topics: &[(&str, i32)]) -> Result<()> {
    let existing = if config.embedded.is_some() {
        HashMap::new()
    } else {
        topic_partitions(config)?
    };
    let missing: Vec<TopicSpec> = topics
        .iter()
        .filter(|(name, _)| !existing.contains_key(*name))
        .map(|(name, partitions)| (name.to_string(), *partitions, Vec::new()))
        .collect();
    create_topics(config, &missing)
}

pub(crate) fn create_topics(config: &StreamsConfig, topics: &[TopicSpec]) -> Result<()> {
    if topics.is_empty() {
        return Ok(());
    }
    if let Some(broker) = &config.embedded {
        for (name, partitions, _) in topics {
            broker.create_topic(name, *partitions)?;
            tracing::info!(topic = %name, partitions, "created internal topic on the embedded broker");
        }
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = base_client_config(config, "admin")?.create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions, cfg)| {
            let mut t = NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(config.replication_factor),
            );
            for (k, v) in cfg {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(admin.create_topics(
        &new,
        &AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT)),
    ))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "created internal topic"),
            Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "internal topic already exists")
            }
            Err((name, code)) => {
                return Err(Error::Config(format!(
                    "cannot create internal topic {name}: {code}"
                )));
            }
        }
    }
    // The controller acknowledges a creation before every broker's metadata lists the topic:
    // wait until it does, so that the caller's next metadata request (the source check of
    // `start`) sees it.
    let deadline = std::time::Instant::now() + METADATA_TIMEOUT;
    loop {
        let existing = topic_partitions(config)?;
        let pending: Vec<&String> = topics
            .iter()
            .map(|(name, _, _)| name)
            .filter(|name| !existing.contains_key(*name))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Config(format!(
                "created topics not in the cluster's metadata after {METADATA_TIMEOUT:?}: {pending:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What [`reset_application`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResetReport {
    /// The internal topics deleted.
    pub deleted_topics: Vec<String>,
    /// Whether the consumer group, and with it the committed offsets, was deleted (`false`:
    /// there was none).
    pub group_deleted: bool,
}

/// Whether `topic` is one of `application_id`'s internal topics by its name, as Kafka Streams'
/// reset tool tells them: `<application-id>-…-changelog`, `<application-id>-…-repartition`,
/// and the query server's `<application-id>-instances`.
pub fn is_internal_topic_name(application_id: &str, topic: &str) -> bool {
    topic.strip_prefix(application_id).is_some_and(|rest| {
        rest == "-instances"
            || (rest.starts_with('-')
                && (rest.ends_with("-changelog") || rest.ends_with("-repartition")))
    })
}

/// Resets an application, as Kafka Streams' `kafka-streams-application-reset` does: deletes
/// its internal topics (changelogs, repartition topics, the query server's instances topic)
/// and its consumer group with the offsets it committed, so that the next start reads its
/// inputs again from `auto.offset.reset` (`earliest` unless set) and rebuilds its state.
/// Output topics are left alone. Run it while no instance of the application runs: a group
/// with members cannot be deleted (the error says so). Each instance's local state
/// directory is removed by [`KafkaStreams::cleanup`](crate::KafkaStreams::cleanup) (or the
/// `streamkit reset` command). Needs a broker with the admin API; the embedded broker has
/// none, and gets an error.
///
/// # Examples
///
/// ```no_run
/// use streamkit::config::StreamsConfig;
///
/// let config = StreamsConfig::new("trips-app").bootstrap_servers("localhost:9092");
/// let report = streamkit::runtime::reset_application(&config)?;
/// println!("deleted {:?}", report.deleted_topics);
/// # Ok::<(), streamkit::Error>(())
/// ```
pub fn reset_application(config: &StreamsConfig) -> Result<ResetReport> {
    if config.embedded.is_some() {
        return Err(Error::Config(
            "the embedded broker has no admin API: an application on it is reset by starting a new broker"
                .into(),
        ));
    }
    let topics = internal_topics_of(config)?;
    delete_topics_and_group(config, &topics, true)
}

/// Deletes the application's local state directory, `state_dir/<application-id>` (what
/// [`KafkaStreams::cleanup`](crate::KafkaStreams::cleanup) does for a closed instance);
/// refused while an instance holds it.
pub fn delete_local_state(config: &StreamsConfig) -> Result<()> {
    let dir = config.state_dir.join(&config.application_id);
    if !dir.exists() {
        return Ok(());
    }
    // Held while deleting, so no instance starts on a half-deleted directory.
    let _lock = crate::state::dir::DirLock::acquire(&dir)?;
    std::fs::remove_dir_all(&dir).map_err(|e| {
        Error::Config(format!(
            "cannot delete state directory {}: {e}",
            dir.display()
        ))
    })?;
    tracing::info!(dir = %dir.display(), "deleted the application's local state");
    Ok(())
}

/// The topics in the cluster that are the application's internal topics by their names
/// ([`is_internal_topic_name`]), sorted.
pub fn internal_topics_of(config: &StreamsConfig) -> Result<Vec<String>> {
    let app = config.application_id.as_str();
    let mut topics: Vec<String> = topic_partitions(config)?
        .into_keys()
        .filter(|t| is_internal_topic_name(app, t))
        .collect();
    topics.sort();
    Ok(topics)
}

/// Deletes `topics` (those that exist) and, with `group`, the application's consumer group.
pub(crate) fn delete_topics_and_group(
    config: &StreamsConfig,
    topics: &[String],
    group: bool,
) -> Result<ResetReport> {
    use rdkafka::types::RDKafkaErrorCode as C;
    let admin: AdminClient<DefaultClientContext> = base_client_config(config, "admin")?.create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let mut report = ResetReport::default();
    if group {
        let app = config.application_id.as_str();
        for r in rt.block_on(admin.delete_groups(&[app], &options))? {
            match r {
                Ok(_) => report.group_deleted = true,
                Err((_, C::GroupIdNotFound)) => {}
                Err((_, C::NonEmptyGroup)) => {
                    return Err(Error::IllegalState(format!(
                        "application {app} still has running instances (its consumer group is \
                         not empty): stop them before resetting it"
                    )));
                }
                Err((_, code)) => {
                    return Err(Error::Config(format!(
                        "cannot delete consumer group {app}: {code}"
                    )));
                }
            }
        }
    }
    if !topics.is_empty() {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        for r in rt.block_on(admin.delete_topics(&names, &options))? {
            match r {
                Ok(name) => {
                    tracing::info!(topic = %name, "deleted internal topic");
                    report.deleted_topics.push(name);
                }
                Err((_, C::UnknownTopicOrPartition)) => {}
                Err((name, code)) => {
                    return Err(Error::Config(format!("cannot delete topic {name}: {code}")));
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics_are_told_by_name_as_the_reset_tool_does() {
        for t in [
            "trips-counts-changelog",
            "trips-by-line-repartition",
            "trips-instances",
        ] {
            assert!(is_internal_topic_name("trips", t), "{t}");
        }
        for t in [
            "trips",
            "trips-out",
            "trips2-counts-changelog",
            "other-counts-changelog",
            "trips-changelog-archive",
        ] {
            assert!(!is_internal_topic_name("trips", t), "{t}");
        }
    }

    fn ext(t: &str) -> TopicName {
        TopicName::External(t.into())
    }

    #[test]
    fn copartitioning_errors_name_topics_and_counts() {
        let mut counts = BTreeMap::from([(ext("trains"), 4), (ext("stations"), 2)]);
        let groups = vec![vec![ext("trains"), ext("stations")]];
        let err = check_copartitioning(&groups, &mut counts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "topics not co-partitioned: trains has 4 partitions, stations has 2 partitions; \
             topics that are joined need equal partition counts: repartition one side first"
        );
    }

    #[test]
    fn an_explicit_internal_count_must_match_the_join_partner() {
        let internal = TopicName::Internal("by-station-repartition".into());
        let mut counts = BTreeMap::from([(ext("stations"), 3), (internal.clone(), 5)]);
        let err = check_copartitioning(&[vec![internal, ext("stations")]], &mut counts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("by-station-repartition has 5 partitions, stations has 3 partitions"),
            "{err}"
        );
    }

    #[test]
    fn internal_members_follow_the_external_count() {
        let internal = TopicName::Internal("by-station-repartition".into());
        let mut counts = BTreeMap::from([(ext("trains"), 3)]);
        check_copartitioning(&[vec![ext("trains"), internal.clone()]], &mut counts).unwrap();
        assert_eq!(counts[&internal], 3);
    }

    #[test]
    fn two_repartitioned_join_sides_take_the_larger_count() {
        let left = TopicName::Internal("j-left-repartition".into());
        let right = TopicName::Internal("j-right-repartition".into());
        let mut counts = BTreeMap::from([(left.clone(), 4), (right.clone(), 2)]);
        let groups = vec![vec![left.clone(), right.clone()]];
        equalize_internal_groups(&groups, &[], &mut counts);
        assert_eq!((counts[&left], counts[&right]), (4, 4));
        // An explicit count wins over the larger one.
        let mut counts = BTreeMap::from([(left.clone(), 4), (right.clone(), 2)]);
        equalize_internal_groups(&groups, &[&right], &mut counts);
        assert_eq!((counts[&left], counts[&right]), (2, 2));
    }

    #[test]
    fn consumers_fetch_again_soon_after_their_queue_fills() {
        let config = StreamsConfig::new("app").bootstrap_servers("localhost:9092");
        for kind in ["consumer", "restore.consumer", "global.consumer"] {
            let c = base_client_config(&config, kind).unwrap();
            assert_eq!(
                c.get("fetch.queue.backoff.ms"),
                Some(FETCH_QUEUE_BACKOFF_MS),
                "{kind}"
            );
        }
        // Not a consumer setting: producers and the admin client do not get it.
        for kind in ["producer", "admin"] {
            let c = base_client_config(&config, kind).unwrap();
            assert_eq!(c.get("fetch.queue.backoff.ms"), None, "{kind}");
        }
        // Only the stream threads' consumer prefetches less than librdkafka's default.
        assert_eq!(
            base_client_config(&config, "consumer")
                .unwrap()
                .get("queued.min.messages"),
            Some(STREAM_QUEUED_MIN_MESSAGES)
        );
        assert_eq!(
            base_client_config(&config, "restore.consumer")
                .unwrap()
                .get("queued.min.messages"),
            None
        );
        // A setting of the application's wins.
        let config = config.set("restore.consumer.fetch.queue.backoff.ms", "250");
        let c = base_client_config(&config, "restore.consumer").unwrap();
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("250"));
        let c = base_client_config(&config, "consumer").unwrap();
        assert_eq!(
            c.get("fetch.queue.backoff.ms"),
            Some(FETCH_QUEUE_BACKOFF_MS)
        );
    }
}
