-- Table-table LEFT JOIN on both primary keys: a route without a headway row joins with
-- NULLs; the headway arriving later updates the joined row; deleting the route deletes it.
CREATE TABLE routes (id VARCHAR PRIMARY KEY, name VARCHAR)
  WITH (KAFKA_TOPIC='routes', VALUE_FORMAT='JSON');
CREATE TABLE headways (route VARCHAR PRIMARY KEY, minutes INT)
  WITH (KAFKA_TOPIC='headways', VALUE_FORMAT='JSON');
CREATE TABLE route_info AS
  SELECT r.id, r.name, h.minutes FROM routes r LEFT JOIN headways h ON r.id = h.route;

--> routes ts=1 key="M15" value={"name": "First/Second Av"}
--> headways ts=2 key="M15" value={"minutes": 6}
--> headways ts=3 key="B63" value={"minutes": 10}
--> routes ts=4 key="M15" value=null

--< ROUTE_INFO key="M15" value={"MINUTES":null,"NAME":"First/Second Av"}
--< ROUTE_INFO key="M15" value={"MINUTES":6,"NAME":"First/Second Av"}
--< ROUTE_INFO key="M15" value=null
