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

-- name: form_versions
-- {rows} is one "(%s)" group per candidate ID.
SELECT candidate_id, version FROM forms WHERE batch_code = %s AND candidate_id IN ({rows})

-- name: get_candidate
SELECT candidate_id, name, school_code, password_hash, token_generation
FROM candidates WHERE candidate_id = %s

-- name: candidate_token_generation
SELECT token_generation FROM candidates WHERE candidate_id = %s

-- name: bump_candidate_tokens
UPDATE candidates SET token_generation = token_generation + 1 WHERE candidate_id = %s

-- name: get_exam
SELECT total_score, province_rank, subjects FROM exam_results WHERE candidate_id = %s

-- name: list_batches
SELECT batch_code, name, opens_at, closes_at, changes_after_submit FROM admission_batches
ORDER BY batch_code

-- name: upsert_candidates
INSERT INTO candidates (candidate_id, name, school_code, password_hash, shard)
VALUES {rows}
-- First, while the other columns still hold the old values: a new password or school
-- revokes the tokens of the candidate (the same file imported again changes nothing).
ON DUPLICATE KEY UPDATE
  token_generation = token_generation + IF(
    password_hash <> VALUES(password_hash) OR school_code <> VALUES(school_code), 1, 0),
  name = VALUES(name), school_code = VALUES(school_code),
  password_hash = VALUES(password_hash), shard = VALUES(shard)

-- name: upsert_exams
INSERT INTO exam_results (candidate_id, total_score, province_rank, subjects)
VALUES {rows}
ON DUPLICATE KEY UPDATE
  total_score = VALUES(total_score), province_rank = VALUES(province_rank),
  subjects = VALUES(subjects)

-- name: upsert_batch
INSERT INTO admission_batches (batch_code, name, opens_at, closes_at, changes_after_submit)
VALUES (%s, %s, %s, %s, %s)
ON DUPLICATE KEY UPDATE name = VALUES(name), opens_at = VALUES(opens_at),
  closes_at = VALUES(closes_at), changes_after_submit = VALUES(changes_after_submit)

-- name: naive_create_table
-- Benchmark only (`volreg serve --naive`): the naive design writes a copy of the forms table,
-- so it never touches the rows the real save path owns.
CREATE TABLE IF NOT EXISTS naive_forms LIKE forms

-- name: naive_save_form
-- Benchmark only: one durable autocommit per save. LAST_INSERT_ID(expr) hands the stored
-- version back in the OK packet, so the save costs one round trip like a real naive design.
INSERT INTO naive_forms (candidate_id, batch_code, shard, version, updated_us, status, choices)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON DUPLICATE KEY UPDATE
  version = LAST_INSERT_ID(GREATEST(version + 1, VALUES(version))),
  updated_us = VALUES(updated_us), status = VALUES(status), choices = VALUES(choices)

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
-- Warm-up: one shard's forms in key order, with their content (keyset paging on
-- idx_forms_shard): a page fills Redis with a few calls on the shard's slot.
SELECT candidate_id, batch_code, version, updated_us, status, choices FROM forms
WHERE shard = %s AND (candidate_id > %s OR (candidate_id = %s AND batch_code > %s))
ORDER BY candidate_id, batch_code LIMIT %s

-- name: warmup_count
SELECT COUNT(*) FROM forms

-- name: get_staff
SELECT username, role, school_code, name, password_hash, token_generation
FROM staff WHERE username = %s

-- name: staff_token_generation
SELECT token_generation FROM staff WHERE username = %s

-- name: bump_staff_tokens
UPDATE staff SET token_generation = token_generation + 1 WHERE username = %s

-- name: upsert_staff
INSERT INTO staff (username, role, school_code, name, password_hash)
VALUES {rows}
ON DUPLICATE KEY UPDATE token_generation = token_generation + 1,
  role = VALUES(role), school_code = VALUES(school_code),
  name = VALUES(name), password_hash = VALUES(password_hash)

