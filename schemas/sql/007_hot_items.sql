-- Hot items: minute totals per batch and kind (the durable copy of the Redis buckets, from
-- which the aggregator rebuilds them when Redis lost its data), and the event messages already
-- applied (a redelivered message is counted once).
CREATE TABLE IF NOT EXISTS hot_minutes (
  minute INT UNSIGNED NOT NULL,
  batch_code VARCHAR(32) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  item VARCHAR(64) NOT NULL,
  hits BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (minute, batch_code, kind, item)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS hot_messages (
  message_id VARCHAR(64) NOT NULL PRIMARY KEY,
  applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY idx_hot_messages_applied (applied_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
