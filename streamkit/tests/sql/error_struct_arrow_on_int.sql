-- `->` reads fields of STRUCT columns only.
CREATE STREAM riders (rider VARCHAR KEY, fare INT)
  WITH (KAFKA_TOPIC='riders', VALUE_FORMAT='JSON');
CREATE STREAM fares AS SELECT rider, fare->cents FROM riders EMIT CHANGES;

--! -> reads a field of a STRUCT, and fare is INTEGER
