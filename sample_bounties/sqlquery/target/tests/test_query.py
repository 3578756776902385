"""Unit tests of the schema, indexes and query (the bounty's constraints.test_command runs them).

Run from target/: python3 -m unittest discover -s tests
"""

import sqlite3
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def build(customers, products, orders) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    for name in ("settings.sql", "schema.sql"):
        db.executescript((HERE / name).read_text(encoding="utf-8"))
    # Values arrive as text, exactly as run.py loads them from the CSVs.
    db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", [tuple(map(str, c)) for c in customers])
    db.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", [tuple(map(str, p)) for p in products])
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", [tuple(map(str, o)) for o in orders])
    db.executescript((HERE / "indexes.sql").read_text(encoding="utf-8"))
    return db


def run_query(db, region, day_from, day_to):
    sql = (HERE / "query.sql").read_text(encoding="utf-8")
    return [list(r) for r in db.execute(sql, {"region": region, "day_from": day_from, "day_to": day_to})]


CUSTOMERS = [(1, "A", "North", "retail", "2024-01-01"), (2, "B", "NORTH", "vip", "2024-01-01"),
             (3, "C", "south", "retail", "2024-01-01")]
PRODUCTS = [("SKU-1", "Lamp", "lighting", 1000), ("SKU-2", "Rake", "garden", 500), ("SKU-3", "Pen", "office", 250)]


class QueryTests(unittest.TestCase):
    def test_revenue_buyers_region_case_window_and_status(self):
        orders = [
            (1, 1, "SKU-1", 2, "2025-01-01", "shipped"),    # in: first day of the window
            (2, 2, "SKU-1", 1, "2025-01-31", "shipped"),    # in: last day, other spelling of North
            (3, 1, "SKU-2", 3, "2025-01-15", "shipped"),
            (4, 1, "SKU-2", 9, "2025-01-15", "returned"),   # not shipped
            (5, 3, "SKU-3", 9, "2025-01-15", "shipped"),    # other region
            (6, 1, "SKU-3", 9, "2025-02-01", "shipped"),    # after the window
        ]
        rows = run_query(build(CUSTOMERS, PRODUCTS, orders), "north", "2025-01-01", "2025-01-31")
        self.assertEqual(rows, [["SKU-1", "Lamp", "lighting", 3000, 2], ["SKU-2", "Rake", "garden", 1500, 1]])

    def test_ties_go_to_the_smaller_sku_and_at_most_ten_rows(self):
        products = [(f"SKU-{i:02d}", f"P{i}", "toys", 100) for i in range(15)]
        orders = [(i, 1, f"SKU-{14 - i:02d}", 1, "2025-03-03", "shipped") for i in range(15)]
        rows = run_query(build(CUSTOMERS, products, orders), "North", "2025-03-01", "2025-03-31")
        self.assertEqual([r[0] for r in rows], [f"SKU-{i:02d}" for i in range(10)])
        self.assertTrue(all(isinstance(r[3], int) and r[3] == 100 for r in rows))

    def test_no_sales_gives_no_rows(self):
        self.assertEqual(run_query(build(CUSTOMERS, PRODUCTS, []), "North", "2025-01-01", "2025-12-31"), [])


if __name__ == "__main__":
    unittest.main()
