"""Admin changes: every operation the admin API can make to a running gateway, by name.

Each is applied to the running gateway, and :meth:`~ketch_gateway.gateway.Gateway.change`
appends it to the state store; on start-up the recorded ones are replayed over the
configuration file, so a restart keeps them.

Models and versions sent here are read as in the file, and held to the ``[admin]``
table (:mod:`~ketch_gateway.control.admin_policy`). A change whose wrappers fail to
start answers the wrapper's own words (422 when it refused the model, 502 when it
crashed or hung) and leaves nothing behind: the wrappers it started are stopped,
nothing is listed and nothing is recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ketch_gateway.control.config import read_app, read_model, read_version
from ketch_gateway.control.config_reader import Reader
from ketch_gateway.control.supervisor import WrapperStartFailed
from ketch_gateway.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    NotFound,
    UnprocessableContent,
)

if TYPE_CHECKING:
    from ketch_gateway.gateway import Gateway

__all__ = ["ADMIN_OPERATIONS", "Operation", "as_recorded"]


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key}: expected a non-empty string")
    return value


@contextlib.asynccontextmanager
async def _wrapper_failures() -> AsyncIterator[None]:
    """A wrapper that did not start, as the HTTP error that carries its own message."""
    try:
        yield
    except WrapperStartFailed as error:
        raise (UnprocessableContent if error.load_error else BadGateway)(str(error)) from None


async def add_model(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Add a model (as in the file) and start its wrappers; the model.

    It joins the gateway only once every version has started.
    """
    config = read_model(Reader(body), gateway.base, gateway.config.admin)
    if config.name in gateway.models:
        raise Conflict(f"model {config.name!r} already exists")
    model = gateway.new_model(config)
    if gateway.started:
        async with _wrapper_failures():
            try:
                await model.start()
            except BaseException:
                await model.stop()
                raise
    gateway.models.add(config.name, model)
    return model.describe()


async def remove_model(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Remove a model that no app links, stopping its wrappers."""
    name = _text(body, "model")
    gateway.models.find(name)
    users = [app.name for app in gateway.apps.values() if name in app.linked]
    if users:
        raise Conflict(f"model {name!r} is linked to app(s) {', '.join(users)}; unlink it first")
    await gateway.models.remove(name).stop()
    return {"removed": name}


async def add_version(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Add a version (as in the file) to a model; the version."""
    model = gateway.models.find(_text(body, "model"))
    fields = {key: value for key, value in body.items() if key != "model"}
    config = read_version(Reader(fields), gateway.base, gateway.config.admin)
    async with _wrapper_failures():
        version = await model.add_version(config)
    return version.describe()


async def set_version(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Serve another version when a request names none (roll out or back)."""
    model = gateway.models.find(_text(body, "model"))
    model.set_current(_text(body, "version"))
    return model.describe()


async def add_replica(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Add an external replica at ``address`` to a version."""
    version = gateway.models.find(_text(body, "model")).version(_text(body, "version"))
    await version.add_address(_text(body, "address"))
    return version.describe()


async def remove_replica(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Remove a replica, external or managed, by its address."""
    version = gateway.models.find(_text(body, "model")).version(_text(body, "version"))
    address = _text(body, "address")
    if address in version.addresses:
        await version.remove_address(address)
        return {**version.describe(), "removed": address, "removed_kind": "external"}
    if not await version.remove_managed(address):
        raise NotFound(f"{version.label} has no replica at {address}")
    return {**version.describe(), "removed": address, "removed_kind": "managed"}


async def scale(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Run exactly ``count`` managed wrappers for a version.

    At most ``[admin] max_replicas`` of them, or no more than the version is meant to run
    now (a file may give it more).
    """
    version = gateway.models.find(_text(body, "model")).version(_text(body, "version"))
    count = body.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise BadRequest("count: expected a whole number of managed replicas (0 or more)")
    bound = gateway.config.admin.max_replicas
    if count > max(bound, version.desired):
        raise BadRequest(
            f"count: {count} managed wrappers is more than the admin API may run for a "
            f"version ([admin] max_replicas = {bound})"
        )
    async with _wrapper_failures():
        await version.scale(count)
    return version.describe()


async def add_app(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Add an app (as in the file)."""
    config = read_app(Reader(body), {name: m.config for name, m in gateway.models.items()})
    app = gateway.new_app(config)
    gateway.apps.add(config.name, app)
    return app.describe()


async def change_app(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Change an app's settings: the whole app, as in the file (its policy's state is kept)."""
    name = _text(body, "app")
    gateway.apps.find(name)
    fields = {key: value for key, value in body.items() if key != "app"}
    if fields.setdefault("name", name) != name:
        raise BadRequest(f"name: {fields['name']!r} is not the app's name {name!r}")
    config = read_app(Reader(fields), {n: m.config for n, m in gateway.models.items()})
    app = gateway.new_app(config)
    gateway.apps.replace(name, app)
    return app.describe()


async def remove_app(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Remove an app."""
    name = _text(body, "app")
    gateway.apps.remove(name)
    return {"removed": name}


async def link(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Link a model to an app."""
    app = gateway.apps.find(_text(body, "app"))
    model = gateway.models.find(_text(body, "model"))
    if model.name in app.linked:
        raise Conflict(f"model {model.name!r} is already linked to app {app.name!r}")
    app.linked.append(model.name)
    return app.describe()


async def unlink(gateway: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Unlink a model from an app."""
    app = gateway.apps.find(_text(body, "app"))
    model = _text(body, "model")
    if model not in app.linked:
        raise NotFound(f"model {model!r} is not linked to app {app.name!r}")
    app.linked.remove(model)
    return app.describe()


def as_recorded(
    operation: str, body: dict[str, Any], result: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """What to replay for a change.

    A managed replica's address changes on restart, so removing one is recorded as the
    managed count it left.
    """
    if operation == "remove_replica" and result.get("removed_kind") == "managed":
        return "scale", {
            "model": body["model"],
            "version": body["version"],
            "count": result["managed"],
        }
    return operation, body


Operation = Callable[["Gateway", dict[str, Any]], Awaitable[dict[str, Any]]]
"""An admin change: applied to the gateway, from its body; what the admin API answers."""

ADMIN_OPERATIONS: dict[str, Operation] = {
    "add_model": add_model,
    "remove_model": remove_model,
    "add_version": add_version,
    "set_version": set_version,
    "add_replica": add_replica,
    "remove_replica": remove_replica,
    "scale": scale,
    "add_app": add_app,
    "change_app": change_app,
    "remove_app": remove_app,
    "link": link,
    "unlink": unlink,
}
"""Every admin change, by the name the state store records it under."""
