"""veil-server: the reference OpenAI-compatible server of veil, an anonymizing gateway.

    from veil_server import create_app, Settings
    app = create_app(Settings.load("veil.toml"))

or from a shell: `veil serve` (see docs/server.md).
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from veil_server.app import create_app
    from veil_server.settings import Settings

__all__ = ["Settings", "__version__", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from veil_server.app import create_app  # noqa: PLC0415

        return create_app
    if name == "Settings":
        from veil_server.settings import Settings  # noqa: PLC0415

        return Settings
    raise AttributeError(f"module 'veil_server' has no attribute {name!r}")
