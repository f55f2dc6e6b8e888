"""A KeyProvider whose key-encryption keys live in a hardware security module (PKCS#11).

KEK versions are AES-256 secret keys generated inside the token, labelled `<key_label>-v1`,
`-v2` …, sensitive and not extractable: their value never leaves the HSM. Wrapping a data key
is an AES-GCM encryption done by the token (random 96-bit nonce, the data key's identity as
associated data); unwrapping is the token's decryption. A retired version is relabelled
`<key_label>-vN-retired` and no longer used. Tested with SoftHSM2; any PKCS#11 v2.40 module
with CKM_AES_GCM works. Extra: `veil[hsm]` (python-pkcs11).
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from veil.crypto.envelope import KEY_BYTES, NONCE_BYTES
from veil.crypto.keys import KeyRef
from veil.errors import ConfigError, IntegrityError, KeyUnavailable


def _pkcs11() -> Any:
    try:
        import pkcs11  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError("the PKCS#11 key provider needs python-pkcs11: pip install 'veil[hsm]'") from exc
    return pkcs11


class Pkcs11KeyProvider:
    """KEKs inside an HSM token; see the module docstring."""

    name = "pkcs11"

    def __init__(self, library_path: str, token_label: str, pin: str, *, key_label: str = "veil-kek") -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,48}", key_label):
            raise ConfigError("PKCS#11 key label: letters, digits, '_', '.', '-' only (at most 48)")
        self._p11 = _pkcs11()
        self.key_id = key_label
        self._pin = pin
        self._lock = threading.Lock()
        self._session: Any = None
        try:
            library = self._p11.lib(library_path)
        except Exception as exc:
            raise KeyUnavailable(f"cannot load the PKCS#11 module {library_path} ({type(exc).__name__})") from None
        try:
            self._token = library.get_token(token_label=token_label)
        except Exception as exc:
            raise KeyUnavailable(f"no PKCS#11 token labelled {token_label!r} ({type(exc).__name__})") from None
        self._keys: dict[int, Any] = {}
        with self._lock:
            self._load()
            if not self._keys:
                self._generate(1)

    # -- token access ---------------------------------------------------------------------------

    def _open(self) -> Any:
        if self._session is None:
            try:
                self._session = self._token.open(rw=True, user_pin=self._pin)
            except self._p11.exceptions.UserAlreadyLoggedIn:
                # PKCS#11 logins are per process and token: another provider of this process
                # logged in already, and its login covers every session we open.
                self._session = self._token.open(rw=True)
            except self._p11.exceptions.PinIncorrect:
                raise KeyUnavailable("the PKCS#11 token refused the PIN") from None
            except Exception as exc:
                raise KeyUnavailable(f"cannot open a session on the PKCS#11 token ({type(exc).__name__})") from None
        return self._session

    def _load(self) -> None:
        attribute, object_class = self._p11.Attribute, self._p11.ObjectClass
        pattern = re.compile(rf"{re.escape(self.key_id)}-v([0-9]+)")
        keys = {}
        for key in self._open().get_objects({attribute.CLASS: object_class.SECRET_KEY}):
            match = pattern.fullmatch(str(key.label))
            if match:
                keys[int(match.group(1))] = key
        self._keys = keys

    def _generate(self, version: int) -> None:
        attribute = self._p11.Attribute
        self._keys[version] = self._open().generate_key(
            self._p11.KeyType.AES, KEY_BYTES * 8, label=f"{self.key_id}-v{version}", store=True,
            template={attribute.SENSITIVE: True, attribute.EXTRACTABLE: False, attribute.ENCRYPT: True,
                      attribute.DECRYPT: True, attribute.WRAP: False, attribute.UNWRAP: False},
        )  # fmt: skip

    def _key(self, ref: KeyRef) -> Any:
        if ref.key_id != self.key_id:
            raise KeyUnavailable(f"key {ref} is not held by this PKCS#11 provider ({self.key_id})")
        key = self._keys.get(ref.version)
        if key is None:
            self._load()  # rotated by another process since
            key = self._keys.get(ref.version)
        if key is None:
            raise KeyUnavailable(f"key {ref} is not on the PKCS#11 token (retired or never created)")
        return key

    # -- KeyProvider ----------------------------------------------------------------------------

    def current(self) -> KeyRef:
        with self._lock:
            return KeyRef(self.key_id, max(self._keys))

    def versions(self) -> list[KeyRef]:
        with self._lock:
            return [KeyRef(self.key_id, version) for version in sorted(self._keys)]

    def wrap(self, ref: KeyRef, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        with self._lock:
            key = self._key(ref)
            sealed = key.encrypt(data_key, mechanism=self._p11.Mechanism.AES_GCM,
                                 mechanism_param=self._p11.GCMParams(nonce, aad))  # fmt: skip
        return nonce + bytes(sealed)

    def unwrap(self, ref: KeyRef, wrapped: bytes, aad: bytes) -> bytes:
        if len(wrapped) < NONCE_BYTES + 16:
            raise IntegrityError(f"data key wrapped with {ref} is truncated")
        with self._lock:
            key = self._key(ref)
            try:
                plain = key.decrypt(wrapped[NONCE_BYTES:], mechanism=self._p11.Mechanism.AES_GCM,
                                    mechanism_param=self._p11.GCMParams(wrapped[:NONCE_BYTES], aad))  # fmt: skip
            except self._p11.exceptions.PKCS11Error:
                raise IntegrityError(
                    f"data key wrapped with {ref} failed authentication in the HSM (altered or moved)"
                ) from None
        return bytes(plain)

    def rotate(self) -> KeyRef:
        with self._lock:
            self._load()
            version = max(self._keys) + 1
            self._generate(version)
            return KeyRef(self.key_id, version)

    def retire(self, ref: KeyRef) -> None:
        with self._lock:
            if ref.version == max(self._keys):
                raise ConfigError(f"{ref} is the current key version; rotate before retiring it")
            key = self._key(ref)
            key[self._p11.Attribute.LABEL] = f"{self.key_id}-v{ref.version}-retired"
            del self._keys[ref.version]

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
