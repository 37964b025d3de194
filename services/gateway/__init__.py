"""The HTTP surface: MLflow's REST API, the JSON form of our gRPC API and (later) the web UI, on one port.

Every request becomes a gRPC call to the services with the caller's token, so authentication,
authorization, validation and the events written are exactly those of the gRPC surface.
"""
