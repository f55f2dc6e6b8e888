"""Embeddings, models, legacy completions, the anonymize / restore / scan API, and the operations
endpoints (health, readiness, metrics, OpenAPI), through real clients on loopback."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import httpx
import openai
import pytest
from gateway_setup import CANARIES, CANARY_TEXT
from server_live import RecordingUpstream

AUTH = {"Authorization": "Bearer sk-veil-test"}


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


def test_embeddings_use_collection_consistent_tokens_so_retrieval_still_matches(
    client: openai.OpenAI, upstream: RecordingUpstream
) -> None:
    documents = [
        f"Dossier de {CANARIES['email']} : réclamation pour dégât d'eau.",
        "Dossier de jean.dupuis@exemple.ca : changement d'adresse.",
        "Dossier de luc.gagnon@exemple.ca : question de facturation.",
    ]
    indexed = client.embeddings.create(model="embed-test", input=documents, extra_headers={"X-Veil-Scope": "kb-1"})
    query = client.embeddings.create(
        model="embed-test", input=CANARIES["email"], extra_headers={"X-Veil-Scope": "kb-1"}
    )
    scores = [cosine(query.data[0].embedding, d.embedding) for d in indexed.data]
    assert scores.index(max(scores)) == 0
    sent = [r.json()["input"] for r in upstream.requests]
    assert sent[1] == "{{EMAIL_1}}" and sent[0][0].startswith("Dossier de {{EMAIL_1}}")
    assert CANARIES["email"] not in upstream.bodies()
    assert indexed.model_extra["veil"]["scope"] == "kb-1"
    assert indexed.model_extra["veil"]["pii_count"] == 3


def test_embeddings_default_to_the_servers_collection_scope(client: openai.OpenAI, upstream: RecordingUpstream) -> None:
    first = client.embeddings.create(model="embed-test", input="écrire à paul.roy@exemple.ca")
    second = client.embeddings.create(model="embed-test", input="paul.roy@exemple.ca")
    assert first.model_extra["veil"]["scope"] == "embeddings"
    tokens = [r.json()["input"].split()[-1] for r in upstream.requests]
    assert tokens[0] == tokens[1]
    assert second.data[0].embedding


def test_embeddings_in_float_and_base64_carry_the_same_vector(base_url: str, upstream: RecordingUpstream) -> None:
    body: dict[str, Any] = {"model": "embed-test", "input": ["un texte", "un autre texte"]}
    as_float = httpx.post(f"{base_url}/embeddings", json={**body, "encoding_format": "float"}, headers=AUTH).json()
    as_base64 = httpx.post(f"{base_url}/embeddings", json={**body, "encoding_format": "base64"}, headers=AUTH).json()
    raw = base64.b64decode(as_base64["data"][1]["embedding"])
    decoded = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert decoded == pytest.approx(as_float["data"][1]["embedding"], rel=1e-6)
    assert as_float["object"] == "list" and as_float["data"][0]["object"] == "embedding"
    assert as_float["usage"]["prompt_tokens"] > 0


def test_token_id_inputs_cannot_be_checked_and_are_refused(client: openai.OpenAI, upstream: RecordingUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="embed-test", input=[[101, 2023, 102]])
    assert refused.value.param == "input"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="gpt-test", prompt=[101, 2023, 102])
    assert not upstream.requests
    allowed = client.embeddings.create(model="embed-test", input=[[101, 2023]], extra_body={"anonymize": False})
    assert allowed.data


def test_models_list_each_model_with_where_it_runs(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert {"echo", "echo-embedding", "gpt-test", "embed-test"} <= set(models)
    assert models["gpt-test"].object == "model"
    assert models["gpt-test"].model_extra["veil"] == {
        "provider": "recording", "location": "loopback", "context_length": 128000, "category": "chat",
    }  # fmt: skip
    assert models["embed-test"].model_extra["veil"]["category"] == "embedding"
    assert client.models.retrieve("echo").id == "echo"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nope")


def test_legacy_completions_are_anonymized_and_restored(client: openai.OpenAI, upstream: RecordingUpstream) -> None:
    unary = client.completions.create(model="gpt-test", prompt=[CANARY_TEXT, "Rien ici."])
    assert [c.text for c in unary.choices] == [CANARY_TEXT, "Rien ici."]
    stream = client.completions.create(model="gpt-test", prompt=CANARY_TEXT, stream=True)
    pieces = [c.choices[0].text for c in stream if c.choices]
    assert "".join(pieces) == CANARY_TEXT
    assert all("{{" not in piece for piece in pieces)
    assert unary.model_extra["veil"]["pii_count"] == 4
    for value in CANARIES.values():
        assert value not in upstream.bodies()


def test_anonymize_returns_tokens_and_mapping_then_restore_puts_values_back(
    base_url: str, upstream: RecordingUpstream
) -> None:
    done = httpx.post(f"{base_url}/anonymize", json={"text": CANARY_TEXT}, headers=AUTH).json()
    assert done["pii_count"] == 4
    assert done["mapping"]["{{EMAIL_1}}"] == CANARIES["email"]
    assert CANARIES["email"] not in done["anonymized_text"]
    restored = httpx.put(f"{base_url}/anonymize", json={"text": done["anonymized_text"], "mapping": done["mapping"]},
                         headers=AUTH).json()  # fmt: skip
    assert restored["text"] == CANARY_TEXT
    assert restored["restored_count"] == 4
    assert not upstream.requests  # no model was asked


def test_anonymize_extends_an_existing_mapping(base_url: str) -> None:
    first = httpx.post(f"{base_url}/anonymize", json={"text": "a@exemple.ca puis b@exemple.ca"}, headers=AUTH).json()
    second = httpx.post(
        f"{base_url}/anonymize", json={"text": "c@exemple.ca et b@exemple.ca", "existing_mapping": first["mapping"]},
        headers=AUTH,
    ).json()  # fmt: skip
    assert second["anonymized_text"] == "{{EMAIL_3}} et {{EMAIL_2}}"
    assert second["mapping"] == {**first["mapping"], "{{EMAIL_3}}": "c@exemple.ca"}


def test_anonymize_in_a_scope_and_restore_from_that_scope_of_the_same_tenant_only(base_url: str) -> None:
    done = httpx.post(f"{base_url}/anonymize", json={"text": f"NAS {CANARIES['sin']}", "scope": "case-77"},
                      headers=AUTH).json()  # fmt: skip
    assert done["anonymized_text"] == "NAS {{CA_SIN_1}}"
    asked = {"text": "Le {{CA_SIN_1}} est noté.", "scope": "case-77"}
    # Restoring from a scope reads the vault: it takes the mapping:read scope.
    refused = httpx.put(f"{base_url}/anonymize", json=asked, headers=AUTH)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    reader = {"Authorization": "Bearer sk-veil-mapping"}
    back = httpx.put(f"{base_url}/anonymize", json=asked, headers=reader).json()
    assert back["text"] == f"Le {CANARIES['sin']} est noté."
    elsewhere = httpx.put(f"{base_url}/anonymize", json={**asked, "scope": "case-78"}, headers=reader).json()
    assert elsewhere["text"] == asked["text"] and elsewhere["drift"]["invented"] == ["{{CA_SIN_1}}"]
    other_tenant = httpx.put(f"{base_url}/anonymize", json=asked,
                             headers={"Authorization": "Bearer sk-veil-other-tenant"}).json()  # fmt: skip
    assert other_tenant["text"] == asked["text"]  # same scope name, another tenant: nothing to restore


def test_a_conversation_scope_is_per_tenant(base_url: str, upstream: RecordingUpstream) -> None:
    import openai

    scope = {"X-Veil-Scope": "shared-name"}
    for key, email in (("sk-veil-test", "a@exemple.ca"), ("sk-veil-other-tenant", "b@exemple.ca")):
        with openai.OpenAI(base_url=base_url, api_key=key, max_retries=0) as sdk:
            sdk.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": email}],
                                        extra_headers=scope)  # fmt: skip
    # Each tenant numbers its own values: the second tenant's first e-mail is its {{EMAIL_1}} too.
    assert [r.json()["messages"][0]["content"] for r in upstream.requests] == ["{{EMAIL_1}}", "{{EMAIL_1}}"]


def test_anonymize_can_process_with_a_model_that_sees_only_tokens(base_url: str, upstream: RecordingUpstream) -> None:
    done = httpx.post(f"{base_url}/anonymize", json={"text": CANARY_TEXT, "process_with_llm": True,
                                                      "model": "gpt-test"}, headers=AUTH).json()  # fmt: skip
    assert done["llm"]["raw_content"] == done["anonymized_text"]
    assert done["llm"]["content"] == CANARY_TEXT
    for value in CANARIES.values():
        assert value not in upstream.bodies()


def test_restore_needs_exactly_one_of_mapping_or_scope(base_url: str) -> None:
    response = httpx.put(f"{base_url}/anonymize", json={"text": "x"}, headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["param"] == "mapping"


def test_scan_reports_spans_in_code_points_and_honours_the_mode(base_url: str) -> None:
    text = f"Écrivez à {CANARIES['email']}. Référence 046454286."
    strict = httpx.post(f"{base_url}/anonymization/scan", json={"text": text}, headers=AUTH).json()
    emails = [s for s in strict["spans"] if s["entity"] == "EMAIL"]
    assert emails == [{"start": 10, "end": 10 + len(CANARIES["email"]), "entity": "EMAIL",
                       "score": emails[0]["score"], "text": CANARIES["email"]}]  # fmt: skip
    permissive = httpx.post(f"{base_url}/anonymization/scan", json={"text": text, "mode": "permissive"},
                            headers=AUTH).json()  # fmt: skip
    assert permissive["pii_count"] <= strict["pii_count"]
    only = httpx.post(f"{base_url}/anonymization/scan", json={"text": text, "entities": ["email"]},
                      headers={"Authorization": "Bearer sk-veil-scan"}).json()  # fmt: skip
    assert only["pii_types"] == ["EMAIL"]


def test_health_readiness_and_metrics_without_personal_data(gateway_url: str, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": CANARY_TEXT}])
    assert httpx.get(f"{gateway_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway_url}/readyz")
    checks = ready.json()["checks"]
    assert checks["vault"] == "ok" and checks["upstream:echo"] == "ok" and checks["upstream:recording"] == "ok"
    assert ready.status_code == 503 and checks["upstream:down"] == "upstream_unreachable"  # one upstream is down
    metrics = httpx.get(f"{gateway_url}/metrics").text
    assert 'veil_requests_total{endpoint="/v1/chat/completions",method="POST",status="200"}' in metrics
    assert 'veil_pii_values_total{entity="EMAIL"}' in metrics
    for value in CANARIES.values():
        assert value not in metrics
    assert "{{" not in metrics


def test_openapi_describes_every_endpoint_and_the_veil_extensions(gateway_url: str) -> None:
    spec = httpx.get(f"{gateway_url}/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    for path, method in [("/v1/chat/completions", "post"), ("/v1/completions", "post"), ("/v1/embeddings", "post"),
                         ("/v1/models", "get"), ("/v1/anonymize", "post"), ("/v1/anonymize", "put"),
                         ("/v1/anonymization/scan", "post"), ("/healthz", "get"), ("/readyz", "get")]:  # fmt: skip
        assert method in paths[path], path
    assert all("422" not in operation["responses"] for ops in paths.values() for operation in ops.values())
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    errors = paths["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "401", "413", "429", "502", "503", "504"} <= set(errors)
    assert spec["components"]["schemas"]["ChatCompletionResponse"]["properties"]["veil"]
    chat = spec["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert {"anonymize", "anonymize_mode", "veil_scope"} <= set(chat)
    assert "X-Anonymize" in chat["anonymize"]["description"]
