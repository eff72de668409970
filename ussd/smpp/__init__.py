"""SMPP 3.4 transport: sans-IO codec and connection (asyncio server drives them)."""
