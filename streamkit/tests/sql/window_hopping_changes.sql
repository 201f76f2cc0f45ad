-- Hopping windows with EMIT CHANGES: every update of every window containing the record.
CREATE STREAM taps (station VARCHAR KEY, fare INT)
  WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');
CREATE TABLE fares AS
  SELECT station, SUM(fare) AS fares
  FROM taps WINDOW HOPPING (SIZE 60 SECONDS, ADVANCE BY 30 SECONDS)
  GROUP BY station EMIT CHANGES;

--> taps ts=10000 key="clark" value={"fare": 2}
--> taps ts=40000 key="clark" value={"fare": 3}

--< FARES key="clark" window=0,60000 value={"FARES":2}
--< FARES key="clark" window=0,60000 value={"FARES":5}
--< FARES key="clark" window=30000,90000 value={"FARES":3}
