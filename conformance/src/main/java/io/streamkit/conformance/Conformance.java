package io.streamkit.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.test.TestRecord;

/**
 * Runs the conformance cases in Kafka Streams' TopologyTestDriver and writes every output
 * record, so that streamkit's driver can be compared with Kafka Streams record for record.
 *
 * <pre>
 *   Conformance DIR                      every DIR/CASE.in.jsonl to DIR/CASE.out.jsonl
 *   Conformance CASE INPUT.jsonl OUTPUT.jsonl
 * </pre>
 *
 * Input lines are {"topic": T, "key": K, "value": V or null, "ts": MS}; output lines are
 * {"in": I, "key": K, "value": V or null, "ts": MS} for the topic "out", in order, where I is
 * the index of the input record whose processing produced the output. Every case's
 * topology is restated in streamkit/tests/conformance_kafka_streams.rs: parameters (window
 * sizes, joiners, key formats) must stay equal on both sides.
 */
public final class Conformance {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Serde<String> S = Serdes.String();
  private static final Serde<Long> L = Serdes.Long();

  /** A case: its topology, the value serde of each input topic, the output value serde. */
  record Case(Supplier<Topology> topology, Map<String, Serde<?>> inputs, Serde<?> output) {}

  private static final Map<String, Case> CASES = new TreeMap<>();

  private static void add(String name, Map<String, Serde<?>> inputs, Serde<?> output,
      Function<StreamsBuilder, KStream<String, ?>> body) {
    CASES.put(name, new Case(() -> {
      StreamsBuilder b = new StreamsBuilder();
      @SuppressWarnings("unchecked")
      KStream<String, Object> out = (KStream<String, Object>) body.apply(b);
      @SuppressWarnings("unchecked")
      Serde<Object> outSerde = (Serde<Object>) output;
      out.to("out", Produced.with(S, outSerde));
      return b.build();
    }, inputs, output));
  }

  /** A windowed key as both sides print it: key@start/end. */
  private static String show(Windowed<String> w) {
    return w.key() + "@" + w.window().start() + "/" + w.window().end();
  }

  private static KGroupedStream<String, Long> grouped(StreamsBuilder b) {
    return b.stream("in", Consumed.with(S, L)).groupByKey(Grouped.with(S, L));
  }

  private static KTable<String, String> table(StreamsBuilder b, String topic) {
    return b.table(topic, Consumed.with(S, S), Materialized.as(topic + "-rows"));
  }

  private static String fk(String v) {
    return v.split("/", 2)[0];
  }

