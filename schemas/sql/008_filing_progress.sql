-- Filing progress, kept incrementally by triggers in the same transaction as the row change
-- (the consumer's upsert, an import), so a request never counts the forms or candidates
-- tables. A change adds +1/-1 to a counter row of its connection's slot: concurrent writers
-- (consumers, import writers) almost never share a row, so they do not wait on each other's
-- row locks; a read sums the slots. A form's school is its candidate's at the time of the
-- change; a candidate who moves school takes their forms' counts along.
-- Run `volreg migrate` before starting processes of this version: the counts of the rows
-- already there are filled in once below.
CREATE TABLE IF NOT EXISTS filing_counts (
  batch_code VARCHAR(32) NOT NULL,
  school_code VARCHAR(16) NOT NULL,
  status VARCHAR(16) NOT NULL,
  slot TINYINT UNSIGNED NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY (batch_code, school_code, status, slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS school_counts (
  school_code VARCHAR(16) NOT NULL,
  slot TINYINT UNSIGNED NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY (school_code, slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT INTO school_counts (school_code, slot, n)
SELECT school_code, 0, COUNT(*) FROM candidates GROUP BY school_code
ON DUPLICATE KEY UPDATE n = VALUES(n);

INSERT INTO filing_counts (batch_code, school_code, status, slot, n)
SELECT f.batch_code, COALESCE(c.school_code, ''), f.status, 0, COUNT(*)
FROM forms f LEFT JOIN candidates c ON c.candidate_id = f.candidate_id
GROUP BY f.batch_code, COALESCE(c.school_code, ''), f.status
ON DUPLICATE KEY UPDATE n = VALUES(n);

CREATE TRIGGER IF NOT EXISTS forms_progress_insert AFTER INSERT ON forms FOR EACH ROW
INSERT INTO filing_counts (batch_code, school_code, status, slot, n)
VALUES (
  NEW.batch_code,
  COALESCE((SELECT school_code FROM candidates WHERE candidate_id = NEW.candidate_id), ''),
  NEW.status, CONNECTION_ID() % 64, 1)
ON DUPLICATE KEY UPDATE n = n + 1;

CREATE TRIGGER IF NOT EXISTS forms_progress_update AFTER UPDATE ON forms FOR EACH ROW
INSERT INTO filing_counts (batch_code, school_code, status, slot, n)
SELECT NEW.batch_code,
  COALESCE((SELECT school_code FROM candidates WHERE candidate_id = NEW.candidate_id), ''),
  x.status, CONNECTION_ID() % 64, x.delta
FROM (SELECT OLD.status AS status, -1 AS delta UNION ALL SELECT NEW.status, 1) AS x
WHERE OLD.status <> NEW.status
ON DUPLICATE KEY UPDATE n = n + VALUES(n);

CREATE TRIGGER IF NOT EXISTS candidates_progress_insert AFTER INSERT ON candidates FOR EACH ROW
INSERT INTO school_counts (school_code, slot, n)
VALUES (NEW.school_code, CONNECTION_ID() % 64, 1)
ON DUPLICATE KEY UPDATE n = n + 1;

CREATE TRIGGER IF NOT EXISTS candidates_progress_move AFTER UPDATE ON candidates FOR EACH ROW
INSERT INTO school_counts (school_code, slot, n)
SELECT x.school, CONNECTION_ID() % 64, x.delta
FROM (SELECT OLD.school_code AS school, -1 AS delta UNION ALL SELECT NEW.school_code, 1) AS x
WHERE OLD.school_code <> NEW.school_code
ON DUPLICATE KEY UPDATE n = n + VALUES(n);

CREATE TRIGGER IF NOT EXISTS candidates_progress_move_forms AFTER UPDATE ON candidates
FOR EACH ROW FOLLOWS candidates_progress_move
INSERT INTO filing_counts (batch_code, school_code, status, slot, n)
SELECT f.batch_code, x.school, f.status, CONNECTION_ID() % 64, x.delta
FROM forms f
JOIN (SELECT OLD.school_code AS school, -1 AS delta UNION ALL SELECT NEW.school_code, 1) AS x
WHERE f.candidate_id = NEW.candidate_id AND OLD.school_code <> NEW.school_code
ON DUPLICATE KEY UPDATE n = n + VALUES(n)
