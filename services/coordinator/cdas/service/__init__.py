"""The coordinator service: REST (FastAPI) and gRPC (grpcio aio) over one ``Coordinator``, in one
process (``cdas serve``). The service keeps no run state: every call goes to the store, so any
number of processes can serve one Redis."""
