"""Moving bytes between clients: codec, gRPC server and client. Protobuf stays in this package."""
