-- A field the STRUCT does not have is an error at planning, pointing at the field.
CREATE STREAM riders (rider VARCHAR KEY, trip STRUCT<line VARCHAR, fare INT>)
  WITH (KAFKA_TOPIC='riders', VALUE_FORMAT='JSON');
CREATE STREAM fares AS SELECT rider, trip->price FROM riders EMIT CHANGES;

--! line 4:44: no field PRICE in trip
