"""Load tests of Triton-served models: Locust users, closed- and open-loop scenarios, records.

``users`` holds the Locust users (HTTP and gRPC), ``locustfile`` runs them under plain ``locust``,
``closed_loop`` / ``open_loop`` run one scenario as a library and return a ``LoadRecord``.
Import ``locust`` (which applies gevent's monkey patching) before anything that opens sockets.
"""
