"""Sim invoices carry the BOLT 11 features field, read the same by three decoders:
the Python ``bolt11`` library, the npm ``bolt11`` package under node, and real
lightningd's ``decode`` (regtest)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from l402tui.lightning._bolt11 import NodeKey, decode_invoice, encode_invoice

REPO = Path(__file__).resolve().parents[2]
NODE_SCRIPT = """
const bolt11 = require('bolt11');
const d = bolt11.decode(process.argv[1]);
const tag = (n) => { const t = d.tags.find((x) => x.tagName === n); return t ? t.data : null; };
console.log(JSON.stringify({payee: d.payeeNodeKey, complete: d.complete, msat: d.millisatoshis,
  payment_hash: tag('payment_hash'), secret: tag('payment_secret'), features: tag('feature_bits')}));
"""


def sim_invoice(amount_msat: int = 21_000) -> tuple[str, NodeKey]:
    key = NodeKey.from_seed(os.urandom(32).hex())
    bolt11 = encode_invoice(key=key, network="regtest", payment_hash=os.urandom(32).hex(),
                            payment_secret=os.urandom(32).hex(), amount_msat=amount_msat, description="fee",
                            expiry_s=600, cltv_delta=18, timestamp=1_700_000_000)
    return bolt11, key


def _feature_bits(bolt11: str) -> set[int]:
    from bolt11 import decode

    features = decode(bolt11).tags.get(_tag("features"))
    assert features is not None, "no 9 (features) field"
    value = int(features.data.data.bin or "0", 2)  # the field's 5-bit words, most significant first
    return {i for i in range(value.bit_length()) if value >> i & 1}


def _tag(name: str):
    from bolt11.models.tags import TagChar

    return getattr(TagChar, name)


def test_python_decoder_sees_payment_secret_and_var_onion_required():
    bolt11, key = sim_invoice()
    bits = _feature_bits(bolt11)
    assert {8, 14} <= bits  # even bits: var_onion_optin and payment_secret required
    assert not bits & {9, 15}  # not also offered as optional
    decoded = decode_invoice(bolt11)
    assert decoded.payee == key.pubkey and decoded.payment_secret


def test_features_field_names_exactly_the_two_required_features():
    from bolt11 import decode

    bolt11, _ = sim_invoice()
    assert decode(bolt11).tags.get(_tag("features")).data.readable == {"var_onion_optin": "required",
                                                                        "payment_secret": "required"}


def _node_modules() -> Path | None:
    for candidate in (os.environ.get("L402TUI_NODE_MODULES"), REPO / ".venv" / "node" / "node_modules"):
        if candidate and (Path(candidate) / "bolt11").is_dir():
            return Path(candidate)
    return None


def test_npm_bolt11_decoder_under_node_agrees():
    modules, node = _node_modules(), shutil.which("node")
    if modules is None or node is None:
        if os.environ.get("L402TUI_REQUIRE_NODE_BOLT11") == "1":
            pytest.fail("L402TUI_REQUIRE_NODE_BOLT11=1 but node or the npm bolt11 package is missing")
        pytest.skip("node and the npm bolt11 package are needed (.ci/run installs them into .venv/node)")
    bolt11, key = sim_invoice(21_000)
    out = subprocess.run([node, "-e", NODE_SCRIPT, bolt11], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, NODE_PATH=str(modules)))
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    decoded = decode_invoice(bolt11)
    assert seen["complete"] and seen["payee"] == key.pubkey  # signature recovers our node key
    assert (seen["payment_hash"], seen["secret"], int(seen["msat"])) == (decoded.payment_hash,
                                                                          decoded.payment_secret, 21_000)
    assert seen["features"]["payment_secret"]["required"] is True
    assert seen["features"]["var_onion_optin"]["required"] is True


def test_npm_decoder_rejects_a_tampered_invoice():
    modules, node = _node_modules(), shutil.which("node")
    if modules is None or node is None:
        pytest.skip("node and the npm bolt11 package are needed")
    bolt11, _ = sim_invoice()
    tampered = bolt11[:-10] + ("q" if bolt11[-10] != "q" else "p") + bolt11[-9:]
    out = subprocess.run([node, "-e", NODE_SCRIPT, tampered], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, NODE_PATH=str(modules)))
    assert out.returncode != 0  # checksum or signature: never decoded as valid


@pytest.mark.regtest
def test_real_lightningd_decodes_a_sim_invoice(regtest_network):
    bolt11, key = sim_invoice(50_000)
    decoded = regtest_network.nodes["agent"].call("decode", string=bolt11)
    assert decoded["valid"] is True and decoded["payee"] == key.pubkey
    assert decoded["amount_msat"] == 50_000
    features = int(decoded["features"], 16)
    assert features >> 8 & 1 and features >> 14 & 1
