"""The CTA weather station's producer, as the original pipeline wrote it: an HTTP POST of one
Avro record to the Kafka REST Proxy with `requests` (the station's hardware could not run a
Kafka client). Run by streamkit/tests/server_rest_ingest.rs against streamkit's query server
with REST ingest on, in place of the REST Proxy at http://localhost:8082.

  rest_weather.py REST_PROXY_URL MONTHS SEED

Posts one reading per month (0 .. MONTHS-1) exactly as the original `Weather.run(month)` did
and prints, as one JSON document, what it sent and what the server answered.
"""

from enum import IntEnum
import json
import logging
from pathlib import Path
import random
import sys
import time

import requests

logger = logging.getLogger(__name__)


class Weather:
    """Defines a simulated weather model (the original's, without its Kafka-admin base class:
    the test creates the topic)."""

    status = IntEnum(
        "status", "sunny partly_cloudy cloudy windy precipitation", start=0
    )

    rest_proxy_url = "http://localhost:8082"

    key_schema = None
    value_schema = None

    winter_months = set((0, 1, 2, 3, 10, 11))
    summer_months = set((6, 7, 8))

    def __init__(self, month):
        self.topic_name = "org.chicago.cta.weather.v1"
        self.status = Weather.status.sunny
        self.temp = 70.0
        if month in Weather.winter_months:
            self.temp = 40.0
        elif month in Weather.summer_months:
            self.temp = 85.0

        if Weather.key_schema is None:
            with open(f"{Path(__file__).parents[0]}/schemas/weather_key.json") as f:
                Weather.key_schema = json.load(f)

        if Weather.value_schema is None:
            with open(f"{Path(__file__).parents[0]}/schemas/weather_value.json") as f:
                Weather.value_schema = json.load(f)

    def time_millis(self):
        """Use this function to get the key for Kafka Events"""
        return int(round(time.time() * 1000))

    def _set_weather(self, month):
        """Returns the current weather"""
        mode = 0.0
        if month in Weather.winter_months:
            mode = -1.0
        elif month in Weather.summer_months:
            mode = 1.0
        self.temp += min(max(-20.0, random.triangular(-10.0, 10.0, mode)), 100.0)
        self.status = random.choice(list(Weather.status))

    def run(self, month):
        self._set_weather(month)

        resp = requests.post(
            f"{Weather.rest_proxy_url}/topics/{self.topic_name}",
            headers={"Content-Type": "application/vnd.kafka.avro.v2+json"},
            data=json.dumps(
                {
                    "key_schema": json.dumps(Weather.key_schema),
                    "value_schema": json.dumps(Weather.value_schema),
                    "records": [
                        {
                            "key": {"timestamp": self.time_millis()},
                            "value": {
                                "temperature": self.temp,
                                "status": self.status.name,
                            },
                        }
                    ],
                }
            ),
        )

        try:
            resp.raise_for_status()
        except:
            logger.info(f"Failed to send data to REST Proxy {json.dumps(resp.json(), indent=2)}")
            raise

        logger.debug(
            "sent weather data to kafka, temp: %s, status: %s",
            self.temp,
            self.status.name,
        )
        return resp


def main():
    url, months, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    random.seed(seed)
    Weather.rest_proxy_url = url
    out = []
    for month in range(months):
        weather = Weather(month)
        resp = weather.run(month)
        body = json.loads(resp.request.body)
        record = body["records"][0]
        out.append({
            "sent": {"key": record["key"], "value": record["value"]},
            "status_code": resp.status_code,
            "content_type": resp.headers.get("Content-Type"),
            "response": resp.json(),
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
