-- SQL workload for clients/run.sh: large tables, indexes, joins, group by,
-- sorts without indexes, window functions, updates and deletes, and
-- checksums of the results.  Values come from deterministic expressions, so
-- the output must be identical with and without the preloaded allocator.
-- run.sh puts a line before this script that makes sqlite3 report whether
-- the allocator library is mapped into its own process.
PRAGMA cache_size = -262144;
PRAGMA temp_store = MEMORY;
PRAGMA journal_mode = DELETE;
.headers off
.mode list

BEGIN;
CREATE TABLE t1(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL, d BLOB);
WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 300000)
INSERT INTO t1
SELECT x,
       (x * 7919) % 10007,
       printf('%08x-%s', (x * 2654435761) % 4294967296,
              substr('abcdefghijklmnopqrstuvwxyz0123456789', 1 + x % 30, 1 + (x * 13) % 37)),
       ((x * 48271) % 2147483647) / 1000.0,
       zeroblob((x * 31) % 700)
FROM seq;

CREATE TABLE t2(id INTEGER PRIMARY KEY, t1id INTEGER, tag TEXT, qty INTEGER);
WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 300000)
INSERT INTO t2
SELECT x, 1 + (x * 31337) % 300000, 'tag' || ((x * 17) % 997), (x * 101) % 1000 - 500
FROM seq;
COMMIT;

CREATE INDEX t1_a ON t1(a);
CREATE INDEX t1_b ON t1(b);
CREATE INDEX t2_t1id ON t2(t1id);
CREATE INDEX t2_tag_qty ON t2(tag, qty);

.print == counts
SELECT count(*), sum(a), sum(length(b)), printf('%.3f', total(c)), sum(length(d)) FROM t1;
SELECT count(*), sum(t1id), sum(qty), count(DISTINCT tag) FROM t2;

.print == join + group by
SELECT t2.tag, count(*), sum(t1.a), sum(t2.qty), min(t1.b), max(t1.b)
FROM t2 JOIN t1 ON t1.id = t2.t1id
GROUP BY t2.tag ORDER BY t2.tag LIMIT 40;

.print == join checksum
SELECT count(*), sum((t1.a * 31 + t2.qty) % 1000003), sum(length(t1.b) * t2.id % 65536)
FROM t1 JOIN t2 ON t2.t1id = t1.id WHERE t1.a BETWEEN 100 AND 9000;

.print == sort without index
SELECT sum(rn * (length(s) + 1)) % 1000000007 FROM (
  SELECT row_number() OVER (ORDER BY upper(b) || a DESC) AS rn, upper(b) || a AS s FROM t1);

.print == window functions
SELECT a % 50 AS g, count(*), printf('%.3f', max(running)) FROM (
  SELECT a, sum(c) OVER (PARTITION BY a % 50 ORDER BY id ROWS BETWEEN 100 PRECEDING AND CURRENT ROW) AS running
  FROM t1)
GROUP BY g ORDER BY g LIMIT 10;

.print == group_concat (large strings)
SELECT length(x), substr(x, 1, 40), substr(x, -40) FROM (
  SELECT group_concat(b, ',') AS x FROM (SELECT b FROM t1 WHERE a < 2000 ORDER BY b));

.print == distinct + having
SELECT count(*) FROM (SELECT b, count(*) AS n FROM t1 GROUP BY substr(b, 1, 3) HAVING n > 50);

.print == updates and deletes
BEGIN;
UPDATE t1 SET b = b || '-' || hex(randomblob(0)) || (id % 97), d = zeroblob((id * 7) % 2000) WHERE id % 3 = 0;
DELETE FROM t2 WHERE qty < -400;
DELETE FROM t1 WHERE id % 10 = 7;
INSERT INTO t2(t1id, tag, qty) SELECT id, 'new' || (id % 13), a % 100 FROM t1 WHERE id % 5 = 1;
COMMIT;
SELECT count(*), sum(length(b)), sum(length(d)) FROM t1;
SELECT count(*), sum(qty), sum(t1id) FROM t2;

.print == left join after deletes
SELECT count(*), sum(t1.id IS NULL), sum(coalesce(t1.a, 0)) FROM t2 LEFT JOIN t1 ON t1.id = t2.t1id;

.print == temp table + correlated subquery
CREATE TEMP TABLE top AS SELECT t1id, sum(qty) AS s FROM t2 GROUP BY t1id ORDER BY s DESC, t1id LIMIT 2000;
SELECT count(*), sum(s), sum((SELECT count(*) FROM t2 WHERE t2.t1id = top.t1id)) FROM top;

.print == reindex + vacuum
REINDEX;
VACUUM;
SELECT count(*), sum(a) FROM t1 INDEXED BY t1_a WHERE a > 5000;

.print == integrity
PRAGMA integrity_check;
