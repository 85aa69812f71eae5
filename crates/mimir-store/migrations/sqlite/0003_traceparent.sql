-- The submission's W3C trace context, continued by the worker that runs the task.
ALTER TABLE worktasks ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
