-- Reconciliation: one report row per run, and an index to sweep a shard's forms in key order.
CREATE TABLE IF NOT EXISTS reconcile_runs (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  mode VARCHAR(16) NOT NULL,
  shard SMALLINT UNSIGNED NULL,
  outcome VARCHAR(16) NOT NULL,
  started_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  duration_ms INT UNSIGNED NOT NULL,
  checked INT UNSIGNED NOT NULL,
  drifted INT UNSIGNED NOT NULL,
  repaired_redis INT UNSIGNED NOT NULL,
  repaired_mysql INT UNSIGNED NOT NULL,
  unrepaired INT UNSIGNED NOT NULL,
  in_grace INT UNSIGNED NOT NULL,
  mysql_mark TIMESTAMP(6) NULL,
  redis_mark_us BIGINT UNSIGNED NULL,
  error VARCHAR(500) NULL,
  KEY idx_reconcile_runs_mode (mode, shard, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- InnoDB appends the primary key to a secondary index: this is (shard, candidate_id,
-- batch_code), so a full sweep pages through one shard in key order.
CREATE INDEX IF NOT EXISTS idx_forms_shard ON forms (shard)
