-- MIN cannot be undone when a table row changes, so it is refused over a table.
CREATE TABLE t (id VARCHAR PRIMARY KEY, g VARCHAR, n INT) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');
CREATE TABLE m AS SELECT g, MIN(n) AS lo FROM t GROUP BY g;
--! line 3:29: MIN cannot be undone
