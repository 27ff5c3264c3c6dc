"""Search spaces, candidate ops, the supernet and the discrete evaluation network (torch only)."""
