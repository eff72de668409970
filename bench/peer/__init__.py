"""Peers for the SMPP benches: a trivial echo SMSC (Python) and a bare SMSC on npm `smpp`."""
