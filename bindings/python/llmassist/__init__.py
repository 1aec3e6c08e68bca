"""llmassist for Python: the same store and provider chain as the C++ library.

    import llmassist
    store = llmassist.SqliteStore("bot.db")
    chat = store.upsert_chat("telegram", "123456", title="Ann")
    result = store.append_inbound(chat.id, "Hi!", dedup_key="telegram:812345")

    chain = llmassist.Chain()            # the shipped knowledge base; or Chain(open("bot.json").read())
    answer = chain.ask("How do I talk to a human?")
    print(answer.text, answer.provider)

Failures raise llmassist.Error, whose `code` names the kind ("not_found", "invalid_argument",
"unavailable", ...) and `reason` refines it ("no_answer").
"""

from ._llmassist import (  # noqa: F401
    Chain,
    Chat,
    Completion,
    Error,
    InboundResult,
    Message,
    Reply,
    Session,
    SqliteStore,
    __version__,
)

__all__ = ["Chain", "Chat", "Completion", "Error", "InboundResult", "Message", "Reply",
           "Session", "SqliteStore", "__version__"]
