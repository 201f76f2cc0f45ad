-- Tumbling windows with a grace period, EMIT FINAL: one result per window once stream time
-- passes its end plus grace; WINDOWSTART and WINDOWEND in the value; the late record is dropped.
CREATE STREAM taps (station VARCHAR KEY, fare INT)
  WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');
CREATE TABLE taps_per_minute AS
  SELECT station, COUNT(*) AS taps, SUM(fare) AS fares, WINDOWSTART AS ws, WINDOWEND AS we
  FROM taps WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)
  GROUP BY station EMIT FINAL;

--> taps ts=1000 key="clark" value={"fare": 2}
--> taps ts=30000 key="clark" value={"fare": 3}
--> taps ts=45000 key="belmont" value={"fare": 5}
--> taps ts=65000 key="clark" value={"fare": 1}
--> taps ts=71000 key="clark" value={"fare": 1}
--> taps ts=20000 key="clark" value={"fare": 100}
--> taps ts=200000 key="belmont" value={"fare": 1}

--< TAPS_PER_MINUTE key="belmont" window=0,60000 value={"FARES":5,"TAPS":1,"WE":60000,"WS":0}
--< TAPS_PER_MINUTE key="clark" window=0,60000 value={"FARES":5,"TAPS":2,"WE":60000,"WS":0}
--< TAPS_PER_MINUTE key="clark" window=60000,120000 value={"FARES":2,"TAPS":2,"WE":120000,"WS":60000}
