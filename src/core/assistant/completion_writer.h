// The Assistant's completion writer: the one thread that stores completions. A completion (a
// draft from the LLM, a send's outcome from a transport) arrives on its component's I/O thread.
// Written there, each would wait alone for its commit (an fsync with synchronous=FULL) and hold
// up every other exchange of that component meanwhile. They are queued here instead, and the
// writer takes all that have arrived and writes them in one transaction
// (MessageStore::transition_and_claim_each), each step with the claims that carry its chat on
// (its next answer to send, its next question to draft): the more arrive while a commit runs,
// the more the next one carries. Each still has its effects (what comes next for its chat,
// waking the worker, counters) only after the commit.
//
// Thread-safety: completed() from any thread; start() and stop() from one.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/assistant/dispatcher.h"
#include "core/assistant/tool_loop.h"

namespace llmassist::detail::assistant {

struct Core;

// One completion.
struct Done {
  Reply reply;
  std::optional<Result<Completion>> drafted;  // a draft's outcome, or
  std::optional<Result<SentMessage>> sent;    // a send's
  Chat chat;                                  // the reply's chat, as read when it began
  DraftExtras extras;                         // a draft's files and deferred calls
};

class CompletionWriter {
 public:
  explicit CompletionWriter(Core& core) : core_(core) {}
  CompletionWriter(const CompletionWriter&) = delete;
  CompletionWriter& operator=(const CompletionWriter&) = delete;

  void start();
  // Lets the writer finish what is queued, then joins it.
  void stop();
  // Hands a completion to the writer, or writes it here when none runs (before start(), after
  // stop()).
  void completed(Done d);

 private:
  // The claims that carry a chat on when one of its steps ends, each only when a slot is free
  // counting the one this step frees. `complete` is false when a slot was full or the
  // assistant is stopping: the worker must look (later).
  struct Continuation {
    std::vector<ClaimRequest> claims;
    int send = -1;  // index in claims, or -1
    int draft = -1;
    bool complete = false;  // also when none was made (a draft left for an operator)
  };
  // The steps that end in one batch, by chat: their drafts and sends still count as in flight
  // while the batch is written.
  struct Endings {
    std::map<ChatId, int> drafts;
    std::map<ChatId, int> sends;
  };
  enum class Ending { kDraft, kSend };

  void run();
  // Writes a batch: the steps that went well in one transaction, each with the claims that
  // carry its chat on; then, for each, what follows. Failures are written one by one, as they
  // come (they are rare and each has its own path).
  void write(std::vector<Done>& batch);
  Continuation continuation(const Chat& chat, Ending ending, Slots& slots, const Endings& batch);
  // Starts what a continuation claimed, with the chat as read in its transaction: the draft
  // first, as the longer path.
  void carry_on(const Continuation& c, ChangeAndClaims& done);
  void after_draft(const Done& d, const ReplyChange& change, const Continuation& next,
                   Result<ChangeAndClaims>& stored);
  void after_send(const Done& d, const Continuation& next, Result<ChangeAndClaims>& stored);

  Core& core_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::vector<Done> queue_;  // guarded by mu_
  bool running_ = false;     // guarded by mu_
  std::thread thread_;
};

}  // namespace llmassist::detail::assistant
