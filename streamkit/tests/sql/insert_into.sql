-- INSERT INTO merges a second query's rows into an existing stream's topic.
CREATE STREAM bus_alerts (route VARCHAR KEY, msg VARCHAR)
  WITH (KAFKA_TOPIC='bus_alerts', VALUE_FORMAT='JSON');
CREATE STREAM train_alerts (line VARCHAR KEY, msg VARCHAR)
  WITH (KAFKA_TOPIC='train_alerts', VALUE_FORMAT='JSON');
CREATE STREAM alerts WITH (KAFKA_TOPIC='alerts') AS
  SELECT route AS source, msg FROM bus_alerts;
INSERT INTO alerts SELECT line AS source, UCASE(msg) AS msg FROM train_alerts;

--> bus_alerts ts=1 key="M15" value={"msg": "detour"}
--> train_alerts ts=2 key="Red" value={"msg": "delays"}

--< alerts key="M15" value={"MSG":"detour"}
--< alerts key="Red" value={"MSG":"DELAYS"}
