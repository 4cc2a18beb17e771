"""gRPC server reflection and health, so grpcurl works with no proto files.

Reflection answers from one descriptor pool holding vsmux's protos (and the
files they import) plus the health service's proto, so ``grpcurl list``,
``describe`` and calls work for every service the gateway serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from grpclib.health.check import ServiceStatus
from grpclib.health.service import OVERALL, Health
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


class _Named:
    """A health entry that is not a served service: a name grpclib's Health can key on."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __mapping__(self) -> dict[str, Any]:
        # grpclib names a service by the first path of its mapping.
        return {f"/{self._name}/Check": None}


def with_health_and_reflection(
    services: Sequence[Any],
    status: ServiceStatus,
    named: Mapping[str, ServiceStatus] | None = None,
) -> list[Any]:
    """``services`` plus the standard health service, plus reflection for all of them.

    Health reports ``status`` for each service and overall: SERVING while it
    is set True, NOT_SERVING once shutdown sets it False. ``named`` adds
    health entries of their own (e.g. ``vsmux.topology``) that a client can
    ask about by name; they do not change the overall status, since the
    gateway keeps serving while one of them is down.
    """
    checks: dict[Any, list[ServiceStatus]] = {service: [status] for service in services}
    checks[OVERALL] = [status]
    for name, named_status in (named or {}).items():
        checks[_Named(name)] = [named_status]
    served = [*services, Health(checks)]
    extended: list[Any] = ServerReflection.extend(served, pool=reflection_pool())
    return extended
