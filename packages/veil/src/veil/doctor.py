"""`veil doctor`: what detection runs on this machine, and whether the policy can run at all.

Lists the detectors of an Engine, the NER model of each language (package, version, load time),
the languages covered by rules and by NER, and which optional extras are installed. Loading the
models is what proves they work (a model built for another spaCy fails only then), so the
report loads them unless asked not to. Prints names and versions only, never text.
"""

from __future__ import annotations

import importlib.util
import platform
import time
from importlib import metadata

from veil import __version__
from veil.detect.engine import Engine
from veil.entities import LANGUAGES
from veil.errors import VeilError

EXTRAS: dict[str, tuple[str, ...]] = {
    "ner": ("spacy",),
    "gliner": ("gliner",),
    "presidio": ("presidio-analyzer",),
    "postgres": ("psycopg",),
    "redis": ("redis",),
    "hsm": ("python-pkcs11",),
}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def report(engine: Engine, *, load: bool = True) -> tuple[list[str], bool]:
    """The report's lines, and False when the engine's policy cannot run here."""
    policy = engine.policy
    healthy = True
    lines = [
        f"veil {__version__} on Python {platform.python_version()}",
        f"policy: mode {policy.mode}, ner {policy.ner}" + (" (required)" if policy.ner_required else ""),
        "detectors:",
    ]
    ner_languages: set[str] = set()
    for detector in engine.detectors:
        name = getattr(detector, "name", type(detector).__name__)
        if getattr(detector, "kind", None) != "ner":
            rules = getattr(detector, "rules", None)
            what = f"{len(rules)} rules" if rules is not None else type(detector).__name__
            lines.append(f"  {name:<10} {what}")
            continue
        describe = getattr(detector, "describe", None)
        models: dict[str, str] = describe() if callable(describe) else {}
        lines.append(f"  {name:<10} " + ", ".join(f"{k}: {v}" for k, v in models.items()))
        for language in LANGUAGES:
            model = models.get(language)
            if model is None and getattr(detector, "language_sensitive", True):
                continue
            if model == "missing":
                lines.append(f"    {language}: no model installed (pip install 'veil[ner]')")
                healthy = healthy and policy.mode == "permissive" and not policy.ner_required
                continue
            if load and hasattr(detector, "load") and language in models:
                started = time.perf_counter()
                try:
                    detector.load([language])
                except VeilError as exc:
                    lines.append(f"    {language}: cannot load: {exc}")
                    healthy = False
                    continue
                lines.append(f"    {language}: loaded in {time.perf_counter() - started:.2f} s")
            ner_languages.add(language)
        loaded = getattr(detector, "loaded_versions", None)
        if load and callable(loaded):
            for language, version in sorted(loaded().items()):
                lines.append(f"    {language}: {version}")
    lines.append("languages:")
    for language in LANGUAGES:
        lines.append(f"  {language}: rules" + (" + NER" if language in ner_languages else " only"))
    if not engine.ner_detectors:
        hint = "policy.ner = off" if policy.ner == "off" else "pip install 'veil[ner]' for names and places"
        lines.append(f"  (no NER: PERSON, LOCATION and ORGANIZATION are not detected; {hint})")
    lines.append("extras:")
    for extra, distributions in EXTRAS.items():
        versions = [v for v in (_version(d) for d in distributions) if v]
        state = f"installed ({', '.join(versions)})" if versions else "not installed"
        lines.append(f"  veil[{extra}]: {state}")
    if importlib.util.find_spec("torch") is not None:
        lines.append("  (torch is importable in this environment)")
    lines.append("status: " + ("ok" if healthy else "this policy cannot run here (see above)"))
    return lines, healthy
