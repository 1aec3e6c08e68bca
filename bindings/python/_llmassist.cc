// The private extension module behind the `llmassist` Python package. It exposes the library's
// objects with as little policy as possible; the package's __init__.py is the public face.
//
// Errors are mapped in one place: every non-OK Status raises llmassist.Error carrying the
// status code's name. The GIL is released around every call that may block (database I/O,
// waiting for a model), so Python threads keep running.
#include <pybind11/pybind11.h>
#include <pybind11/eval.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "llmassist/bot/provider_config.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "llmassist/version.h"

namespace py = pybind11;
using namespace llmassist;

namespace {

PyObject* g_error = nullptr;  // llmassist._llmassist.Error, created at import

[[noreturn]] void raise(const Status& status) {
  py::object error = py::reinterpret_borrow<py::object>(g_error);
  py::object instance = error(status.message(), std::string(to_string(status.code())),
                              status.reason());
  PyErr_SetObject(g_error, instance.ptr());
  throw py::error_already_set();
}

void check(const Status& status) {
  if (!status.ok()) raise(status);
}

template <typename T>
T value(Result<T> result) {
  if (!result.ok()) raise(result.status());
  return std::move(result).value();
}

double to_seconds(Timestamp t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// The store, as Python sees it: blocking calls without the GIL.
class PyStore {
 public:
  explicit PyStore(const std::string& path) {
    SqliteStoreOptions options;
    options.path = path;
    options.logger = null_logger();
    Result<std::unique_ptr<MessageStore>> opened = [&] {
      py::gil_scoped_release release;
      return open_sqlite_store(options);
    }();
    store_ = value(std::move(opened));
  }

  Chat upsert_chat(const std::string& channel, const std::string& external_id,
                   const std::string& title, const std::string& username) {
    py::gil_scoped_release release;
    auto r = store_->upsert_chat({channel, external_id, title, username});
    py::gil_scoped_acquire acquire;
    return value(std::move(r));
  }

  InboundResult append_inbound(ChatId chat, const std::string& text, const std::string& author,
                               const std::string& dedup_key, bool open_reply) {
    InboundMessage m;
    m.chat_id = chat;
    m.text = text;
    m.author = author;
    m.dedup_key = dedup_key;
    m.open_reply = open_reply;
    py::gil_scoped_release release;
    auto r = llmassist::append_inbound(*store_, m);
    py::gil_scoped_acquire acquire;
    return value(std::move(r));
  }

  std::vector<Message> history(ChatId chat, int limit, MessageId before_id,
                               const std::string& search) {
    HistoryQuery q;
    q.limit = limit;
    q.before_id = before_id;
    q.search = search;
    py::gil_scoped_release release;
    auto r = store_->chat_history(chat, q);
    py::gil_scoped_acquire acquire;
    return value(std::move(r));
  }

  std::vector<Message> recent_messages(SessionId session, int count) {
    py::gil_scoped_release release;
    auto r = store_->recent_messages(session, count);
    py::gil_scoped_acquire acquire;
    return value(std::move(r));
  }

  Session restart_session(ChatId chat) {
    py::gil_scoped_release release;
    auto r = store_->restart_session(chat);
    py::gil_scoped_acquire acquire;
    return value(std::move(r));
  }

  Reply get_reply(ReplyId id) {
    py::gil_scoped_release release;
    auto r = store_->get_reply(id);
    py::gil_scoped_acquire acquire;
    return value(std::move(r));
  }

  std::vector<Reply> replies(std::optional<std::string> status, int limit) {
    ReplyQuery q;
    q.limit = limit;
    if (status) {
      auto parsed = parse_reply_status(*status);
      if (!parsed) check(invalid_argument("unknown reply status \"" + *status + "\""));
      q.status = *parsed;
    }
    py::gil_scoped_release release;
    auto r = store_->list_replies(q);
    py::gil_scoped_acquire acquire;
    return value(std::move(r));
  }

 private:
  std::unique_ptr<MessageStore> store_;
};

// A provider chain built from a config text (JSON); "{}" gives the shipped knowledge base.
class PyChain {
 public:
  explicit PyChain(const std::string& config_json) {
    ProviderConfigContext context;
    context.logger = null_logger();
    Result<std::unique_ptr<FallbackChain>> made = [&] {
      py::gil_scoped_release release;
      return make_chain_from_config(config_json, context);
    }();
    chain_ = value(std::move(made));
  }

  Completion ask(const std::string& question, const std::string& system, double timeout_s) {
    CompletionRequest request;
    if (!system.empty()) request.messages.push_back({Role::kSystem, system});
    request.messages.push_back({Role::kUser, question});
    request.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000));
    py::gil_scoped_release release;
    auto r = complete_sync(*chain_, std::move(request));
    py::gil_scoped_acquire acquire;
    return value(std::move(r));
  }

