"""The edge <-> host bridge: embeddings out, predictions back, in order, exactly once, durably.

``protocol`` (the .proto's messages, wire encodings, validation), ``service`` (the host's logic,
transport-free), ``server`` (gRPC + TLS + token), ``transport`` (gRPC and in-process, one
interface), ``client`` (the edge's buffering/reconnecting sender), ``edge`` (events -> windows ->
perception -> host loop), ``persistence`` (checkpoints + write-ahead log). Nothing is imported
here, so the edge can load its half without the host's dependencies.
"""
