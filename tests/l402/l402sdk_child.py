"""Lightning Labs' l402sdk as an agent would run it, in its own process.

    python l402sdk_child.py < {"clnrest", "rune", "base", "bounty_ids", "diff"} (JSON)

For each bounty: download the package twice (the second with the cached token), then
submit a diff; prints one JSON object with what each response was.  It runs apart from
the test because the SDK holds the GIL while it waits on the network: in the test's
process it would stop the very servers it is waiting for.
"""

from __future__ import annotations

import json
import sys

from l402 import Budget, L402Client


def _answer(response) -> dict:
    receipt = response.receipt
    return {"status": response.status, "paid": response.paid, "cached_token": response.cached_token,
            "headers": {k.lower(): v for k, v in dict(response.headers).items()},
            "receipt": None if receipt is None else {"amount_sats": receipt.amount_sats,
                                                     "payment_hash": receipt.payment_hash,
                                                     "preimage": receipt.preimage}}


def main(clnrest: str, rune: str, base: str, bounty_ids: list[str], diff: str) -> None:
    client = L402Client.with_cln_rest(clnrest, rune, budget=Budget(per_request_max=50, total_max=200),
                                      max_fee_sats=10)
    out: dict = {"downloads": [], "submits": []}
    for bounty_id in bounty_ids:
        for _ in range(2):
            r = client.get(f"{base}/api/v1/bounties/{bounty_id}/package")
            out["downloads"].append({"bounty_id": bounty_id, **_answer(r)})
        r = client.post(f"{base}/api/v1/bounties/{bounty_id}/submissions",
                        json.dumps({"diff": diff, "claimed_score": 0.0}))
        out["submits"].append({"bounty_id": bounty_id, "body": r.json() if r.status < 500 else r.text(),
                               **_answer(r)})
    out["total_spent"] = client.total_spent()
    print(json.dumps(out))


if __name__ == "__main__":
    main(**json.load(sys.stdin))
