"""The grpclib edge: the gateway endpoint, the asyncio<->Trio bridge, hosting."""
