-- A table grouped by a value column: moving a row to another group retracts it from the old
-- one (COUNT and SUM undo), and a tombstone removes it.
CREATE TABLE buses (bus VARCHAR PRIMARY KEY, route VARCHAR, seats INT)
  WITH (KAFKA_TOPIC='buses', VALUE_FORMAT='JSON');
CREATE TABLE per_route AS
  SELECT route, COUNT(*) AS buses, SUM(seats) AS seats FROM buses GROUP BY route;

--> buses ts=1 key="b1" value={"route": "M15", "seats": 40}
--> buses ts=2 key="b2" value={"route": "M15", "seats": 60}
--> buses ts=3 key="b1" value={"route": "B63", "seats": 40}
--> buses ts=4 key="b2" value=null

--< PER_ROUTE key="M15" value={"BUSES":1,"SEATS":40}
--< PER_ROUTE key="M15" value={"BUSES":2,"SEATS":100}
--< PER_ROUTE key="M15" value={"BUSES":1,"SEATS":60}
--< PER_ROUTE key="B63" value={"BUSES":1,"SEATS":40}
--< PER_ROUTE key="M15" value={"BUSES":0,"SEATS":0}
