"""Where events come from: real tablets over gRPC, or simulated ones."""
