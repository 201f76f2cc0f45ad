-- Errors name the line and column of the offending token.
CREATE STREAM s (id VARCHAR KEY, n INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');
CREATE STREAM t AS
  SELECT id, n + nope AS m FROM s;
--! line 4:18: unknown column NOPE
