-- PROTOBUF is not supported (AVRO is, through the schema registry): a clear error at the property.
CREATE TABLE turnstiles(station_id INT, station_name VARCHAR, line VARCHAR)
  WITH (KAFKA_TOPIC='org.chicago.cta.turnstiles', VALUE_FORMAT='PROTOBUF', KEY='station_id');
--! line 3:51: VALUE_FORMAT format PROTOBUF is not supported yet (JSON, KAFKA and AVRO are)
