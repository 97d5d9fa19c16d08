-- Save history: every acknowledged save and submission, written by the consumer before the
-- form's upsert (a redelivery inserts nothing new): the version, when, the choices as saved,
-- and who sent it from where, so that a dispute can be answered. On the candidate's shard.
CREATE TABLE IF NOT EXISTS form_history (
  candidate_id CHAR(18) NOT NULL,
  batch_code VARCHAR(32) NOT NULL,
  version BIGINT UNSIGNED NOT NULL,
  updated_us BIGINT UNSIGNED NOT NULL,
  status VARCHAR(16) NOT NULL,
  client VARCHAR(64) NOT NULL,
  request_id VARCHAR(64) NOT NULL,
  subject VARCHAR(64) NOT NULL,
  role VARCHAR(16) NOT NULL,
  choices MEDIUMBLOB NOT NULL,
  recorded_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (candidate_id, batch_code, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
