-- Imports: the whole stream's digest (a resume must read the same bytes to the end, not just
-- the same first 64 KiB) and a lease, so one run at a time works on a job.
ALTER TABLE import_jobs
  ADD COLUMN IF NOT EXISTS digest CHAR(64) NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS lease_token CHAR(32) NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS lease_until DATETIME(6) NULL;
