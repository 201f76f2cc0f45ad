-- TIMESTAMP='col' takes event time from a BIGINT column (not the record's timestamp), so
-- windows follow it; KEY_FORMAT='JSON' keys, a KAFKA-format single-column value sink.
CREATE STREAM pings (device VARCHAR KEY, at BIGINT, rssi INT)
  WITH (KAFKA_TOPIC='pings', VALUE_FORMAT='JSON', KEY_FORMAT='JSON', TIMESTAMP='at');
CREATE TABLE pings_per_10s WITH (KAFKA_TOPIC='pings_per_10s', VALUE_FORMAT='KAFKA') AS
  SELECT device, COUNT(*) AS n FROM pings
  WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY device;

--> pings ts=999999 key="d1" value={"at": 1000, "rssi": -40}
--> pings ts=0 key="d1" value={"at": 9000, "rssi": -41}
--> pings ts=5 key="d1" value={"at": 12000, "rssi": -42}

--< pings_per_10s key="d1" window=0,10000 value={"N":1}
--< pings_per_10s key="d1" window=0,10000 value={"N":2}
--< pings_per_10s key="d1" window=10000,20000 value={"N":1}
