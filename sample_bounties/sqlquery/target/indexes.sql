-- Indexes (mutable), created after the data is loaded; add what the query needs.
-- Every statement here is part of the timed run, so an index must pay for its build time.
-- The marks let the search proposer try other columns for the two existing indexes.
CREATE INDEX idx_orders_1 ON orders(status);  -- # search: choice(status, day, customer_id, sku)
CREATE INDEX idx_customers_1 ON customers(segment);  -- # search: choice(segment, region, id, name)
