"""Key providers: where the key-encryption keys (KEKs) live.

A KeyProvider holds versioned KEKs and wraps / unwraps data keys with them; the vault never
sees a KEK. Providers:

- `LocalKeyFileProvider` (the embedded default): a JSON key file created with mode 0600 on first
  use, refused if others can read it; rotation adds a version, atomically, under a file lock.
- `EnvKeyProvider`: keys from environment variables (`VEIL_KEK`, or versioned `VEIL_KEKS`), for
  platforms that inject secrets; rotation means deploying a new version.
- `Pkcs11KeyProvider` (`veil.crypto.pkcs11`): KEKs inside a hardware security module; wrapping
  happens in the token and the KEK never leaves it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from veil.crypto.envelope import KEY_BYTES, open_sealed, seal
from veil.errors import ConfigError, KeyUnavailable


@dataclass(frozen=True, slots=True, order=True)
class KeyRef:
    """One version of one key-encryption key."""

    key_id: str
    version: int

    def __str__(self) -> str:
        return f"{self.key_id}/v{self.version}"


@runtime_checkable
class KeyProvider(Protocol):
    """Holds versioned key-encryption keys; wraps and unwraps data keys with them."""

    name: str

    def current(self) -> KeyRef:
        """The version new data keys are wrapped with."""
        ...

    def versions(self) -> list[KeyRef]:
        """Every version that can still unwrap, oldest first."""
        ...

    def wrap(self, ref: KeyRef, data_key: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, ref: KeyRef, wrapped: bytes, aad: bytes) -> bytes:
        """Raises KeyUnavailable for an unknown or retired version, IntegrityError for bad input."""
        ...

    def rotate(self) -> KeyRef:
        """Create a new version and make it current; older versions still unwrap."""
        ...

    def retire(self, ref: KeyRef) -> None:
        """Stop a version from unwrapping (after everything was re-wrapped)."""
        ...


class _InMemoryVersions:
    """Wrapping with AES-256-GCM under KEKs held in process memory (file and env providers)."""

    name = "memory"
    key_id = "kek"

    def __init__(self) -> None:
        self._keys: dict[int, bytes] = {}
        self._retired: set[int] = set()
        self._current = 0

    def current(self) -> KeyRef:
        return KeyRef(self.key_id, self._current)

    def versions(self) -> list[KeyRef]:
        return [KeyRef(self.key_id, v) for v in sorted(self._keys) if v not in self._retired]

    def _key(self, ref: KeyRef) -> bytes:
        if ref.key_id != self.key_id:
            raise KeyUnavailable(f"key {ref} is not held by the {self.name} key provider ({self.key_id})")
        if ref.version in self._retired:
            raise KeyUnavailable(f"key {ref} is retired; records wrapped with it must be re-wrapped first")
        key = self._keys.get(ref.version)
        if key is None:
            raise KeyUnavailable(f"key {ref} is not available in the {self.name} key provider")
        return key

    def wrap(self, ref: KeyRef, data_key: bytes, aad: bytes) -> bytes:
        return seal(self._key(ref), data_key, aad)

    def unwrap(self, ref: KeyRef, wrapped: bytes, aad: bytes) -> bytes:
        return open_sealed(self._key(ref), wrapped, aad, what=f"data key wrapped with {ref}")


class EphemeralKeyProvider(_InMemoryVersions):
    """A random KEK in process memory: for tests and in-memory vaults. Nothing survives the process."""

    name = "ephemeral"
    key_id = "ephemeral"

    def __init__(self) -> None:
        super().__init__()
        self._keys[1] = os.urandom(KEY_BYTES)
        self._current = 1

    def rotate(self) -> KeyRef:
        self._current = max(self._keys) + 1
        self._keys[self._current] = os.urandom(KEY_BYTES)
        return self.current()

    def retire(self, ref: KeyRef) -> None:
        if ref.version == self._current:
            raise ConfigError(f"{ref} is the current key version; rotate before retiring it")
        self._retired.add(ref.version)


def _b64_key(value: str, where: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: not base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{where}: a key must be {KEY_BYTES} bytes (base64 of 32 random bytes), got {len(key)}")
    return key


class EnvKeyProvider(_InMemoryVersions):
    """KEKs from the environment.

    `VEIL_KEKS="1:<base64>,2:<base64>"` (the highest version is current) or `VEIL_KEK="<base64>"`
    (version 1). Generate a key with `veil keys generate` (32 random bytes, base64).
    """

    name = "env"
    key_id = "env"

    def __init__(self, environ: Mapping[str, str] | None = None, *, key_id: str = "env") -> None:
        super().__init__()
        self.key_id = key_id
        env = os.environ if environ is None else environ
        if env.get("VEIL_KEKS"):
            for item in env["VEIL_KEKS"].split(","):
                version_text, sep, value = item.strip().partition(":")
                if not sep or not version_text.isdigit():
                    raise ConfigError("VEIL_KEKS: expected comma-separated VERSION:BASE64 pairs")
                self._keys[int(version_text)] = _b64_key(value, f"VEIL_KEKS version {version_text}")
        elif env.get("VEIL_KEK"):
            self._keys[1] = _b64_key(env["VEIL_KEK"], "VEIL_KEK")
        else:
            raise ConfigError("no key in the environment: set VEIL_KEK (or VEIL_KEKS for versioned keys)")
        self._current = max(self._keys)

    def rotate(self) -> KeyRef:
        raise ConfigError(
            "environment keys are rotated by deploying a new version: add it to VEIL_KEKS "
            "(e.g. VEIL_KEKS=1:<old>,2:<new>), restart, then run `veil keys rotate` to re-wrap"
        )

    def retire(self, ref: KeyRef) -> None:
        raise ConfigError(f"to retire {ref}, remove its version from VEIL_KEKS once nothing uses it")


_FORMAT = "veil-keyfile-1"


class LocalKeyFileProvider(_InMemoryVersions):
    """KEKs in a local JSON file, created with mode 0600 on first use."""

    name = "file"

    def __init__(self, path: str | Path, *, create: bool = True, key_id: str = "local") -> None:
        super().__init__()
        self.path = Path(path)
        self.key_id = key_id
        self._lock = threading.Lock()
        if not self.path.exists():
            if not create:
                raise KeyUnavailable(f"key file {self.path} does not exist; create it with `veil keys init`")
            self._create()
        self._load()

    # -- file handling --------------------------------------------------------------------

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "format": _FORMAT,
            "key_id": self.key_id,
            "current": 1,
            "versions": {"1": {"key": base64.b64encode(os.urandom(KEY_BYTES)).decode(), "created": time.time()}},
        }
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # another process created it first: use theirs
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())

    def _read(self) -> dict[str, Any]:
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyUnavailable(
                f"key file {self.path} is accessible to other users (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {self.path}"
            )
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyUnavailable(f"key file {self.path} cannot be read ({type(exc).__name__})") from None
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise KeyUnavailable(f"key file {self.path} is not a veil key file ({_FORMAT})")
        return document

    def _load(self) -> None:
        document = self._read()
        self.key_id = str(document.get("key_id", self.key_id))
        keys: dict[int, bytes] = {}
        retired: set[int] = set()
        for version_text, entry in document.get("versions", {}).items():
            keys[int(version_text)] = _b64_key(entry["key"], f"{self.path} version {version_text}")
            if entry.get("retired"):
                retired.add(int(version_text))
        if not keys:
            raise KeyUnavailable(f"key file {self.path} holds no key")
        self._keys, self._retired, self._current = keys, retired, int(document.get("current", max(keys)))

    @contextlib.contextmanager
    def _locked_document(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write the key file under an exclusive lock, replacing it atomically."""
        import fcntl  # noqa: PLC0415 - POSIX only, and only for rotation

        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a", encoding="utf-8") as lock:
            os.chmod(lock_path, 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX)
            document = self._read()
            yield document
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        self._load()

    # -- KeyProvider ----------------------------------------------------------------------

    def reload(self) -> None:
        """Pick up versions another process added (rotation from the CLI while serving)."""
        self._load()

    def _key(self, ref: KeyRef) -> bytes:
        if ref.key_id == self.key_id and ref.version not in self._keys:
            self._load()  # rotated by another process since we loaded the file
        return super()._key(ref)

    def rotate(self) -> KeyRef:
        with self._locked_document() as document:
            version = max(int(v) for v in document["versions"]) + 1
            document["versions"][str(version)] = {
                "key": base64.b64encode(os.urandom(KEY_BYTES)).decode(),
                "created": time.time(),
            }
            document["current"] = version
        return self.current()

    def retire(self, ref: KeyRef) -> None:
        if ref.version == self._current:
            raise ConfigError(f"{ref} is the current key version; rotate before retiring it")
        with self._locked_document() as document:
            entry = document["versions"].get(str(ref.version))
            if entry is None:
                raise KeyUnavailable(f"key {ref} is not in {self.path}")
            entry["retired"] = True
