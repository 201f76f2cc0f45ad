-- Stream-stream join WITHIN 10 seconds: each departure matches the arrivals of the same
-- trip at most 10 s apart, in either direction.
CREATE STREAM departures (trip VARCHAR KEY, stop VARCHAR)
  WITH (KAFKA_TOPIC='departures', VALUE_FORMAT='JSON');
CREATE STREAM arrivals (trip VARCHAR KEY, stop VARCHAR)
  WITH (KAFKA_TOPIC='arrivals', VALUE_FORMAT='JSON');
CREATE STREAM legs AS
  SELECT d.trip, d.stop AS from_stop, a.stop AS to_stop
  FROM departures d JOIN arrivals a WITHIN 10 SECONDS ON d.trip = a.trip;

--> departures ts=1000 key="t1" value={"stop": "A"}
--> arrivals ts=5000 key="t1" value={"stop": "B"}
--> arrivals ts=30000 key="t1" value={"stop": "C"}
--> departures ts=25000 key="t2" value={"stop": "X"}
--> arrivals ts=26000 key="t3" value={"stop": "Y"}

--< LEGS key="t1" value={"FROM_STOP":"A","TO_STOP":"B"}
