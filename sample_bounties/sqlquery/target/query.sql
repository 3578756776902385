-- For one region and one window of days: the ten products with the most revenue from
-- shipped orders, with the number of distinct buyers.  Parameters: :region (any case),
-- :day_from, :day_to (ISO dates, inclusive).  Ties on revenue go to the smaller sku.
-- Mutable: rewrite it freely, as long as every result row stays identical.
SELECT p.sku,
       p.name,
       p.category,
       SUM(o.qty * p.price_cents) AS revenue_cents,
       COUNT(DISTINCT o.customer_id) AS buyers
FROM orders o, products p, customers c
WHERE p.sku = o.sku
  AND c.id = o.customer_id
  AND lower(c.region) = lower(:region)
  AND o.day BETWEEN :day_from AND :day_to
  AND o.status = 'shipped'
GROUP BY p.sku, p.name, p.category
ORDER BY revenue_cents DESC, p.sku
LIMIT 10;
