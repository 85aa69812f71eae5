-- Leadership among the processes sharing the database: one row per role.
-- A new holder takes term + 1; leader-only writes name their term and are
-- refused once it is no longer current.
CREATE TABLE mimir_leader (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    term       bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);