  std::vector<std::string> providers() const {
    std::vector<std::string> out;
    for (const auto& s : chain_->provider_stats()) out.push_back(s.name);
    return out;
  }

 private:
  std::unique_ptr<FallbackChain> chain_;
};

}  // namespace

PYBIND11_MODULE(_llmassist, m) {
  m.doc() = "The private extension module of the llmassist package.";
  m.attr("__version__") = LLMASSIST_VERSION_STRING;
  // Error(message, code, reason): `code` is the status code's name ("not_found").
  py::dict namespace_;
  namespace_["__builtins__"] = py::module_::import("builtins");
  py::exec(R"(
class Error(RuntimeError):
    """A failure reported by llmassist; `code` names its kind ("not_found", "unavailable")."""
    def __init__(self, message, code="unknown", reason=""):
        super().__init__(message)
        self.code = code
        self.reason = reason
)", namespace_);
  py::object error = namespace_["Error"];
  error.attr("__module__") = "llmassist";
  m.attr("Error") = error;
  g_error = error.ptr();
  Py_INCREF(g_error);  // kept for the life of the process, as the module is

  py::class_<Chat>(m, "Chat")
      .def_readonly("id", &Chat::id)
      .def_readonly("channel", &Chat::channel)
      .def_readonly("external_id", &Chat::external_id)
      .def_readonly("title", &Chat::title)
      .def_readonly("username", &Chat::username)
      .def_property_readonly("mode", [](const Chat& c) { return std::string(to_string(c.mode)); })
      .def_readonly("blocked", &Chat::blocked)
      .def("__repr__", [](const Chat& c) {
        return "<Chat " + std::to_string(c.id) + " " + c.channel + ":" + c.external_id + ">";
      });
  py::class_<Session>(m, "Session")
      .def_readonly("id", &Session::id)
      .def_readonly("chat_id", &Session::chat_id);
  py::class_<Message>(m, "Message")
      .def_readonly("id", &Message::id)
      .def_readonly("chat_id", &Message::chat_id)
      .def_readonly("session_id", &Message::session_id)
      .def_property_readonly("role", [](const Message& x) { return std::string(to_string(x.role)); })
      .def_readonly("text", &Message::text)
      .def_readonly("author", &Message::author)
      .def_property_readonly("created_at", [](const Message& x) { return to_seconds(x.created_at); })
      .def_readonly("reply_id", &Message::reply_id);
  py::class_<InboundResult>(m, "InboundResult")
      .def_readonly("message", &InboundResult::message)
      .def_readonly("reply_id", &InboundResult::reply_id)
      .def_readonly("duplicate", &InboundResult::duplicate);
  py::class_<Reply>(m, "Reply")
      .def_readonly("id", &Reply::id)
      .def_readonly("chat_id", &Reply::chat_id)
      .def_readonly("question_id", &Reply::question_id)
      .def_property_readonly("status",
                             [](const Reply& r) { return std::string(to_string(r.status)); })
      .def_readonly("draft_text", &Reply::draft_text)
      .def_readonly("final_text", &Reply::final_text)
      .def_readonly("provider", &Reply::provider);
  py::class_<Completion>(m, "Completion")
      .def_readonly("text", &Completion::text)
      .def_readonly("provider", &Completion::provider)
      .def_readonly("model", &Completion::model)
      .def_readonly("providers_tried", &Completion::providers_tried)
      .def_property_readonly("latency_ms",
                             [](const Completion& c) { return c.latency.count(); });

  py::class_<PyStore>(m, "SqliteStore")
      .def(py::init<const std::string&>(), py::arg("path"))
      .def("upsert_chat", &PyStore::upsert_chat, py::arg("channel"), py::arg("external_id"),
           py::arg("title") = "", py::arg("username") = "")
      .def("append_inbound", &PyStore::append_inbound, py::arg("chat_id"), py::arg("text"),
           py::arg("author") = "", py::arg("dedup_key") = "", py::arg("open_reply") = true)
      .def("history", &PyStore::history, py::arg("chat_id"), py::arg("limit") = 50,
           py::arg("before_id") = 0, py::arg("search") = "")
      .def("recent_messages", &PyStore::recent_messages, py::arg("session_id"),
           py::arg("count") = 20)
      .def("restart_session", &PyStore::restart_session, py::arg("chat_id"))
      .def("get_reply", &PyStore::get_reply, py::arg("reply_id"))
      .def("replies", &PyStore::replies, py::arg("status") = py::none(), py::arg("limit") = 100);
  py::class_<PyChain>(m, "Chain")
      .def(py::init<const std::string&>(), py::arg("config_json") = "{}")
      .def("ask", &PyChain::ask, py::arg("question"), py::arg("system") = "",
           py::arg("timeout") = 0.0)
      .def_property_readonly("providers", &PyChain::providers);
}
