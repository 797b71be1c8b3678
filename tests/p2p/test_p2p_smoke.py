from p2p_testkit import peer_ids, wait_for


async def test_two_nodes_connect(make_node):
    a = await make_node()
    b = await make_node([a.address])
    await wait_for(lambda: peer_ids(a) == {b.node_id} and peer_ids(b) == {a.node_id})
