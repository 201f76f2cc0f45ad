package io.streamkit.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;

/**
 * One run of Kafka Streams in one of bench/run's broker workloads, in its own JVM (so its CPU
 * time and peak RSS are its own), printing the harness's one {@code BENCH_RESULT {json}} line.
 *
 * <p>Timed as every contender: from the first record to the last one processed (its output
 * handed to the producer); the final flush and close are not timed. A restore is timed from
 * the first restored batch until every record is restored and the application is running, as
 * streamkit's restore contender is.
 *
 * <pre>
 * java -cp target/classes:target/lib/* io.streamkit.bench.KafkaStreamsContender
 *     passthrough|window|restore --bootstrap HOST:PORT --records N --app-id ID
 *     --input TOPIC [--output TOPIC] --state-dir DIR [--timeout S] [--set key=value ...]
 * </pre>
 */
public final class KafkaStreamsContender {
  /** Passthrough commits at Kafka Streams' default at-least-once interval (30 s). */
  private static final long PASSTHROUGH_COMMIT_MS = 30_000;
  /**
   * The windowed count and the restore commit every second, as streamkit's contender and the
   * Python peers do, so the record cache sends its updates during the run.
   */
  private static final long WINDOW_COMMIT_MS = 1_000;
  /** The restore workload's store; its changelog is {@code <app id>-store-changelog}. */
  private static final String RESTORE_STORE = "store";

  private KafkaStreamsContender() {}

  /** Wall clock and process CPU time at one instant. */
  record Mark(long wallNanos, long cpuNanos) {
    static Mark now() {
      return new Mark(System.nanoTime(), processCpuNanos());
    }
  }

  /** CPU time (user + system) of this process, every thread of the JVM included. */
  static long processCpuNanos() {
    return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
        .getProcessCpuTime();
  }

