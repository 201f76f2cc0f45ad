"""Windowed count in Quix Streams: tumbling 60 s count per key (RocksDB state with its
changelog topic), every update to the output topic. Stops after --records input records and
prints the harness's result line (timed from the first record to the last one processed)."""

import logging

from quixstreams import Application

from common import Clock, parse_args


def main():
    args = parse_args(__doc__)
    clock = Clock(args.records)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.app_id,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        commit_interval=1.0,
        loglevel=logging.WARNING,
        # The harness's settings for every librdkafka consumer on Tansu (see harness.rs:
        # a short fetch wait, and no 1 s pause in fetching after the local queue fills).
        consumer_extra_config={"fetch.wait.max.ms": 5, "fetch.queue.backoff.ms": 10},
    )
    source = app.topic(args.input, key_deserializer="str", value_deserializer="json")
    sink = app.topic(args.output, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)

    def count_input(_value):
        if clock.tick():
            app.stop()

    sdf = sdf.update(count_input)
    sdf = sdf.tumbling_window(duration_ms=60_000).count().current()
    sdf.to_topic(sink)
    app.run()
    clock.report()


if __name__ == "__main__":
    main()