  private static Suppressed<Windowed<?>> untilClose() {
    return Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded());
  }

  static {
    Map<String, Serde<?>> longIn = Map.of("in", L);
    Map<String, Serde<?>> twoStrings = Map.of("left", S, "right", S);

    // Windowed aggregations: each counted (every update) and summed with suppress.
    TimeWindows tumbling = TimeWindows.ofSizeAndGrace(Duration.ofMillis(2000), Duration.ofMillis(500));
    TimeWindows hopping = TimeWindows.ofSizeAndGrace(Duration.ofMillis(3000), Duration.ofMillis(500))
        .advanceBy(Duration.ofMillis(1000));
    SlidingWindows sliding =
        SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(1000), Duration.ofMillis(500));
    SessionWindows session =
        SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(500), Duration.ofMillis(300));

    add("tumbling_count", longIn, L, b -> grouped(b).windowedBy(tumbling)
        .count(Materialized.with(S, L)).toStream((w, v) -> show(w)));
    add("tumbling_sum_suppressed", longIn, L, b -> grouped(b).windowedBy(tumbling)
        .reduce(Long::sum, Materialized.with(S, L)).suppress(untilClose())
        .toStream((w, v) -> show(w)));
    add("hopping_count", longIn, L, b -> grouped(b).windowedBy(hopping)
        .count(Materialized.with(S, L)).toStream((w, v) -> show(w)));
    add("hopping_sum_suppressed", longIn, L, b -> grouped(b).windowedBy(hopping)
        .reduce(Long::sum, Materialized.with(S, L)).suppress(untilClose())
        .toStream((w, v) -> show(w)));
    add("sliding_count", longIn, L, b -> grouped(b).windowedBy(sliding)
        .count(Materialized.with(S, L)).toStream((w, v) -> show(w)));
    add("sliding_sum_suppressed", longIn, L, b -> grouped(b).windowedBy(sliding)
        .reduce(Long::sum, Materialized.with(S, L)).suppress(untilClose())
        .toStream((w, v) -> show(w)));
    add("session_count", longIn, L, b -> grouped(b).windowedBy(session)
        .count(Materialized.with(S, L)).toStream((w, v) -> show(w)));
    add("session_sum_suppressed", longIn, L, b -> grouped(b).windowedBy(session)
        .reduce(Long::sum, Materialized.with(S, L)).suppress(untilClose())
        .toStream((w, v) -> show(w)));

    // Stream-stream joins.
    JoinWindows joinWindows =
        JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(1000), Duration.ofMillis(300));
    StreamJoined<String, String, String> sj = StreamJoined.with(S, S, S);
    add("stream_stream_inner", twoStrings, S, b -> b.stream("left", Consumed.with(S, S))
        .join(b.stream("right", Consumed.with(S, S)), (x, y) -> x + "+" + y, joinWindows, sj));
    add("stream_stream_left", twoStrings, S, b -> b.stream("left", Consumed.with(S, S))
        .leftJoin(b.stream("right", Consumed.with(S, S)), (x, y) -> x + "+" + y, joinWindows, sj));
    add("stream_stream_outer", twoStrings, S, b -> b.stream("left", Consumed.with(S, S))
        .outerJoin(b.stream("right", Consumed.with(S, S)), (x, y) -> x + "+" + y, joinWindows, sj));

    // Stream-table joins: the table has tombstones.
    add("stream_table_inner", twoStrings, S, b -> b.stream("left", Consumed.with(S, S))
        .join(table(b, "right"), (x, y) -> x + "+" + y, Joined.with(S, S, S)));
    add("stream_table_left", twoStrings, S, b -> b.stream("left", Consumed.with(S, S))
        .leftJoin(table(b, "right"), (x, y) -> x + "+" + y, Joined.with(S, S, S)));

    // Table-table joins.
    add("table_table_inner", twoStrings, S, b -> table(b, "left")
        .join(table(b, "right"), (x, y) -> x + "+" + y).toStream());
    add("table_table_left", twoStrings, S, b -> table(b, "left")
        .leftJoin(table(b, "right"), (x, y) -> x + "+" + y).toStream());
    add("table_table_outer", twoStrings, S, b -> table(b, "left")
        .outerJoin(table(b, "right"), (x, y) -> x + "+" + y).toStream());

    // Foreign-key joins: a left value is "<right key>/<n>".
    Function<String, String> fkExtractor = Conformance::fk;
    add("fk_inner", twoStrings, S, b -> table(b, "left")
        .join(table(b, "right"), fkExtractor, (x, y) -> x + "+" + y).toStream());
    add("fk_left", twoStrings, S, b -> table(b, "left")
        .leftJoin(table(b, "right"), fkExtractor, (x, y) -> x + "+" + y).toStream());

    // Table aggregations with retraction: a row "<group>/<amount>" moves between groups.
    add("table_count", Map.of("in", S), L, b -> table(b, "in")
        .groupBy((k, v) -> KeyValue.pair(fk(v), v), Grouped.with(S, S))
        .count(Materialized.with(S, L)).toStream());
    add("table_sum", Map.of("in", S), L, b -> table(b, "in")
        .groupBy((k, v) -> KeyValue.pair(fk(v), Long.parseLong(v.split("/", 2)[1])),
            Grouped.with(S, L))
        .aggregate(() -> 0L, (k, v, agg) -> agg + v, (k, v, agg) -> agg - v,
            Materialized.with(S, L))
        .toStream());
  }

  private static Properties config() {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, "conformance");
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
    // streamkit's stores have no record cache unless asked for: every update is emitted.
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
    // Left/outer stream-stream joins emit a record that found no partner once stream time
    // closes its window; Kafka Streams also throttles that check by wall-clock time (1 s by
    // default), which streamkit does not (docs/src/kafka-streams-differences.md).
    p.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX, 0L);
    return p;
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  static void run(String name, Path input, Path output) throws IOException {
    Case c = CASES.get(name);
    if (c == null) {
      throw new IllegalArgumentException("unknown case " + name + "; known: " + CASES.keySet());
    }
    List<String> out = new ArrayList<>();
    try (TopologyTestDriver d =
        new TopologyTestDriver(c.topology().get(), config(), Instant.ofEpochMilli(0))) {
      Map<String, TestInputTopic> inputs = new HashMap<>();
      c.inputs().forEach((topic, serde) -> inputs.put(topic,
          d.createInputTopic(topic, S.serializer(), (Serializer) serde.serializer())));
      TestOutputTopic<String, Object> topic =
          d.createOutputTopic("out", S.deserializer(), (Deserializer<Object>) c.output().deserializer());
      List<String> lines = Files.readAllLines(input, StandardCharsets.UTF_8);
      for (int i = 0; i < lines.size(); i++) {
        JsonNode r = JSON.readTree(lines.get(i));
        TestInputTopic in = inputs.get(r.get("topic").asText());
        if (in == null) {
          throw new IllegalArgumentException(name + ": no input topic " + r.get("topic"));
        }
        JsonNode v = r.get("value");
        Object value = v == null || v.isNull() ? null : v.isNumber() ? (Object) v.asLong() : v.asText();
        JsonNode k = r.get("key");
        String key = k == null || k.isNull() ? null : k.asText();
        in.pipeInput(new TestRecord(key, value, null, r.get("ts").asLong()));
        for (TestRecord<String, Object> o : topic.readRecordsToList()) {
          ObjectNode n = JSON.createObjectNode();
          n.put("in", i);
          n.put("key", o.key());
          if (o.value() == null) {
            n.putNull("value");
          } else if (o.value() instanceof Long l) {
            n.put("value", l);
          } else {
            n.put("value", o.value().toString());
          }
          n.put("ts", o.timestamp());
          out.add(JSON.writeValueAsString(n));
        }
      }
    }
    try (BufferedWriter w = Files.newBufferedWriter(output, StandardCharsets.UTF_8)) {
      for (String l : out) {
        w.write(l);
        w.write('\n');
      }
    }
  }

  public static void main(String[] args) throws IOException {
    if (args.length == 1) {
      List<Path> inputs;
      try (Stream<Path> s = Files.list(Path.of(args[0]))) {
        inputs = s.filter(p -> p.getFileName().toString().endsWith(".in.jsonl")).sorted().toList();
      }
      for (Path in : inputs) {
        String file = in.getFileName().toString();
        String name = file.substring(0, file.length() - ".in.jsonl".length());
        run(name, in, in.resolveSibling(name + ".out.jsonl"));
      }
    } else if (args.length == 3) {
      run(args[0], Path.of(args[1]), Path.of(args[2]));
    } else {
      System.err.println("usage: Conformance DIR | Conformance CASE INPUT.jsonl OUTPUT.jsonl");
      System.err.println("cases: " + CASES.keySet());
      System.exit(2);
    }
  }
}
