"""A fake Kubernetes API server with simulated controllers, for tests.

``FakeCluster`` serves the Kubernetes REST API over real sockets on 127.0.0.1,
so the SDK and other clients (kubernetes-asyncio, the official ``kubernetes``
client, ``kubectl``) talk to it exactly as to a real cluster.
"""
