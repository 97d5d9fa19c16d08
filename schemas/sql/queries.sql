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
