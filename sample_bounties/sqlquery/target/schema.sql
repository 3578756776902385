-- Tables for the sales export (mutable).  run.py loads inputs/<table>.csv.xz into the
-- table of the same name, matching columns by the CSV header.  Values arrive as text;
-- declared types decide how SQLite stores them, so keep results identical.
CREATE TABLE customers (
    id          INTEGER,
    name        TEXT,
    region      TEXT,        -- spelt in inconsistent case in the export ("North", "NORTH", "north")
    segment     TEXT,
    signup_day  TEXT
);

CREATE TABLE products (
    sku          TEXT,
    name         TEXT,
    category     TEXT,
    price_cents  INTEGER
);

CREATE TABLE orders (
    id           INTEGER,
    customer_id  INTEGER,
    sku          TEXT,
    qty          INTEGER,
    day          TEXT,       -- ISO date, YYYY-MM-DD
    status       TEXT        -- shipped, returned, cancelled, pending
);
