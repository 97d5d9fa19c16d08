-- Token revocation: every token names its account's generation when issued; logging out
-- (and a password, role or school change) increments it, and older tokens stop working.
ALTER TABLE candidates ADD COLUMN IF NOT EXISTS token_generation INT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE staff ADD COLUMN IF NOT EXISTS token_generation INT UNSIGNED NOT NULL DEFAULT 0;
