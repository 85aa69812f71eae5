-- Ended attempts as a JSON array (mimir_core::Attempt), appended by the same
-- UPDATE that ends each attempt, so the history costs no extra write. The
-- attempt that completes a task is not appended: the row holds it.
ALTER TABLE worktasks ADD COLUMN attempts TEXT NOT NULL DEFAULT '[]';
