-- Stream-table join: taps keyed by card are re-keyed by station id (a repartition) and
-- joined with the stations table on its primary key; a tap at an unknown station is dropped
-- (INNER), and a station renamed later applies to later taps only.
CREATE TABLE stations (id INT PRIMARY KEY, name VARCHAR)
  WITH (KAFKA_TOPIC='stations', VALUE_FORMAT='JSON');
CREATE STREAM taps (card VARCHAR KEY, station_id INT, fare INT)
  WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');
CREATE STREAM named_taps WITH (KAFKA_TOPIC='named_taps') AS
  SELECT t.station_id, s.name AS station, t.card, t.fare * 2 AS double_fare
  FROM taps t JOIN stations s ON t.station_id = s.id;

--> stations ts=1 key=40380 value={"name": "Clark/Lake"}
--> stations ts=2 key=41320 value={"name": "Belmont"}
--> taps ts=10 key="c1" value={"station_id": 40380, "fare": 2}
--> taps ts=11 key="c2" value={"station_id": 99999, "fare": 2}
--> stations ts=12 key=40380 value={"name": "Clark/Lake (Loop)"}
--> taps ts=13 key="c3" value={"station_id": 40380, "fare": 3}
--> taps ts=14 key="c1" value={"station_id": 41320, "fare": 1}

--< named_taps key=40380 value={"CARD":"c1","DOUBLE_FARE":4,"STATION":"Clark/Lake"}
--< named_taps key=40380 value={"CARD":"c3","DOUBLE_FARE":6,"STATION":"Clark/Lake (Loop)"}
--< named_taps key=41320 value={"CARD":"c1","DOUBLE_FARE":2,"STATION":"Belmont"}
