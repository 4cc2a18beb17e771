"""gRPC server reflection and health, so grpcurl works with no proto files.

Reflection answers from one descriptor pool holding vsmux's protos (and the
files they import) plus the health service's proto, so ``grpcurl list``,
``describe`` and calls work for every service the gateway serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health
from grpclib.health.v1 import health_pb2
from grpclib.reflection.service import ServerReflection

from vsmux.proto import vtgateservice  # noqa: F401  (registers vtgate's files in the pool)
from vsmux.proto.google_proto_descriptor_pool import default_google_proto_descriptor_pool

__all__ = ["reflection_pool", "with_health_and_reflection"]

# Root files whose services the gateway serves; their imports come along.
_ROOT_FILES = ("vtgateservice.proto",)


def _add_with_imports(pool: Any, file: Any, seen: set[str]) -> None:
    if file.name in seen:
        return
    seen.add(file.name)
    for dependency in file.dependencies:
        _add_with_imports(pool, dependency, seen)
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    pool.Add(proto)


def reflection_pool() -> Any:
    """A new DescriptorPool with the gateway's protos and the health proto."""
    pool = descriptor_pool.DescriptorPool()
    seen: set[str] = set()
    for name in _ROOT_FILES:
        _add_with_imports(pool, default_google_proto_descriptor_pool.FindFileByName(name), seen)
    _add_with_imports(pool, health_pb2.DESCRIPTOR, seen)
    return pool


def with_health_and_reflection(services: Sequence[Any], status: ServiceStatus) -> list[Any]:
    """``services`` plus the standard health service, plus reflection for all of them.

    Health reports ``status`` for each service and overall: SERVING while it
    is set True, NOT_SERVING once shutdown sets it False.
    """
    served = [*services, Health({service: [status] for service in services})]
    extended: list[Any] = ServerReflection.extend(served, pool=reflection_pool())
    return extended