-- name: import_teachers
-- A teachers file never touches an admin account. MySQL applies the assignments left to
-- right, each seeing the ones before: role goes last, so every test reads the stored role.
INSERT INTO staff (username, role, school_code, name, password_hash)
VALUES {rows}
ON DUPLICATE KEY UPDATE
  token_generation = token_generation + IF(role <> 'admin' AND (
    password_hash <> VALUES(password_hash) OR school_code <> VALUES(school_code)), 1, 0),
  school_code = IF(role = 'admin', school_code, VALUES(school_code)),
  name = IF(role = 'admin', name, VALUES(name)),
  password_hash = IF(role = 'admin', password_hash, VALUES(password_hash)),
  role = IF(role = 'admin', role, VALUES(role))

-- name: school_candidates
-- A page of a school's candidates in ID order (keyset paging after the cursor), filtered by
-- whether they saved a form (in the given batch, or in any batch when it is ''):
-- filter '' = all, 'filed', 'unfiled'.
SELECT c.candidate_id, c.name FROM candidates c
WHERE c.school_code = %s AND c.candidate_id > %s
  AND (%s = '' OR (%s = 'filed') = EXISTS (
    SELECT 1 FROM forms f WHERE f.candidate_id = c.candidate_id AND (%s = '' OR f.batch_code = %s)))
ORDER BY c.candidate_id LIMIT %s

-- name: forms_of_candidates
-- {rows} is one "(%s)" group per candidate ID.
SELECT candidate_id, batch_code, status, version, updated_us FROM forms
WHERE candidate_id IN ({rows}) ORDER BY candidate_id, batch_code

-- name: list_institutions
SELECT institution_code, name FROM institutions ORDER BY institution_code

-- name: get_institution
SELECT institution_code, name FROM institutions WHERE institution_code = %s

-- name: majors_of_institution
SELECT major_code, name FROM majors WHERE institution_code = %s ORDER BY major_code

-- name: upsert_institutions
INSERT INTO institutions (institution_code, name) VALUES {rows}
ON DUPLICATE KEY UPDATE name = VALUES(name)

-- name: delete_majors
DELETE FROM majors WHERE institution_code = %s

-- name: insert_majors
INSERT INTO majors (institution_code, major_code, name) VALUES {rows}

-- name: list_control_lines
SELECT batch_code, category, min_score FROM control_lines ORDER BY batch_code, category

-- name: delete_control_lines
DELETE FROM control_lines WHERE batch_code = %s

-- name: insert_control_lines
INSERT INTO control_lines (batch_code, category, min_score) VALUES {rows}

-- name: create_import_job
INSERT INTO import_jobs (job_id, kind, source, fingerprint, state, total_bytes,
  started_at, run_started_at, updated_at)
VALUES (%s, %s, %s, %s, 'running', %s, NOW(6), NOW(6), NOW(6))

-- name: restart_import_job
-- A rerun of an unfinished job: it goes on from its checkpoint (the rows loaded).
-- Reading starts over (rows, rejections, bytes); loading goes on after the rows loaded.
UPDATE import_jobs SET state = 'running', error = '', total_bytes = %s, runs = runs + 1,
  resumed_from = imported, rows_done = 0, rejected = 0, byte_offset = 0, input_bytes = 0,
  run_started_at = NOW(6), updated_at = NOW(6), finished_at = NULL
WHERE job_id = %s

-- name: checkpoint_import_job
UPDATE import_jobs SET rows_done = %s, byte_offset = %s, input_bytes = %s, imported = %s,
  rejected = %s, updated_at = NOW(6)
WHERE job_id = %s

-- name: finish_import_job
UPDATE import_jobs SET state = %s, error = %s, updated_at = NOW(6), finished_at = NOW(6)
WHERE job_id = %s

-- name: get_import_job
SELECT job_id, kind, source, fingerprint, state, total_bytes, input_bytes, byte_offset,
  rows_done, imported, rejected, resumed_from, runs, error, started_at, run_started_at,
  updated_at, finished_at, NOW(6), digest
FROM import_jobs WHERE job_id = %s

-- name: lease_import_job
-- Take (or renew) the job's lease: free, expired, or already ours. 1 row: it is ours.
UPDATE import_jobs SET lease_token = %s, lease_until = NOW(6) + INTERVAL %s SECOND
WHERE job_id = %s AND (lease_token = '' OR lease_until < NOW(6) OR lease_token = %s)

