-- Projection with expressions and casts, WHERE with NULL handling; the key passes through.
-- A record whose value is not JSON is skipped (and logged), as ksqlDB does.
CREATE STREAM arrivals (bus VARCHAR KEY, route VARCHAR, delay_s INT, stop_id BIGINT)
  WITH (KAFKA_TOPIC='arrivals', VALUE_FORMAT='JSON');
CREATE STREAM late_arrivals WITH (KAFKA_TOPIC='late', PARTITIONS=2) AS
  SELECT bus, UCASE(route) AS route, CAST(delay_s AS DOUBLE) / 60 AS delay_min,
         CAST(stop_id AS VARCHAR) AS stop, delay_s > 600 AS very_late
  FROM arrivals
  WHERE delay_s >= 120 AND route IS NOT NULL
  EMIT CHANGES;

--> arrivals ts=1 key="b1" value={"route": "m15", "delay_s": 300, "stop_id": 400001}
--> arrivals ts=2 key="b2" value={"route": "b63", "delay_s": 30, "stop_id": 400002}
--> arrivals ts=3 key="b3" value={"route": null, "delay_s": 900, "stop_id": 400003}
--> arrivals ts=4 key="b4" value=not json
--> arrivals ts=5 key="b5" value={"route": "x27", "delay_s": 901}
--> arrivals ts=6 key="b6" value={"route": "q1", "stop_id": 5}

--< late key="b1" value={"DELAY_MIN":5.0,"ROUTE":"M15","STOP":"400001","VERY_LATE":false}
--< late key="b5" value={"DELAY_MIN":15.016666666666667,"ROUTE":"X27","STOP":null,"VERY_LATE":true}
