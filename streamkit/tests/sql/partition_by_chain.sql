-- PARTITION BY re-keys a stream by a value column (which becomes the key column); a second
-- query reads the first one's topic and counts per new key.
CREATE STREAM taps (card VARCHAR KEY, station VARCHAR, fare INT)
  WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');
CREATE STREAM taps_by_station WITH (KAFKA_TOPIC='taps_by_station') AS
  SELECT station, card, fare FROM taps WHERE fare > 0 PARTITION BY station EMIT CHANGES;
CREATE TABLE station_cards AS
  SELECT station, COUNT(*) AS taps, COLLECT_LIST(card) AS cards
  FROM taps_by_station GROUP BY station;

--> taps ts=1 key="c1" value={"station": "clark", "fare": 2}
--> taps ts=2 key="c2" value={"station": "clark", "fare": 0}
--> taps ts=3 key="c3" value={"station": "belmont", "fare": 3}
--> taps ts=4 key="c4" value={"station": "clark", "fare": 1}

--< STATION_CARDS key="clark" value={"CARDS":["c1"],"TAPS":1}
--< STATION_CARDS key="belmont" value={"CARDS":["c3"],"TAPS":1}
--< STATION_CARDS key="clark" value={"CARDS":["c1","c4"],"TAPS":2}
--< taps_by_station key="clark" value={"CARD":"c1","FARE":2}
--< taps_by_station key="belmont" value={"CARD":"c3","FARE":3}
--< taps_by_station key="clark" value={"CARD":"c4","FARE":1}
