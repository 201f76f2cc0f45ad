-- The CTA pipeline's statements as written (legacy KEY property), JSON instead of AVRO.
-- As in KSQL 5, KEY='station_id' is a hint only: the table keeps one row per message key
-- (ROWKEY, here the event's timestamp), so the summary counts every entry of a station.
-- A record repeating a message key replaces that row and retracts its old count.
CREATE TABLE turnstiles(station_id INT, station_name VARCHAR, line VARCHAR)
  WITH (KAFKA_TOPIC='org.chicago.cta.turnstiles', VALUE_FORMAT='JSON', KEY='station_id');
CREATE TABLE turnstile_summary WITH (VALUE_FORMAT='JSON') AS
  SELECT station_id, COUNT(*) AS count FROM turnstiles GROUP BY station_id;

--> org.chicago.cta.turnstiles ts=1000 key={"timestamp":1} value={"station_id": 40380, "station_name": "Clark/Lake", "line": "blue"}
--> org.chicago.cta.turnstiles ts=2000 key={"timestamp":2} value={"station_id": 41320, "station_name": "Belmont", "line": "red"}
--> org.chicago.cta.turnstiles ts=3000 key={"timestamp":3} value={"station_id": 40380, "station_name": "Clark/Lake", "line": "green"}
--> org.chicago.cta.turnstiles ts=4000 key={"timestamp":4} value={"station_id": 40380, "station_name": "Clark/Lake", "line": "pink"}
--> org.chicago.cta.turnstiles ts=5000 key={"timestamp":2} value={"station_id": 40380, "station_name": "Clark/Lake", "line": "blue"}

--< TURNSTILE_SUMMARY key=40380 value={"COUNT":1}
--< TURNSTILE_SUMMARY key=41320 value={"COUNT":1}
--< TURNSTILE_SUMMARY key=40380 value={"COUNT":2}
--< TURNSTILE_SUMMARY key=40380 value={"COUNT":3}
--< TURNSTILE_SUMMARY key=41320 value={"COUNT":0}
--< TURNSTILE_SUMMARY key=40380 value={"COUNT":4}
