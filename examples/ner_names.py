"""Names, places and organisations: the rules and spaCy NER together (needs veil[ner]).

Run: uv run python examples/ner_names.py
"""

from veil import Engine, Policy, redact

engine = Engine()  # rules + spaCy NER when veil[ner] is installed (see `veil doctor`)

tickets = [
    (
        "fr",
        "Bonjour, ici Stéphane Thibault; mon médecin est Dr Sébastien Poirier, à Montréal. "
        "Pouvez-vous écrire à stephane.thibault@exemple.qc.ca?",
    ),
    (
        "en",
        "Please update the file for Jordan Johnson, born July 28, 1993. "
        "He moved to 42 Maple Ave, Apt 5, Springfield, Illinois 62704.",
    ),
    ("auto", "Bonjour, je voudrais parler à Marie-Ève Gagnon au sujet du dossier. Please also copy Chris Curtis."),
]

for language, text in tickets:
    spans = engine.detect(text, language)  # type: ignore[arg-type]
    for span in spans:
        print(f"{span.entity:<14} {span.score:.2f} {span.source:<7} {text[span.start : span.end]}")
    print("->", redact(text, spans))
    print()

# Permissive mode: one-word common words are never names; the rules still need context for weak patterns.
permissive = Engine(Policy(mode="permissive"))
text = "Merci. Virez le solde à Gagnon demain."
print("permissive:", [(s.entity, text[s.start : s.end]) for s in permissive.detect(text, "fr")])
