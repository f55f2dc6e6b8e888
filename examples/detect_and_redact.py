"""Find the PII of a bilingual support ticket and redact it.

Run: uv run python examples/detect_and_redact.py
"""

from pathlib import Path

from veil import Engine, redact

HERE = Path(__file__).parent


def main() -> None:
    engine = Engine()  # rules engine, strict mode, language picked per text
    for name in ("ticket_fr.txt", "ticket_en.txt"):
        text = (HERE / "data" / name).read_text(encoding="utf-8")
        spans = engine.detect(text)
        print(f"== {name}: {len(spans)} spans ({', '.join(sorted({s.entity for s in spans}))})")
        print(redact(text, spans))


if __name__ == "__main__":
    main()
