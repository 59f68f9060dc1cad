"""Serving platforms behind one small interface: kserve, nop (tests), local."""
