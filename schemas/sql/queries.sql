-- Named queries; the loader splits on "-- name:" lines. {rows} is filled with "(%s, ...)" groups.

-- name: upsert_forms
-- Version-guarded: a row changes only when the incoming version is newer, so redelivered and
-- reordered messages are harmless. version is assigned last: MySQL evaluates left to right.
INSERT INTO forms (candidate_id, batch_code, shard, version, updated_us, status, choices)
VALUES {rows}
ON DUPLICATE KEY UPDATE
  updated_us = IF(VALUES(version) > version, VALUES(updated_us), updated_us),
  status = IF(VALUES(version) > version, VALUES(status), status),
  choices = IF(VALUES(version) > version, VALUES(choices), choices),
  version = GREATEST(version, VALUES(version))

-- name: get_form
SELECT candidate_id, batch_code, version, updated_us, status, choices
FROM forms WHERE candidate_id = %s AND batch_code = %s

-- name: get_candidate
SELECT candidate_id, name, school_code, password_hash FROM candidates WHERE candidate_id = %s

-- name: get_exam
SELECT total_score, province_rank, subjects FROM exam_results WHERE candidate_id = %s

-- name: list_batches
SELECT batch_code, name, opens_at, closes_at FROM admission_batches ORDER BY batch_code

-- name: upsert_candidates
INSERT INTO candidates (candidate_id, name, school_code, password_hash, shard)
VALUES {rows}
ON DUPLICATE KEY UPDATE
  name = VALUES(name), school_code = VALUES(school_code),
  password_hash = VALUES(password_hash), shard = VALUES(shard)

-- name: upsert_exams
INSERT INTO exam_results (candidate_id, total_score, province_rank, subjects)
VALUES {rows}
ON DUPLICATE KEY UPDATE
  total_score = VALUES(total_score), province_rank = VALUES(province_rank),
  subjects = VALUES(subjects)

-- name: upsert_batch
INSERT INTO admission_batches (batch_code, name, opens_at, closes_at) VALUES (%s, %s, %s, %s)
ON DUPLICATE KEY UPDATE name = VALUES(name), opens_at = VALUES(opens_at),
  closes_at = VALUES(closes_at)

-- name: reconcile_forms_page
-- Full sweep of one shard in key order (keyset paging on idx_forms_shard).
SELECT candidate_id, batch_code FROM forms
WHERE shard = %s AND (candidate_id > %s OR (candidate_id = %s AND batch_code > %s))
ORDER BY candidate_id, batch_code LIMIT %s

-- name: reconcile_forms_changed
-- Incremental sweep of one shard: rows whose content changed since a mark (synced_at moves
-- only when a row really changes). Keyset paging on (synced_at, key).
SELECT candidate_id, batch_code, synced_at FROM forms
WHERE shard = %s AND synced_at >= %s
  AND (synced_at > %s OR candidate_id > %s OR (candidate_id = %s AND batch_code > %s))
ORDER BY synced_at, candidate_id, batch_code LIMIT %s

-- name: reconcile_stamps
-- {rows} is one "(%s, %s)" group (candidate_id, batch_code) per form.
SELECT candidate_id, batch_code, version, updated_us FROM forms
WHERE (candidate_id, batch_code) IN ({rows})

-- name: reconcile_records
-- {rows} is one "(%s, %s)" group (candidate_id, batch_code) per form.
SELECT candidate_id, batch_code, version, updated_us, status, choices FROM forms
WHERE (candidate_id, batch_code) IN ({rows})

-- name: reconcile_now
SELECT NOW(6)

-- name: reconcile_last_marks
-- Where the next incremental run starts: the marks of the newest run that completed
-- (a full run covers everything before its marks too).
SELECT mysql_mark, redis_mark_us FROM reconcile_runs
WHERE shard <=> %s AND outcome <> 'failed'
ORDER BY id DESC LIMIT 1

-- name: reconcile_record_run
INSERT INTO reconcile_runs (mode, shard, outcome, started_at, duration_ms, checked, drifted,
  repaired_redis, repaired_mysql, unrepaired, in_grace, mysql_mark, redis_mark_us, error)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)

-- name: warmup_forms_page
-- Warm-up: every form in key order, with its content (keyset paging on the primary key).
SELECT candidate_id, batch_code, version, updated_us, status, choices FROM forms
WHERE candidate_id > %s OR (candidate_id = %s AND batch_code > %s)
ORDER BY candidate_id, batch_code LIMIT %s

-- name: warmup_count
SELECT COUNT(*) FROM forms
