-- STRUCT columns: nested JSON objects read into named fields, `col->field` in the
-- projection (named after the field), in WHERE (`->` binds tighter than `=`, `+` and IS NULL
-- on both sides), nested twice, in GROUP BY, and a STRUCT column written out whole. Field
-- names match case-insensitively; a missing field or object is NULL.
CREATE STREAM riders (rider VARCHAR KEY,
                      trip STRUCT<line VARCHAR, origin STRUCT<station_id INT, name VARCHAR>, fare INT>)
  WITH (KAFKA_TOPIC='riders', VALUE_FORMAT='JSON');
CREATE STREAM blue_trips AS
  SELECT rider, trip->line, trip->origin->name AS origin, trip->fare + 25 AS fare_cents, trip
  FROM riders
  WHERE trip->line = 'blue' AND 200 < trip->fare + 50 AND trip->origin IS NOT NULL
  EMIT CHANGES;
CREATE TABLE fares_by_line AS
  SELECT trip->line AS line, SUM(trip->fare) AS fares
  FROM riders WHERE trip->fare IS NOT NULL GROUP BY trip->line EMIT CHANGES;

--> riders ts=1 key="r1" value={"trip": {"line": "blue", "origin": {"station_id": 40380, "name": "Clark/Lake"}, "fare": 250}}
--> riders ts=2 key="r2" value={"TRIP": {"LINE": "red", "ORIGIN": {"STATION_ID": 41320, "NAME": "Belmont"}, "FARE": 225}}
--> riders ts=3 key="r3" value={"trip": {"line": "blue", "fare": 250}}
--> riders ts=4 key="r4" value={"trip": {"line": "blue", "origin": {"station_id": 40890}, "fare": 100}}
--> riders ts=5 key="r5" value={"trip": null}
--> riders ts=6 key="r6" value={"trip": {"line": "blue", "origin": {"station_id": 40890, "name": "O'Hare"}, "fare": 500}}

--< BLUE_TRIPS key="r1" value={"FARE_CENTS":275,"LINE":"blue","ORIGIN":"Clark/Lake","TRIP":{"LINE":"blue","ORIGIN":{"STATION_ID":40380,"NAME":"Clark/Lake"},"FARE":250}}
--< BLUE_TRIPS key="r6" value={"FARE_CENTS":525,"LINE":"blue","ORIGIN":"O'Hare","TRIP":{"LINE":"blue","ORIGIN":{"STATION_ID":40890,"NAME":"O'Hare"},"FARE":500}}
--< FARES_BY_LINE key="blue" value={"FARES":250}
--< FARES_BY_LINE key="red" value={"FARES":225}
--< FARES_BY_LINE key="blue" value={"FARES":500}
--< FARES_BY_LINE key="blue" value={"FARES":600}
--< FARES_BY_LINE key="blue" value={"FARES":1100}
