"""A chat turn through veil: anonymize the conversation, call a model, restore its answer — streamed.

The "model" here is a stand-in that answers with the tokens it was given, word by word, the way a
real model streams; veil restores the stream chunk by chunk without showing half a token.

Run: uv run python examples/reversible_chat.py
"""

import tempfile
from collections.abc import Iterator

from veil.session import Veil


def fake_model_stream(prompt: str) -> Iterator[str]:
    """Echo the user's message back in small chunks, as a streaming model would."""
    answer = f"Bien reçu. Je résume : {prompt}"
    for start in range(0, len(answer), 5):
        yield answer[start : start + 5]


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        veil = Veil.open(home)  # SQLite vault + key file (mode 0600) + audit log
        session = veil.session("conversation-42", subject="client-1001")

        user = "Bonjour, je suis joignable au (514) 555-0199 ou à marie@exemple.qc.ca. NAS 130 692 544."
        sent = session.anonymize([{"role": "user", "content": user}])
        prompt = sent.value[0]["content"]
        print("to the model:  ", prompt)

        stream = session.stream_restorer()
        shown = [stream.feed(chunk) for chunk in fake_model_stream(prompt)]
        shown.append(stream.flush())
        print("to the user:   ", "".join(shown))
        print("drift:         ", stream.drift.to_dict())

        print("erased:        ", veil.erase_subject("client-1001"), "mapping(s)")
        print("audit log ok:  ", veil.audit.verify().ok)
        veil.close()


if __name__ == "__main__":
    main()
