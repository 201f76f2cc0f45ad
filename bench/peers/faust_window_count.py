"""Windowed count in Faust (faust-streaming): a tumbling 60 s table per key on event time
(RocksDB store, or memory with --store memory; changelog topic), every update to the output
topic. Stops after --records input records and prints the harness's result line (timed from
the first record to the last one processed)."""

import logging
import os
import sys
from datetime import timedelta

import faust

from common import Clock, parse_args


def main():
    args = parse_args(__doc__)
    clock = Clock(args.records)
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store=f"{args.store}://",
        datadir=args.state_dir,
        topic_partitions=1,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_linger_ms=5,
    )
    source = app.topic(args.input, key_type=str, value_serializer="raw")
    sink = app.topic(args.output, key_type=str, value_serializer="json")
    counts = (
        app.Table("counts", default=int, partitions=1)
        .tumbling(timedelta(seconds=60), expires=timedelta(minutes=10))
        .relative_to_stream()
    )

    @app.agent(source)
    async def count(stream):
        async for key, _value in stream.items():
            counts[key] += 1
            await sink.send(key=key, value={"count": counts[key].current()})
            if clock.tick():
                await app.producer.flush()
                clock.report()
                os._exit(0)

    logging.getLogger().setLevel(logging.WARNING)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
