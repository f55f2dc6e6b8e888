#!/usr/bin/env python3
"""Write docs/entities.md from the built-in rules, so the table never drifts from the code.

Run: uv run python scripts/entities_doc.py > docs/entities.md  (tests/docs checks it is current)
"""

from veil.detect.policy import DEFAULT_THRESHOLDS
from veil.detect.rules import BUILTIN_RULES

NOTES = """
## Notes per family

- **Contact**: e-mails (found from their `@`), phone numbers (NANP without a country code;
  international with `+`; European numbers written with their trunk `0` and ten digits or more),
  URLs (with a scheme or `www.`), IPv4 and IPv6 (loopback and unspecified excluded). An IPv4
  address, a date or the pieces of an IBAN or a card are never phones.
- **Finance**: cards are 13–19 digits in consistent groups, Luhn-valid, in a public issuer range
  (Mastercard 2221–2720 included); other Luhn-valid 16/19-digit numbers (Interac, private label)
  need card words. IBANs are cut at their country's registered length, so a spaced IBAN never
  swallows the next word; the check is ISO 7064 mod 97. Canadian bank account numbers
  (transit-institution-account) need context words.
- **Canada**: SIN (Luhn, never starting with 0 or 8), health cards (RAMQ with the birth date and
  the +50 month of women checked; Ontario OHIP and BC PHN with context), postal codes (Canada
  Post's letters only), Quebec driver's licences.
- **Europe**: FR NIR (with Corsica's 2A/2B), DE Steuer-ID, NL BSN, BE national number, ES DNI/NIE,
  IT codice fiscale, EU VAT numbers — validated with python-stdnum. Weak shapes (nine or eleven
  digits) need context words.
- **Dates**: numeric (`03/07/1995`, `1995-07-03`, `03.07.1995`) and written in both languages
  (`28 juillet 1993`, `1er mars 2024`, `July 28, 1993`). A date becomes DATE_OF_BIRTH when birth
  words stand in the same clause ("né le", "date de naissance", "born", "DOB").
- **Addresses**: a civic number and a street type in English or French, then the unit, city,
  province and postal code when they follow. Addresses without a street type are left to NER.
- **Secrets**: API keys with well-known prefixes (OpenAI, GitHub, AWS, Google, Slack, Stripe,
  GitLab), JWTs, PEM private keys, and high-entropy bearer tokens.
"""


def render() -> str:
    permissive = DEFAULT_THRESHOLDS["permissive"]
    lines = [
        "# Entities",
        "",
        "Built-in entity names (`veil.Entity`); user patterns and deny-lists may add their own",
        "UPPER_SNAKE_CASE names. PERSON, LOCATION and ORGANIZATION come from the NER detectors",
        "(spaCy with `veil[ner]`, GLiNER, Presidio; see [NER](ner.md)), not from the rules below.",
        "",
        "A rule's base score applies when the value passes its validator; context words near the match",
        f"add to it. A rule whose base score is below the permissive threshold ({permissive}) needs",
        "context words in permissive mode. A value that fails its checksum is reported only in strict",
        "mode, with a low score, for the rules that keep such failures.",
        "",
        "This page is generated from the rules by `scripts/entities_doc.py`.",
        "",
        "| rule | entity | base score | validation | context needed in permissive mode | examples |",
        "|---|---|---|---|---|---|",
    ]
    for rule in BUILTIN_RULES:
        validation = "checked" if rule.validate else "format"
        if rule.invalid_score is not None:
            validation += f"; failures kept in strict mode at {rule.invalid_score}"
        entity = str(rule.entity) + (f" (→ {rule.promote.entity} with birth words)" if rule.promote else "")
        examples = ", ".join(f"`{e}`" for e in rule.examples[:2])
        needs = "yes" if rule.score < permissive else "no"
        lines.append(f"| `{rule.name}` | {entity} | {rule.score} | {validation} | {needs} | {examples} |")
    return "\n".join(lines) + "\n" + NOTES


if __name__ == "__main__":
    print(render(), end="")
