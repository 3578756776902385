"""A fake lightningd for the cln contract tests (no lightningd binary exists here).

Each ``FakeLightningd`` serves CLN's JSON-RPC on a real unix socket (what pyln's
``LightningRpc`` and the plugin's ``plugin.rpc`` connect to) and runs our REAL
hold-invoice plugin as a subprocess over its stdio JSON-RPC protocol: getmanifest,
init, rpcmethods passed through from the socket, the ``htlc_accepted`` hook and
``block_added`` notifications, with HTLCs replayed when the plugin restarts.

A ``FakeNetwork`` joins several fake nodes: ``pay`` and ``keysend`` move an HTLC
from one node's balance to the other's hook chain (our plugin first, then the
node's own invoices, as lightningd does) and back with a preimage or a failure.
Faithful to the parts our code uses: method names, parameters, result fields,
error codes (904 timeout, 205 no route, 206 fee, 210 failed), datastore modes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from l402tui.lightning._bolt11 import NodeKey, decode_invoice, encode_invoice
from tests.lightning.fake_datastore import DatastoreRpc, RpcFail

PLUGIN = Path(__file__).resolve().parents[2] / "l402tui" / "lightning" / "cln_holdinvoice.py"


@dataclass
class FakeNetwork:
    height: int = 300
    base_fee_msat: int = 1000
    fee_ppm: int = 1000
    nodes: dict[str, "FakeLightningd"] = field(default_factory=dict)  # pubkey -> node
    scid_counter: int = 0

    def fee_for(self, amount: int) -> int:
        return self.base_fee_msat + amount * self.fee_ppm // 1_000_000

    async def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            self.height += 1
            for node in self.nodes.values():
                await node.notify_block()


class FakeLightningd(DatastoreRpc):
    def __init__(self, net: FakeNetwork, name: str, directory: Path, balance_msat: int, *,
                 plugin: Path | None = PLUGIN, plugin_options: dict | None = None) -> None:
        self.net, self.name, self.dir = net, name, directory
        self.key = NodeKey.from_seed(hashlib.sha256(name.encode()).hexdigest())
        self.balance_msat = balance_msat
        self.plugin_path, self.plugin_options = plugin, plugin_options or {}
        self.rpc_path = directory / "lightning-rpc"
        self.invoices: dict[str, dict] = {}      # payment_hash -> CLN invoice
        self.pays: dict[str, dict] = {}          # payment_hash -> listpays entry
        self.datastore: dict[tuple, dict] = {}
        self.pay_index = 0
        self.invoice_changed = asyncio.Condition()
        self.hook_answers: dict[str, list[dict]] = {}
        self.inflight: dict[str, tuple[dict, asyncio.Future]] = {}  # htlc key -> (hook payload, answer)
        self.plugin_methods: set[str] = set()
        self.plugin_hooks: set[str] = set()
        self.plugin_subscriptions: set[str] = set()
        self.plugin_logs: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._plugin_calls: dict[int, asyncio.Future] = {}
        self._next_id = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        net.nodes[self.key.pubkey] = self

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> "FakeLightningd":
        self.dir.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.rpc_path))
        if self.plugin_path is not None:
            await self.start_plugin()
        return self

    async def start_plugin(self) -> None:
        env = dict(os.environ, LIGHTNINGD_PLUGIN="1")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, str(self.plugin_path), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, limit=2**24)
        self._spawn(self._read_plugin(self._proc))
        manifest = await self.plugin_call("getmanifest", {"allow-deprecated-apis": False})
        self.plugin_methods = {m["name"] for m in manifest["rpcmethods"]}
        self.plugin_hooks = {h["name"] for h in manifest["hooks"]}
        self.plugin_subscriptions = set(manifest["subscriptions"])
        await self.plugin_call("init", {
            "options": self.plugin_options,
            "configuration": {"lightning-dir": str(self.dir), "rpc-file": self.rpc_path.name, "startup": True,
                              "network": "regtest", "feature_set": {}}})
        # lightningd replays every HTLC the plugin had not answered.
        for key, (payload, answer) in list(self.inflight.items()):
            if not answer.done():
                self._spawn(self._run_hook(key, payload, answer))

    async def restart_rpc(self, down_for_s: float = 0.3) -> None:
        """Drop every RPC connection and refuse new ones for a while (lightningd restarting)."""
        self._server.close()
        for writer in list(self._clients):
            writer.close()
        self.rpc_path.unlink(missing_ok=True)
        await asyncio.sleep(down_for_s)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.rpc_path))

    async def kill_plugin(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        self._proc = None
        for fut in self._plugin_calls.values():
            if not fut.done():
                fut.set_exception(ConnectionResetError("plugin died"))
                fut.exception()  # whoever awaits it still gets the error; no "never retrieved" noise
        self._plugin_calls.clear()

    async def restart_plugin(self) -> None:
        await self.kill_plugin()
        await self.start_plugin()

    async def stop(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()  # a clean plugin exits on EOF
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                pass
        await self.kill_plugin()
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()  # unblock client threads still waiting (pay on a held HTLC)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the plugin's stdio -------------------------------------------------------------

    async def plugin_call(self, method: str, params: dict) -> dict:
        if self._proc is None:
            raise ConnectionResetError("no plugin running")
        self._next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self._plugin_calls[self._next_id] = fut
        msg = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        self._proc.stdin.write(json.dumps(msg).encode() + b"\n\n")
        await self._proc.stdin.drain()
        return await fut

    async def plugin_notify(self, method: str, params: dict) -> None:
        if self._proc is not None and method in self.plugin_subscriptions:
            msg = {"jsonrpc": "2.0", "method": method, "params": params}
            self._proc.stdin.write(json.dumps(msg).encode() + b"\n\n")
            await self._proc.stdin.drain()

    async def _read_plugin(self, proc: asyncio.subprocess.Process) -> None:
        buf = b""
        while True:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                return
            buf += chunk
            *messages, buf = buf.split(b"\n\n")
            for raw in messages:
                if not raw.strip():
                    continue
                msg = json.loads(raw)
                if msg.get("method") == "log":
                    self.plugin_logs.append(msg["params"].get("message", ""))
                    continue
                fut = self._plugin_calls.pop(msg.get("id"), None)
                if fut is None or fut.done():
                    continue
                if "error" in msg:
                    fut.set_exception(RpcFail(msg["error"]["code"], msg["error"]["message"]))
                else:
                    fut.set_result(msg["result"])

    async def notify_block(self) -> None:
        await self.plugin_notify("block_added", {"block_added": {"hash": os.urandom(32).hex(),
                                                                 "height": self.net.height}})

    # -- the RPC socket -------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder, buf = json.JSONDecoder(), ""
        self._clients.add(writer)
        self._tasks.add(asyncio.current_task())
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buf += chunk.decode()
                while buf.strip():
                    try:
                        request, end = decoder.raw_decode(buf.lstrip())
                    except json.JSONDecodeError:
                        break  # incomplete: read more
                    buf = buf.lstrip()[end:]
                    reply = {"jsonrpc": "2.0", "id": request.get("id")}
                    try:
                        reply["result"] = await self.dispatch(request["method"], request.get("params") or {})
                    except RpcFail as exc:
                        reply["error"] = exc.error
                    writer.write(json.dumps(reply).encode() + b"\n\n")
                    await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            return
        except asyncio.CancelledError:
            # Shutting down: end quietly (3.11's stream callback logs cancelled handlers).
            return
        finally:
            self._clients.discard(writer)
            self._tasks.discard(asyncio.current_task())
            writer.close()

    async def dispatch(self, method: str, params: dict) -> dict:
        if isinstance(params, list):
            raise RpcFail(-32602, "positional parameters are not supported by this fake")
        if method in self.plugin_methods:
            try:
                return await self.plugin_call(method, params)
            except ConnectionResetError:
                raise RpcFail(-4, "Plugin terminated before replying to RPC call.") from None
        handler = getattr(self, "rpc_" + method, None)
        if handler is None:
            raise RpcFail(-32601, f"Unknown command '{method}'")
        return await handler(**params)

    # -- lightningd's own commands ----------------------------------------------------------

    async def rpc_getinfo(self) -> dict:
        return {"id": self.key.pubkey, "alias": self.name, "network": "regtest", "blockheight": self.net.height,
                "lightning-dir": str(self.dir)}

    async def rpc_help(self, **_) -> dict:
        # As lightningd: one entry per command, "name [params]" (the backend reads the name).
        own = sorted(m[4:] for m in dir(self) if m.startswith("rpc_"))
        return {"help": [{"command": name} for name in own + sorted(self.plugin_methods)]}

    async def rpc_listpeerchannels(self, **_) -> dict:
        return {"channels": [{"peer_id": "02" + "11" * 32, "state": "CHANNELD_NORMAL",
                              "spendable_msat": self.balance_msat, "to_us_msat": self.balance_msat}]}

    async def rpc_signinvoice(self, invstring: str) -> dict:
        import bolt11

        inv = bolt11.decode(invstring)
        inv.tags.tags = [t for t in inv.tags.tags if t.char.value != "n"]  # recovered, not written
        return {"bolt11": bolt11.encode(inv, self.key.secret_hex)}

    async def rpc_invoice(self, amount_msat, label: str, description: str, expiry: int = 604800,
                          preimage: str | None = None, **_) -> dict:
        if any(i["label"] == label for i in self.invoices.values()):
            raise RpcFail(900, f"Duplicate label '{label}'")
        preimage = preimage or os.urandom(32).hex()
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        if payment_hash in self.invoices:
            raise RpcFail(901, "preimage already used")
        amount = 0 if amount_msat == "any" else int(amount_msat)
        now, secret = int(time.time()), os.urandom(32).hex()
        bolt = encode_invoice(key=self.key, network="regtest", payment_hash=payment_hash, payment_secret=secret,
                              amount_msat=amount, description=description, expiry_s=int(expiry), cltv_delta=18,
                              timestamp=now)
        self.invoices[payment_hash] = {
            "label": label, "bolt11": bolt, "payment_hash": payment_hash, "status": "unpaid",
            "description": description, "expires_at": now + int(expiry), "created_at": now,
            "payment_secret": secret, "_preimage": preimage, **({"amount_msat": amount} if amount else {})}
        return {"payment_hash": payment_hash, "expires_at": now + int(expiry), "bolt11": bolt,
                "payment_secret": secret}

    def _public_invoice(self, inv: dict) -> dict:
        if inv["status"] == "unpaid" and time.time() >= inv["expires_at"]:
            inv["status"] = "expired"
        out = {k: v for k, v in inv.items() if not k.startswith("_")}
        if inv["status"] == "paid":
            out["payment_preimage"] = inv["_preimage"]
        return out

    async def rpc_listinvoices(self, payment_hash: str | None = None, label: str | None = None, **_) -> dict:
        invoices = [self._public_invoice(i) for i in self.invoices.values()
                    if (payment_hash is None or i["payment_hash"] == payment_hash)
                    and (label is None or i["label"] == label)]
        return {"invoices": invoices}

    async def rpc_waitanyinvoice(self, lastpay_index: int = 0, timeout: float | None = None) -> dict:
        def newer():
            paid = [i for i in self.invoices.values() if i.get("pay_index", 0) > int(lastpay_index or 0)]
            return min(paid, key=lambda i: i["pay_index"]) if paid else None

        async with self.invoice_changed:
            try:
                await asyncio.wait_for(self.invoice_changed.wait_for(newer), timeout)
            except TimeoutError:
                raise RpcFail(904, "Timed out") from None
            return self._public_invoice(newer())

    async def rpc_listpays(self, payment_hash: str | None = None, **_) -> dict:
        return {"pays": [dict(p) for h, p in self.pays.items() if payment_hash in (None, h)]}

    # -- payments across the fake network ---------------------------------------------------

    async def rpc_pay(self, bolt11: str, amount_msat: int | None = None, maxfee: int | None = None, **_) -> dict:
        inv = decode_invoice(bolt11)
        if inv.amount_msat and amount_msat is not None:
            raise RpcFail(-32602, "amount_msat unnecessary")
        amount = inv.amount_msat or int(amount_msat or 0)
        if time.time() >= inv.expires_at:
            raise RpcFail(207, "Invoice expired")
        return await self.send_htlc(inv.payee, inv.payment_hash, amount, payment_secret=inv.payment_secret,
                                    cltv_delta=inv.min_final_cltv, maxfee=maxfee, bolt11=bolt11)

    async def rpc_keysend(self, **_) -> dict:
        # lightningd 26 without allow-deprecated-apis: xkeysend replaces it.
        raise RpcFail(-32601, 'Command "keysend" is deprecated')

    async def rpc_xkeysend(self, destination: str, amount_msat: int, maxfee: int | None = None, **_) -> dict:
        preimage = os.urandom(32).hex()
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        sent = await self.send_htlc(destination, payment_hash, int(amount_msat), keysend_preimage=preimage,
                                    cltv_delta=22, maxfee=maxfee)
        # xkeysend answers only these (no payment_hash, no status)
        return {"payment_preimage": preimage, "amount_msat": sent["amount_msat"],
                "amount_sent_msat": sent["amount_sent_msat"], "failed_parts": 0, "successful_parts": 1}

    async def send_htlc(self, destination: str, payment_hash: str, amount: int, *, cltv_delta: int,
                        payment_secret: str | None = None, keysend_preimage: str | None = None,
                        maxfee: int | None = None, bolt11: str | None = None, total_msat: int | None = None) -> dict:
        """Route one HTLC to ``destination`` and wait for it to be resolved or failed."""
        payee = self.net.nodes.get(destination)
        if payee is None:
            raise RpcFail(205, f"Could not find a route to {destination}")
        fee = self.net.fee_for(amount)
        if maxfee is not None and fee > int(maxfee):
            raise RpcFail(206, f"Fee exceeds our fee budget: {fee}msat > {maxfee}msat, discarding route")
        if self.balance_msat < amount + fee:
            raise RpcFail(210, f"Ran out of routes to try: insufficient balance ({self.balance_msat}msat "
                               f"available, {amount + fee}msat needed)")
        self.balance_msat -= amount + fee
        pay = {"payment_hash": payment_hash, "status": "pending", "destination": destination,
               "amount_msat": amount, "amount_sent_msat": amount + fee, "created_at": int(time.time()),
               **({"bolt11": bolt11} if bolt11 else {})}
        self.pays[payment_hash] = pay
        self.net.scid_counter += 1
        answer = await payee.receive_htlc(payment_hash, amount, self.net.height + cltv_delta,
                                          payment_secret=payment_secret, keysend_preimage=keysend_preimage,
                                          scid=f"{self.net.height}x{self.net.scid_counter}x0",
                                          total_msat=total_msat or amount)
        key = answer.get("payment_key")
        if answer["result"] == "resolve" and key and hashlib.sha256(bytes.fromhex(key)).hexdigest() == payment_hash:
            payee.balance_msat += amount
            pay.update(status="complete", preimage=key)
            return {**pay, "payment_preimage": key, "parts": 1}
        self.balance_msat += amount + fee
        pay.update(status="failed", error="WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS")
        raise RpcFail(210, "Destination said it doesn't know invoice: incorrect_or_unknown_payment_details",
                      {"failcode": 16399, "failcodename": "WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS"})

    async def receive_htlc(self, payment_hash: str, amount: int, cltv_expiry: int, *, payment_secret: str | None,
                           keysend_preimage: str | None, scid: str, total_msat: int) -> dict:
        key = f"{scid}/0"
        payload = {"onion": {"payload": "", "type": "tlv", "forward_msat": amount, "outgoing_cltv_value": cltv_expiry,
                             "total_msat": total_msat, "shared_secret": "00" * 32,
                             **({"payment_secret": payment_secret} if payment_secret else {})},
                   "htlc": {"short_channel_id": scid, "id": 0, "amount_msat": amount, "cltv_expiry": cltv_expiry,
                            "cltv_expiry_relative": cltv_expiry - self.net.height, "payment_hash": payment_hash}}
        answer: asyncio.Future = asyncio.get_running_loop().create_future()
        self.inflight[key] = (payload, answer)
        if "htlc_accepted" in self.plugin_hooks:
            self._spawn(self._run_hook(key, payload, answer))
        else:
            answer.set_result({"result": "continue"})
        result = await answer
        self.inflight.pop(key, None)
        self.hook_answers.setdefault(payment_hash, []).append(result)
        if result["result"] != "continue":
            return result
        return await self._own_invoice(payment_hash, amount, payment_secret, keysend_preimage)

    async def _run_hook(self, key: str, payload: dict, answer: asyncio.Future) -> None:
        try:
            result = await self.plugin_call("htlc_accepted", payload)
        except ConnectionResetError:
            return  # the plugin died holding it: replayed when it starts again
        if not answer.done():
            answer.set_result(result)

    async def _own_invoice(self, payment_hash: str, amount: int, payment_secret: str | None,
                           keysend_preimage: str | None) -> dict:
        fail = {"result": "fail", "failure_message": f"400f{amount:016x}{self.net.height:08x}"}
        inv = self.invoices.get(payment_hash)
        if keysend_preimage is not None and inv is None:
            now = int(time.time())  # CLN's keysend plugin books it as a paid invoice
            inv = self.invoices[payment_hash] = {
                "label": f"keysend-{now}-{payment_hash[:8]}", "payment_hash": payment_hash, "status": "unpaid",
                "description": "keysend", "expires_at": now, "created_at": now, "_preimage": keysend_preimage}
        elif inv is None or inv["status"] != "unpaid" or inv.get("payment_secret") != payment_secret \
                or amount < inv.get("amount_msat", 0) or time.time() >= inv["expires_at"]:
            return fail
        async with self.invoice_changed:
            self.pay_index += 1
            inv.update(status="paid", pay_index=self.pay_index, amount_received_msat=amount,
                       paid_at=int(time.time()))
            self.invoice_changed.notify_all()
        return {"result": "resolve", "payment_key": inv["_preimage"]}
