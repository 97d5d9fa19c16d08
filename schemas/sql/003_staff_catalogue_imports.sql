-- Staff accounts (teachers, admins), the published catalogue (institutions, majors, control
-- lines of the admission batches) and resumable bulk-import jobs.
CREATE TABLE IF NOT EXISTS staff (
  username VARCHAR(64) NOT NULL PRIMARY KEY,
  role VARCHAR(16) NOT NULL,
  school_code VARCHAR(16) NOT NULL DEFAULT '',
  name VARCHAR(64) NOT NULL DEFAULT '',
  password_hash VARCHAR(160) NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS institutions (
  institution_code CHAR(5) NOT NULL PRIMARY KEY,
  name VARCHAR(128) NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS majors (
  institution_code CHAR(5) NOT NULL,
  major_code VARCHAR(7) NOT NULL,
  name VARCHAR(128) NOT NULL,
  PRIMARY KEY (institution_code, major_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Minimum total score per batch and category ("physics", "history", ...).
CREATE TABLE IF NOT EXISTS control_lines (
  batch_code VARCHAR(32) NOT NULL,
  category VARCHAR(32) NOT NULL,
  min_score DECIMAL(6,1) NOT NULL,
  PRIMARY KEY (batch_code, category)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per import. Reading: rows_done data rows (byte_offset bytes of the CSV, input_bytes
-- of the maybe compressed input) read, rejected of them rejected. Loading: imported rows
-- written to MySQL and Redis in key order, the checkpoint a rerun goes on from.
CREATE TABLE IF NOT EXISTS import_jobs (
  job_id VARCHAR(64) NOT NULL PRIMARY KEY,
  kind VARCHAR(16) NOT NULL,
  source VARCHAR(255) NOT NULL,
  fingerprint CHAR(64) NOT NULL,
  state VARCHAR(16) NOT NULL,
  total_bytes BIGINT UNSIGNED NULL,
  input_bytes BIGINT UNSIGNED NOT NULL DEFAULT 0,
  byte_offset BIGINT UNSIGNED NOT NULL DEFAULT 0,
  rows_done BIGINT UNSIGNED NOT NULL DEFAULT 0,
  imported BIGINT UNSIGNED NOT NULL DEFAULT 0,
  rejected BIGINT UNSIGNED NOT NULL DEFAULT 0,
  resumed_from BIGINT UNSIGNED NOT NULL DEFAULT 0,
  runs INT UNSIGNED NOT NULL DEFAULT 1,
  error VARCHAR(1000) NOT NULL DEFAULT '',
  started_at DATETIME(6) NOT NULL,
  run_started_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  finished_at DATETIME(6) NULL,
  KEY idx_import_jobs_fingerprint (fingerprint, started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS import_rejections (
  job_id VARCHAR(64) NOT NULL,
  line BIGINT UNSIGNED NOT NULL,
  reason VARCHAR(255) NOT NULL,
  PRIMARY KEY (job_id, line)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
