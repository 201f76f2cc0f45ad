"""Shared by the Python peers: arguments, and the one result line the harness reads."""

import argparse
import json
import os
import time


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bootstrap", required=True, help="host:port of the broker")
    p.add_argument("--input", required=True, help="input topic (preloaded)")
    p.add_argument("--output", required=True, help="output topic")
    p.add_argument("--app-id", required=True, help="application id / consumer group")
    p.add_argument("--records", type=int, required=True, help="records to process, then stop")
    p.add_argument("--state-dir", required=True, help="directory for local state")
    p.add_argument("--store", default="rocksdb", choices=["rocksdb", "memory"])
    return p.parse_args()


def peak_rss_kib():
    """VmHWM of /proc/self/status: this process's peak RSS in KiB. (Not getrusage's
    ru_maxrss, which Linux keeps across execve: it would count the harness that forked us.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Clock:
    """Counts input records; times the run from the first one to the expected last one (wall
    and CPU seconds), as every contender is timed: the final flush and close are not."""

    def __init__(self, expected):
        self.expected = expected
        self.seen = 0
        self.wall = None
        self.cpu = None

    def tick(self):
        """Counts one record; True once the expected count is reached."""
        if self.seen == 0:
            self.wall = time.perf_counter()
            self.cpu = time.process_time()
        self.seen += 1
        if self.seen == self.expected:
            self.wall_end = time.perf_counter()
            self.cpu_end = time.process_time()
        return self.seen >= self.expected

    def result_line(self):
        """`BENCH_RESULT {json}`: records, seconds, CPU seconds, peak RSS (KiB)."""
        return "BENCH_RESULT " + json.dumps(
            {
                "records": self.seen,
                "seconds": self.wall_end - self.wall,
                "cpu_seconds": self.cpu_end - self.cpu,
                "peak_rss_kib": peak_rss_kib(),
            }
        )

    def report(self):
        """Writes the result line to file descriptor 1 itself (Faust redirects sys.stdout into
        its logging, on stderr)."""
        os.write(1, (self.result_line() + "\n").encode())