  /** VmHWM of /proc/self/status: this process's peak resident set size, KiB. */
  static long peakRssKib() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmHWM:")) {
          return Long.parseLong(line.split("\\s+")[1]);
        }
      }
    } catch (IOException | RuntimeException e) {
      System.err.println("cannot read VmHWM: " + e);
    }
    return 0;
  }

  static String resultLine(long records, Mark start, Mark end) {
    return String.format(
        Locale.ROOT,
        "BENCH_RESULT {\"records\":%d,\"seconds\":%.6f,\"cpu_seconds\":%.6f,\"peak_rss_kib\":%d}",
        records,
        (end.wallNanos - start.wallNanos) / 1e9,
        (end.cpuNanos - start.cpuNanos) / 1e9,
        peakRssKib());
  }

  /**
   * Counts records on the stream thread: forwards each one (the rest of the topology runs
   * inside that call, down to the producer's send) and then counts it, so the last mark falls
   * after the last record's processing.
   */
  static final class Clock {
    final long expected;
    long seen;
    volatile Mark first;
    volatile Mark last;
    final CountDownLatch done = new CountDownLatch(1);

    Clock(long expected) {
      this.expected = expected;
    }

    void counted() {
      seen++;
      if (seen == expected) {
        last = Mark.now();
        done.countDown();
      }
    }

    FixedKeyProcessor<String, String, String> processor() {
      return new FixedKeyProcessor<>() {
        private FixedKeyProcessorContext<String, String> context;

        @Override
        public void init(FixedKeyProcessorContext<String, String> context) {
          this.context = context;
        }

        @Override
        public void process(FixedKeyRecord<String, String> record) {
          if (first == null) {
            first = Mark.now();
          }
          context.forward(record);
          counted();
        }
      };
    }
  }

  static final class Args {
    String workload;
    String bootstrap;
    long records;
    String appId;
    String input;
    String output;
    String stateDir;
    long timeoutSeconds = 600;
    /** Seconds to the first record (or restored batch) before the run is given up. */
    long startTimeoutSeconds = 90;
    final Properties extra = new Properties();

    static Args parse(String[] argv) {
      Args a = new Args();
      if (argv.length == 0) {
        throw new IllegalArgumentException("usage: passthrough|window|restore --bootstrap ...");
      }
      a.workload = argv[0];
      for (int i = 1; i < argv.length; i += 2) {
        if (i + 1 >= argv.length) {
          throw new IllegalArgumentException("missing value of " + argv[i]);
        }
        String v = argv[i + 1];
        switch (argv[i]) {
          case "--bootstrap" -> a.bootstrap = v;
          case "--records" -> a.records = Long.parseLong(v);
          case "--app-id" -> a.appId = v;
          case "--input" -> a.input = v;
          case "--output" -> a.output = v;
          case "--state-dir" -> a.stateDir = v;
          case "--timeout" -> a.timeoutSeconds = Long.parseLong(v);
          case "--start-timeout" -> a.startTimeoutSeconds = Long.parseLong(v);
          case "--set" -> {
            int eq = v.indexOf('=');
            if (eq < 0) {
              throw new IllegalArgumentException("expected key=value, got " + v);
            }
            a.extra.setProperty(v.substring(0, eq), v.substring(eq + 1));
          }
          default -> throw new IllegalArgumentException("unknown argument " + argv[i]);
        }
      }
      if (a.bootstrap == null || a.appId == null || a.input == null || a.stateDir == null) {
        throw new IllegalArgumentException("--bootstrap, --app-id, --input and --state-dir are needed");
      }
      return a;
    }
  }

  /**
   * Kafka Streams' defaults except what the benchmark fixes for every contender: one stream
   * thread, at-least-once, the commit interval, string serdes.
   */
  static Properties config(Args a, long commitMs) {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap);
    p.put(StreamsConfig.STATE_DIR_CONFIG, a.stateDir);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitMs);
    p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
    p.putAll(a.extra);
    return p;
  }

  static KafkaStreams start(Topology topology, Properties config, AtomicReference<Throwable> error) {
    KafkaStreams streams = new KafkaStreams(topology, config);
    streams.setUncaughtExceptionHandler(
        e -> {
          error.compareAndSet(null, e);
          return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    return streams;
  }

  /** Closes (untimed: flush, commit, leaving the group) and prints the result line. */
  static void finish(KafkaStreams streams, String line) {
    long closing = System.nanoTime();
    if (!streams.close(Duration.ofSeconds(60))) {
      System.err.println("close did not finish within 60 s");
    }
    System.err.printf(Locale.ROOT, "closed in %.2f s%n", (System.nanoTime() - closing) / 1e9);
    System.out.println(line);
    System.out.flush();
  }

  /**
   * Throws when the application failed, saw no record within the start timeout (a broker it
   * cannot work with fails the run in minutes, not at the harness's timeout) or ran out of time.
   */
  static void check(
      Args a, long startedNanos, boolean started, AtomicReference<Throwable> error, String progress) {
    if (error.get() != null) {
      throw new IllegalStateException("kafka streams failed", error.get());
    }
    long elapsed = System.nanoTime() - startedNanos;
    if (!started && elapsed > TimeUnit.SECONDS.toNanos(a.startTimeoutSeconds)) {
      throw new IllegalStateException("no record within " + a.startTimeoutSeconds + " s");
    }
    if (elapsed > TimeUnit.SECONDS.toNanos(a.timeoutSeconds)) {
      throw new IllegalStateException("timed out after " + a.timeoutSeconds + " s: " + progress);
    }
  }

  /** Workloads 1 and 2: runs until the clock has counted every record. */
  static void runCounted(Args a, Topology topology, Clock clock, long commitMs) throws Exception {
    AtomicReference<Throwable> error = new AtomicReference<>();
    KafkaStreams streams = start(topology, config(a, commitMs), error);
    long started = System.nanoTime();
    streams.start();
    while (!clock.done.await(50, TimeUnit.MILLISECONDS)) {
      check(a, started, clock.first != null, error, "state " + streams.state());
    }
    finish(streams, resultLine(clock.expected, clock.first, clock.last));
  }

  static void passthrough(Args a) throws Exception {
    Clock clock = new Clock(a.records);
    StreamsBuilder b = new StreamsBuilder();
    b.stream(a.input, Consumed.with(Serdes.String(), Serdes.String()))
        .processValues(clock::processor)
        .mapValues(v -> v)
        .to(a.output, Produced.with(Serdes.String(), Serdes.String()));
    runCounted(a, b.build(), clock, PASSTHROUGH_COMMIT_MS);
  }

  static void window(Args a) throws Exception {
    Clock clock = new Clock(a.records);
    StreamsBuilder b = new StreamsBuilder();
    // Grace 0, as streamkit's TimeWindows::tumbling; store retention Kafka Streams' default
    // (window size + grace). The count's store is RocksDB with a changelog and the record
    // cache (statestore.cache.max.bytes, 10 MiB by default), Kafka Streams' defaults.
    b.stream(a.input, Consumed.with(Serdes.String(), Serdes.String()))
        .processValues(clock::processor)
        .groupByKey(Grouped.with(Serdes.String(), Serdes.String()))
        .windowedBy(TimeWindows.ofSizeWithNoGrace(Duration.ofSeconds(60)))
        .count(Materialized.as("counts"))
        .toStream()
        .to(
            a.output,
            Produced.with(
                WindowedSerdes.timeWindowedSerdeFrom(String.class, 60_000L), Serdes.Long()));
    runCounted(a, b.build(), clock, WINDOW_COMMIT_MS);
  }

  /** Workload 4: restores the count's store from {@code <app id>-store-changelog}. */
  static void restore(Args a) throws Exception {
    StreamsBuilder b = new StreamsBuilder();
    b.stream(a.input, Consumed.with(Serdes.String(), Serdes.String()))
        .groupByKey(Grouped.with(Serdes.String(), Serdes.String()))
        .count(Materialized.as(RESTORE_STORE));
    AtomicLong restored = new AtomicLong();
    AtomicBoolean ended = new AtomicBoolean();
    AtomicReference<Mark> first = new AtomicReference<>();
    AtomicReference<Throwable> error = new AtomicReference<>();
    KafkaStreams streams = start(b.build(), config(a, WINDOW_COMMIT_MS), error);
    streams.setGlobalStateRestoreListener(
        new StateRestoreListener() {
          @Override
          public void onRestoreStart(TopicPartition tp, String store, long start, long end) {}

          @Override
          public void onBatchRestored(TopicPartition tp, String store, long end, long n) {
            // As streamkit's restored-records metric: counted once a batch is written.
            first.compareAndSet(null, Mark.now());
            restored.addAndGet(n);
          }

          @Override
          public void onRestoreEnd(TopicPartition tp, String store, long total) {
            ended.set(true);
          }
        });
    long started = System.nanoTime();
    streams.start();
    // Polled every 2 ms, as streamkit's restore contender polls its metric and state.
    while (!(restored.get() >= a.records
        && ended.get()
        && streams.state() == KafkaStreams.State.RUNNING)) {
      check(
          a,
          started,
          first.get() != null,
          error,
          restored.get() + " restored records, state " + streams.state());
      Thread.sleep(2);
    }
    Mark last = Mark.now();
    finish(streams, resultLine(restored.get(), first.get(), last));
  }

  public static void main(String[] argv) {
    try {
      Args a = Args.parse(argv);
      switch (a.workload) {
        case "passthrough" -> passthrough(a);
        case "window" -> window(a);
        case "restore" -> restore(a);
        default -> throw new IllegalArgumentException("unknown workload " + a.workload);
      }
    } catch (Throwable e) {
      // The stream threads would keep the JVM alive after main threw.
      e.printStackTrace();
      System.exit(1);
    }
    // Stream threads and client threads are not waited for.
    System.exit(0);
  }
}
