-- A pipeline's default step timeout, in milliseconds (NULL: none).
ALTER TABLE pipelines ADD COLUMN step_timeout_ms INTEGER;
