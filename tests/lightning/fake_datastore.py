"""lightningd's datastore commands for the fake lightningd (the plugin keeps its state
there): keys are lists of strings; modes, generations and error codes as in CLN."""

from __future__ import annotations


class RpcFail(Exception):
    def __init__(self, code: int, message: str, data: dict | None = None) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message, **({"data": data} if data else {})}


class DatastoreRpc:
    datastore: dict[tuple, dict]

    async def rpc_datastore(self, key, string: str | None = None, hex: str | None = None,
                            mode: str = "must-create", generation: int | None = None) -> dict:
        key = tuple([key] if isinstance(key, str) else key)
        value = string if string is not None else bytes.fromhex(hex or "").decode(errors="replace")
        existing = self.datastore.get(key)
        if mode == "must-create" and existing:
            raise RpcFail(1202, "Key already exists")
        if mode in ("must-replace", "must-append") and not existing:
            raise RpcFail(1203, "Key does not exist")
        if generation is not None and existing and existing["generation"] != generation:
            raise RpcFail(1204, "generation is different")
        if mode in ("must-append", "create-or-append") and existing:
            value = existing["string"] + value
        entry = {"key": list(key), "string": value, "hex": value.encode().hex(),
                 "generation": (existing["generation"] + 1) if existing else 0}
        self.datastore[key] = entry
        return entry

    async def rpc_listdatastore(self, key=None) -> dict:
        prefix = tuple([key] if isinstance(key, str) else (key or []))
        if prefix in self.datastore:
            return {"datastore": [self.datastore[prefix]]}
        children: dict[tuple, dict] = {}
        for k, entry in self.datastore.items():
            if k[:len(prefix)] == prefix and len(k) > len(prefix):
                child = k[:len(prefix) + 1]
                children[child] = entry if child == k else {"key": list(child)}
        return {"datastore": list(children.values())}

    async def rpc_deldatastore(self, key) -> dict:
        entry = self.datastore.pop(tuple([key] if isinstance(key, str) else key), None)
        if entry is None:
            raise RpcFail(1203, "Key does not exist")
        return entry
