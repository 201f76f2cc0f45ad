-- AVRO needs the schema registry work: a clear error at the property.
CREATE TABLE turnstiles(station_id INT, station_name VARCHAR, line VARCHAR)
  WITH (KAFKA_TOPIC='org.chicago.cta.turnstiles', VALUE_FORMAT='AVRO', KEY='station_id');
--! line 3:51: VALUE_FORMAT format AVRO is not supported yet
