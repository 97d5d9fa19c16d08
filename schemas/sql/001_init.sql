-- Candidates, exam results, admission batches and forms.
CREATE TABLE IF NOT EXISTS candidates (
  candidate_id CHAR(18) NOT NULL PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  school_code VARCHAR(16) NOT NULL,
  password_hash VARCHAR(160) NOT NULL,
  shard SMALLINT UNSIGNED NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY idx_candidates_school (school_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS exam_results (
  candidate_id CHAR(18) NOT NULL PRIMARY KEY,
  total_score DECIMAL(6,1) NOT NULL,
  province_rank INT UNSIGNED NOT NULL,
  subjects LONGTEXT NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS admission_batches (
  batch_code VARCHAR(32) NOT NULL PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  opens_at DATETIME(6) NOT NULL,
  closes_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per (candidate, batch): the newest version the consumers have seen.
-- choices holds the same gzip bytes as Redis and the message; synced_at drives incremental
-- reconciliation (it only moves when a row really changes).
CREATE TABLE IF NOT EXISTS forms (
  candidate_id CHAR(18) NOT NULL,
  batch_code VARCHAR(32) NOT NULL,
  shard SMALLINT UNSIGNED NOT NULL,
  version BIGINT UNSIGNED NOT NULL,
  updated_us BIGINT UNSIGNED NOT NULL,
  status VARCHAR(16) NOT NULL,
  choices MEDIUMBLOB NOT NULL,
  synced_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (candidate_id, batch_code),
  KEY idx_forms_shard_synced (shard, synced_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
