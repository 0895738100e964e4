"""Moving bytes between clients. Protobuf and generated code stay in this package.

* ``base`` — the interfaces (``Network``, ``PeerControl``, ``PeerHandler``, ``TensorTransport``,
  ``BulkTransport``) and Note: one failure path;
* ``network`` — ``GrpcNetwork(NetworkOptions)``, the real one; ``memory`` — ``MemoryHub``, one
  process without sockets, for tests;
* tensor transports: ``channel`` (direct TCP), ``stream`` (gRPC stream), ``torrent_tensors``;
* bulk transports: ``bulk`` (inline, BitTorrent) over ``swarm`` and ``torrent`` (libtorrent);
* the wire: ``client`` and ``server`` (gRPC), ``serde`` (frames), ``codec`` (tensors),
  ``messages`` (domain messages), ``status`` (errors ↔ gRPC codes and refusal kinds);
* ``ports`` — free loopback ports for clusters on one machine.
"""
