-- Connection settings (mutable), run before the schema is created.  These values come from
-- the small device this report first ran on; the marks let the search proposer try others.
PRAGMA page_size = 512;  -- # search: int(512, 65536, log)
PRAGMA cache_size = 40;  -- # search: int(10, 100000, log)
PRAGMA mmap_size = 0;  -- # search: int(0, 268435456)
PRAGMA temp_store = 1;  -- # search: int(0, 2)
PRAGMA synchronous = 2;  -- # search: int(0, 2)
