from p2p_testkit import make_node

__all__ = ["make_node"]
