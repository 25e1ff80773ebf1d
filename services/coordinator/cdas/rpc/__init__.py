"""What the gRPC server and the gRPC client share: view <-> message conversions and the
error <-> rich status encoding. Neither side converts anything itself."""
