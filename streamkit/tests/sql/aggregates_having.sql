-- Every aggregate over a stream, grouped by a value column (a repartition), with HAVING:
-- a group failing HAVING is deleted from the table (a tombstone).
CREATE STREAM readings (sensor VARCHAR KEY, site VARCHAR, temp DOUBLE, level INT)
  WITH (KAFKA_TOPIC='readings', VALUE_FORMAT='JSON');
CREATE TABLE site_stats AS
  SELECT site, COUNT(*) AS n, COUNT(level) AS levels, SUM(level) AS total, AVG(temp) AS mean,
         MIN(temp) AS lo, MAX(temp) AS hi, LATEST_BY_OFFSET(sensor) AS last_sensor,
         COLLECT_LIST(level) AS all_levels
  FROM readings
  GROUP BY site
  HAVING SUM(level) < 10;

--> readings ts=1 key="s1" value={"site": "north", "temp": 20.5, "level": 3}
--> readings ts=2 key="s2" value={"site": "north", "temp": 18.5, "level": null}
--> readings ts=3 key="s3" value={"site": "south", "temp": 30.0, "level": 4}
--> readings ts=4 key="s1" value={"site": "north", "temp": 22.0, "level": 8}
--> readings ts=5 key="s4" value={"site": null, "temp": 1.0, "level": 1}

--< SITE_STATS key="north" value={"ALL_LEVELS":[3],"HI":20.5,"LAST_SENSOR":"s1","LEVELS":1,"LO":20.5,"MEAN":20.5,"N":1,"TOTAL":3}
--< SITE_STATS key="north" value={"ALL_LEVELS":[3,null],"HI":20.5,"LAST_SENSOR":"s2","LEVELS":1,"LO":18.5,"MEAN":19.5,"N":2,"TOTAL":3}
--< SITE_STATS key="south" value={"ALL_LEVELS":[4],"HI":30.0,"LAST_SENSOR":"s3","LEVELS":1,"LO":30.0,"MEAN":30.0,"N":1,"TOTAL":4}
--< SITE_STATS key="north" value=null
