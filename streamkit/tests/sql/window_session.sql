-- Session windows: a record bridging two sessions merges them (the old sessions are retracted).
CREATE STREAM clicks (usr VARCHAR KEY, page VARCHAR)
  WITH (KAFKA_TOPIC='clicks', VALUE_FORMAT='JSON');
CREATE TABLE sessions AS
  SELECT usr, COUNT(*) AS clicks, COLLECT_LIST(page) AS pages
  FROM clicks WINDOW SESSION (5 SECONDS)
  GROUP BY usr;

--> clicks ts=0 key="ann" value={"page": "a"}
--> clicks ts=10000 key="ann" value={"page": "b"}
--> clicks ts=5000 key="ann" value={"page": "c"}

--< SESSIONS key="ann" window=0,0 value={"CLICKS":1,"PAGES":["a"]}
--< SESSIONS key="ann" window=10000,10000 value={"CLICKS":1,"PAGES":["b"]}
--< SESSIONS key="ann" window=0,0 value=null
--< SESSIONS key="ann" window=10000,10000 value=null
--< SESSIONS key="ann" window=0,10000 value={"CLICKS":3,"PAGES":["a","b","c"]}