-- name: release_import_job
UPDATE import_jobs SET lease_token = '', lease_until = NULL
WHERE job_id = %s AND lease_token = %s

-- name: set_import_digest
-- The first run that read the whole stream records its digest; later runs must match it.
UPDATE import_jobs SET digest = %s WHERE job_id = %s AND digest = ''

-- name: unfinished_import_job
-- The newest unfinished job over the same content, to resume.
SELECT job_id FROM import_jobs
WHERE fingerprint = %s AND kind = %s AND state <> 'done' AND total_bytes <=> %s
ORDER BY started_at DESC LIMIT 1

-- name: insert_import_rejections
-- IGNORE: a resumed run may write a batch's rejections again.
INSERT IGNORE INTO import_rejections (job_id, line, reason) VALUES {rows}

-- name: import_rejections
SELECT line, reason FROM import_rejections WHERE job_id = %s AND line > %s
ORDER BY line LIMIT %s

-- name: hot_message_applied
-- Hot items: a message id may be applied once (a duplicate fails the transaction).
INSERT INTO hot_messages (message_id) VALUES (%s)

-- name: hot_add_minutes
INSERT INTO hot_minutes (minute, batch_code, kind, item, hits) VALUES {rows}
ON DUPLICATE KEY UPDATE hits = hits + VALUES(hits)

-- name: hot_minutes_page
-- Rebuilding the Redis buckets: minute totals in primary-key order, keyset paged.
SELECT minute, batch_code, kind, item, hits FROM hot_minutes
WHERE (minute, batch_code, kind, item) > (%s, %s, %s, %s)
ORDER BY minute, batch_code, kind, item LIMIT %s

-- name: hot_message_ids
-- Rebuilding the Redis buckets: the messages whose rows the rebuild replays.
SELECT message_id FROM hot_messages

-- name: hot_prune_messages
DELETE FROM hot_messages WHERE applied_at < NOW(6) - INTERVAL 2 DAY LIMIT 10000

-- name: progress_school_forms
-- Filing progress: sums of the counter slots (never a count over forms or candidates).
SELECT status, SUM(n) FROM filing_counts WHERE batch_code = %s AND school_code = %s
GROUP BY status

-- name: progress_school_candidates
SELECT COALESCE(SUM(n), 0) FROM school_counts WHERE school_code = %s

-- name: progress_forms
SELECT school_code, status, SUM(n) FROM filing_counts WHERE batch_code = %s
GROUP BY school_code, status

-- name: progress_candidates
SELECT school_code, SUM(n) FROM school_counts GROUP BY school_code

-- name: history_insert
-- The save history: a redelivered message finds its row and inserts nothing.
INSERT IGNORE INTO form_history (candidate_id, batch_code, version, updated_us, status, client,
  request_id, subject, role, choices)
VALUES {rows}

-- name: history_page
-- Newest first, keyset paged by version.
SELECT version, updated_us, status, client, request_id, subject, role, choices, recorded_at
FROM form_history WHERE candidate_id = %s AND batch_code = %s AND version < %s
ORDER BY version DESC LIMIT %s

-- name: console_last_reconcile
SELECT mode, shard, outcome, started_at, duration_ms, checked, drifted, repaired_redis,
  repaired_mysql, unrepaired, in_grace, error
FROM reconcile_runs ORDER BY id DESC LIMIT 1
-- name: status_reconcile_runs
-- `volreg status`: the last few reconcile runs.
SELECT mode, shard, outcome, started_at, duration_ms, checked, drifted, repaired_redis,
  repaired_mysql, unrepaired, in_grace, error
FROM reconcile_runs ORDER BY id DESC LIMIT 3

-- name: status_imports
-- `volreg status`: imports still running (or interrupted: resumable).
SELECT job_id, kind, source, rows_done, imported, rejected, input_bytes, total_bytes,
  run_started_at
FROM import_jobs WHERE state = 'running' ORDER BY started_at

-- name: bench_candidate_ids
-- Benchmark only (python -m loadtest.variants --writes): the candidates to write forms for.
SELECT candidate_id FROM candidates ORDER BY candidate_id LIMIT 5000
