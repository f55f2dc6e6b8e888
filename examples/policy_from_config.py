"""Load a policy from veil.toml: modes, entities off, allow/deny lists, a user pattern.

Run: uv run python examples/policy_from_config.py
"""

from pathlib import Path

from veil import Engine, Policy, redact

HERE = Path(__file__).parent

TICKET = (
    "Bonjour, ma police POL-2024-001234 couvre-t-elle le Projet Orion? "
    "Écrivez-moi à jean.roy@exemple.ca (copie à soutien@assurances-exemple.ca). "
    "Né le 14 juillet 1985; rendez-vous le 3 mars 2025."
)


def main() -> None:
    policy = Policy.from_toml(HERE / "veil.toml")
    engine = Engine(policy)
    spans = engine.detect(TICKET)
    for span in spans:
        print(f"{span.entity:<15} {span.score:.2f} {span.source}")
    print(redact(TICKET, spans))


if __name__ == "__main__":
    main()
