-- Settings that must never change under existing data, recorded by `volreg migrate` and checked
-- by every process at start: the shard count maps each candidate to its Redis hash tag, its
-- queue and its MySQL shard.
CREATE TABLE IF NOT EXISTS volreg_settings (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  value VARCHAR(255) NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
