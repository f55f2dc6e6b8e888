"""Prometheus metrics, one registry per app (no global state). Labels are endpoint names, provider
names, status codes and entity types: never text, scopes, keys or anything a client wrote.
With several workers each process keeps its own counters (scrape each, or use a multiprocess
collector)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

ENDPOINTS = frozenset({
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/anonymize",
    "/v1/anonymization/scan", "/v1/usage", "/healthz", "/readyz", "/metrics", "/openapi.json",
    "/v1/admin/webhooks", "/v1/approvals", "/v1/anonymization/reverse",
})  # fmt: skip

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def endpoint_label(path: str) -> str:
    return path if path in ENDPOINTS else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "veil_requests", "HTTP requests served", ["endpoint", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "veil_request_seconds", "Time to the response's headers", ["endpoint"], registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.anonymize_seconds = Histogram(
            "veil_anonymize_seconds", "Time spent anonymizing a request", ["endpoint"], registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.pii = Counter("veil_pii_values", "Values replaced by tokens", ["entity"], registry=self.registry)
        self.upstream_latency = Histogram(
            "veil_upstream_seconds", "Time to the upstream's answer (or its stream's headers)", ["provider"],
            registry=self.registry, buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "veil_upstream_errors", "Upstream failures", ["provider", "status"], registry=self.registry
        )
        self.streams = Counter(
            "veil_streams", "Streams relayed, by outcome", ["endpoint", "outcome"], registry=self.registry
        )
        self.drift = Counter("veil_restore_drift", "Tokens dropped, altered or invented by models", ["kind"],
                             registry=self.registry)  # fmt: skip

        self.limited = Counter("veil_limited", "Requests refused by a key's limits", ["limit"],
                               registry=self.registry)  # fmt: skip
        self.usage_errors = Counter("veil_usage_errors", "Usage that could not be recorded at once (retried)",
                                    ["backend"], registry=self.registry)  # fmt: skip
        self.webhook_attempts = Counter(
            "veil_webhook_attempts", "Webhook delivery attempts, by outcome (delivered, retry, failed)", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.webhook_dropped = Counter(
            "veil_webhook_events_dropped", "Events dropped because the webhook buffer was full",
            registry=self.registry,
        )  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)
