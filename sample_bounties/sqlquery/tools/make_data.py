"""Generate the sqlquery eval sets (public, heldout/a, heldout/b) deterministically.

Run: python3 tools/make_data.py.  Kept outside target/, public/ and heldout/, never
shipped.  The expected results (labels) are computed here in plain Python from the
generated rows, independently of any SQL, so they also check the baseline query.

Each set has its own customers, products, orders and workload: another year, another
mix of regions (spelt in inconsistent case, as in the real export), other products.
Three workload items (canary-1..3) ask the same question in every set; their answers
differ, and public/canaries.json holds the public ones.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import lzma
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
REGIONS = ["North", "South", "East", "West", "Central", "Islands", "Highlands", "Coast"]
CATEGORIES = ["garden", "kitchen", "tools", "toys", "books", "sports", "office", "audio", "lighting", "pets"]
STATUSES = ["shipped"] * 8 + ["returned", "cancelled", "pending"]
SETS = {
    "public": dict(seed=5, year=2025, customers=3000, products=600, orders=20000, queries=160),
    "heldout/a": dict(seed=17, year=2024, customers=3200, products=650, orders=20000, queries=160),
    "heldout/b": dict(seed=29, year=2023, customers=2800, products=550, orders=20000, queries=160),
}
CANARIES = [  # (id, region as the sponsor's analysts type it, first day offset, days)
    ("canary-1", "north", 30, 60),
    ("canary-2", "ISLANDS", 120, 90),
    ("canary-3", "Coast", 200, 45),
]


def cased(rng: random.Random, word: str) -> str:
    return rng.choice([word, word, word.lower(), word.upper()])


def generate(cfg: dict) -> dict[str, list[dict]]:
    rng = random.Random(cfg["seed"])
    weights = [rng.uniform(0.3, 3.0) for _ in REGIONS]
    start = dt.date(cfg["year"], 1, 1)
    customers = [{"id": i, "name": f"Customer {i:05d}", "region": cased(rng, rng.choices(REGIONS, weights)[0]),
                  "segment": rng.choice(["retail", "retail", "business", "vip"]),
                  "signup_day": (start - dt.timedelta(days=rng.randint(0, 900))).isoformat()}
                 for i in range(1, cfg["customers"] + 1)]
    products = []
    for i in rng.sample(range(1, 10_000), cfg["products"]):
        category = rng.choice(CATEGORIES)
        products.append({"sku": f"SKU-{i:04d}", "name": f"{category.title()} item {i}",
                         "category": category, "price_cents": rng.randint(99, 49_999)})
    popular = [rng.paretovariate(1.2) for _ in products]
    orders = []
    for i in range(1, cfg["orders"] + 1):
        day = start + dt.timedelta(days=min(364, int(rng.triangular(0, 365, 300))))
        orders.append({"id": i, "customer_id": rng.randint(1, cfg["customers"]),
                       "sku": rng.choices(products, popular)[0]["sku"], "qty": rng.choice([1, 1, 1, 2, 2, 3, 5, 10]),
                       "day": day.isoformat(), "status": rng.choice(STATUSES)})
    # The export is in day order with ids assigned in that order (also compresses well).
    orders.sort(key=lambda o: (o["day"], o["id"]))
    for i, o in enumerate(orders, start=1):
        o["id"] = i
    workload = []
    for i in range(cfg["queries"]):
        first = rng.randint(0, 330)
        length = rng.choice([7, 14, 30, 30, 60, 90])
        workload.append({"id": f"q{i + 1:03d}", "region": cased(rng, rng.choice(REGIONS)),
                         "day_from": (start + dt.timedelta(days=first)).isoformat(),
                         "day_to": (start + dt.timedelta(days=first + length - 1)).isoformat()})
    for cid, region, first, length in CANARIES:
        workload.append({"id": cid, "region": region, "day_from": f"{cfg['year']}-01-01",
                         "day_to": (start + dt.timedelta(days=first + length - 1)).isoformat()})
    return {"customers": customers, "products": products, "orders": orders, "workload": workload}


def expected_rows(tables: dict[str, list[dict]], item: dict) -> list[list]:
    """Ground truth for query.sql: top 10 products by shipped revenue for one region and window."""
    region = item["region"].lower()
    in_region = {c["id"] for c in tables["customers"] if c["region"].lower() == region}
    by_sku = {p["sku"]: p for p in tables["products"]}
    revenue: dict[str, int] = {}
    buyers: dict[str, set[int]] = {}
    for o in tables["shipped"]:
        if o["customer_id"] in in_region and item["day_from"] <= o["day"] <= item["day_to"]:
            p = by_sku[o["sku"]]
            revenue[o["sku"]] = revenue.get(o["sku"], 0) + o["qty"] * p["price_cents"]
            buyers.setdefault(o["sku"], set()).add(o["customer_id"])
    ranked = sorted(revenue, key=lambda s: (-revenue[s], s))[:10]
    return [[s, by_sku[s]["name"], by_sku[s]["category"], revenue[s], len(buyers[s])] for s in ranked]


def write_csv_xz(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(lzma.compress(buf.getvalue().encode("utf-8"), preset=9 | lzma.PRESET_EXTREME))


def main() -> None:
    public_canaries = {}
    answers: dict[str, dict[str, list]] = {}
    for name, cfg in SETS.items():
        tables = generate(cfg)
        inputs, labels = HERE / name / "inputs", HERE / name / "labels"
        inputs.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for table in ("customers", "products", "orders", "workload"):
            rows = tables[table]
            write_csv_xz(inputs / f"{table}.csv.xz", rows)
        tables["shipped"] = [o for o in tables["orders"] if o["status"] == "shipped"]
        lines = []
        answers[name] = {}
        for item in tables["workload"]:
            rows = expected_rows(tables, item)
            answers[name][item["id"]] = rows
            lines.append(json.dumps({"id": item["id"], "rows": rows}))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        (labels / "expected.jsonl.xz").write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    for cid, *_ in CANARIES:
        public = answers["public"][cid]
        for name in SETS:
            if name != "public" and answers[name][cid] == public:
                raise SystemExit(f"{cid} has the same answer in public and {name}; change a seed")
        public_canaries[cid] = public
    (HERE / "public" / "canaries.json").write_text(json.dumps(public_canaries, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
    import honeypots  # every held-out set gets its honeypots again (tools/honeypots.py)

    honeypots.main()
