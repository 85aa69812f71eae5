-- Task counts per (type, status, priority), kept in the transaction of every
-- change so summaries never scan the tasks. Statement triggers append deltas
-- (inserts only: no hot row for concurrent writers to queue on); readers sum
-- totals and deltas, and a compaction folds the deltas into the totals now
-- and then.
CREATE TABLE task_count_totals (
    type     text     NOT NULL,
    status   text     NOT NULL,
    priority smallint NOT NULL,
    n        bigint   NOT NULL,
    PRIMARY KEY (type, status, priority)
);

CREATE TABLE task_count_deltas (
    type     text     NOT NULL,
    status   text     NOT NULL,
    priority smallint NOT NULL,
    n        bigint   NOT NULL
);

CREATE FUNCTION mimir_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_count_deltas (type, status, priority, n)
    SELECT type, status, priority, count(*) FROM new_rows GROUP BY type, status, priority;
    RETURN NULL;
END $$;

CREATE FUNCTION mimir_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_count_deltas (type, status, priority, n)
    SELECT type, status, priority, sum(n) FROM (
        SELECT type, status, priority, 1 AS n FROM new_rows
        UNION ALL
        SELECT type, status, priority, -1 AS n FROM old_rows
    ) AS moved
    GROUP BY type, status, priority
    HAVING sum(n) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION mimir_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_count_deltas (type, status, priority, n)
    SELECT type, status, priority, -count(*) FROM old_rows GROUP BY type, status, priority;
    RETURN NULL;
END $$;

CREATE TRIGGER worktasks_count_inserted AFTER INSERT ON worktasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mimir_count_inserted();
CREATE TRIGGER worktasks_count_updated AFTER UPDATE ON worktasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mimir_count_updated();
CREATE TRIGGER worktasks_count_deleted AFTER DELETE ON worktasks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mimir_count_deleted();
