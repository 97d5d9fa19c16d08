-- Submission: whether a batch lets a submitted form be changed (and submitted again) while
-- its window is open. 1: yes (a change makes the form "saved" again), 0: submitted is final.
ALTER TABLE admission_batches
  ADD COLUMN IF NOT EXISTS changes_after_submit TINYINT(1) NOT NULL DEFAULT 1
