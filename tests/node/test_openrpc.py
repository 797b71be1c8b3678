"""The OpenRPC document against the server's actual registered methods."""

from __future__ import annotations

from rpc.openrpc import GENERIC_ERRORS


async def test_every_registered_method_is_described(single_node):
    doc = await single_node.client.call("rpc_discover")
    registered = single_node.service.api_dispatcher.methods
    described = {m["name"]: m for m in doc["methods"]}
    assert set(described) == set(registered)
    assert doc["openrpc"].startswith("1.") and doc["info"]["version"]
    for name, method in registered.items():
        entry = described[name]
        assert method.spec is not None, f"{name} is registered without a MethodSpec"
        assert "x-undocumented" not in entry
        assert [p["name"] for p in entry["params"]] == list(method.params)
        for param in entry["params"]:
            assert param["schema"], f"{name}.{param['name']} has no schema"
            assert param["description"]
        assert entry["result"]["schema"], name
        codes = {e["code"] for e in entry["errors"]}
        assert set(GENERIC_ERRORS) <= codes
        for code in codes:
            assert str(code) in doc["components"]["errors"]
    admin = {m["name"] for m in doc["methods"] if m.get("x-admin")}
    assert admin == {"admin_peers", "admin_peer_add", "admin_peer_remove",
                     "admin_mempool_flush", "private_submit"}


async def test_invalid_missing_required_param_named_from_spec(single_node):
    results = await single_node.client.batch([("tx_get", {}), ("state_account", {}),
                                              ("subscribe", {"topic": "blocks"})])
    assert results[0].reason == "invalid_params" and "hash" in results[0].message
    assert results[1].reason == "invalid_params" and "address" in results[1].message
    assert results[2].reason == "websocket_only"
